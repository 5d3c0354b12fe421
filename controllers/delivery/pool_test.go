/*
Copyright 2026 The labhook Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package delivery_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labhook/labhook/controllers/delivery"
	"github.com/labhook/labhook/controllers/outbound"
)

// server is a loopback receiver that counts requests in flight and
// answers with handle (204 when nil).
type server struct {
	*httptest.Server
	inFlight, peak atomic.Int32
	mu             sync.Mutex
	arrivals       []time.Time
}

func newServer(t *testing.T, handle func(w http.ResponseWriter, n int)) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			p := s.peak.Load()
			if cur <= p || s.peak.CompareAndSwap(p, cur) {
				break
			}
		}
		s.mu.Lock()
		s.arrivals = append(s.arrivals, time.Now())
		n := len(s.arrivals)
		s.mu.Unlock()
		if handle != nil {
			handle(w, n)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...)
}

func startPool(t *testing.T, o delivery.Options) *delivery.Pool {
	out := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	p := delivery.New(out, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// submit queues n jobs to url for config k and returns a channel that gets
// every outcome.
func submit(p *delivery.Pool, k delivery.Key, l delivery.Limits, url string, n int) <-chan delivery.Outcome {
	ch := make(chan delivery.Outcome, n)
	for range n {
		p.Submit(delivery.Job{Config: k, Limits: l,
			Prepare: func(context.Context) (outbound.Request, error) {
				return outbound.Request{URL: url, MessageID: "m", Body: []byte(`{}`), Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Timeout: 20 * time.Second}, nil
			},
			Done: func(_ context.Context, o delivery.Outcome) { ch <- o }})
	}
	return ch
}

func wait(t *testing.T, ch <-chan delivery.Outcome, n int, within time.Duration) []delivery.Outcome {
	t.Helper()
	var got []delivery.Outcome
	deadline := time.After(within)
	for len(got) < n {
		select {
		case o := <-ch:
			got = append(got, o)
		case <-deadline:
			t.Fatalf("%d of %d outcomes within %s", len(got), n, within)
		}
	}
	return got
}

func TestPoolKeepsToAConfigsRateLimit(t *testing.T) {
	srv := newServer(t, nil)
	p := startPool(t, delivery.Options{MaxInFlight: 32, MaxInFlightPerConfig: 8})
	start := time.Now()
	for _, o := range wait(t, submit(p, delivery.Key{Namespace: "a", Name: "c"}, delivery.Limits{RequestsPerSecond: 20}, srv.URL, 21), 21, 10*time.Second) {
		if !o.OK() {
			t.Fatalf("outcome %+v", o)
		}
	}
	// 21 requests at 20/s with a burst of one take at least one second.
	if took := time.Since(start); took < 950*time.Millisecond {
		t.Fatalf("21 requests at 20/s took %s", took)
	}
	arr := srv.times()
	for i := 1; i < len(arr); i++ {
		if gap := arr[i].Sub(arr[i-1]); gap < 30*time.Millisecond {
			t.Fatalf("requests %d and %d were %s apart, want about 50ms", i-1, i, gap)
		}
	}
}

func TestPoolKeepsToAConfigsConcurrency(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, _ int) { <-release; w.WriteHeader(http.StatusOK) })
	p := startPool(t, delivery.Options{MaxInFlight: 32, MaxInFlightPerConfig: 8})
	ch := submit(p, delivery.Key{Namespace: "a", Name: "c"}, delivery.Limits{Concurrency: 3}, srv.URL, 10)
	deadline := time.Now().Add(5 * time.Second)
	for srv.inFlight.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // would a fourth start?
	if got := srv.inFlight.Load(); got != 3 {
		t.Fatalf("%d requests in flight, want 3 (spec.maxConcurrentRequests)", got)
	}
	close(release)
	wait(t, ch, 10, 5*time.Second)
	if peak := srv.peak.Load(); peak != 3 {
		t.Fatalf("peak concurrency %d, want 3", peak)
	}
}

func TestPoolSlowReceiverDelaysOnlyItsOwnOrganisation(t *testing.T) {
	slow := newServer(t, func(w http.ResponseWriter, _ int) { time.Sleep(2 * time.Second); w.WriteHeader(http.StatusOK) })
	fast := newServer(t, nil)
	p := startPool(t, delivery.Options{MaxInFlight: 8, MaxInFlightPerOrganisation: 4, MaxInFlightPerConfig: 2})
	// Organisation a has four configs whose receiver takes 2 s: with no
	// per-organisation bound they would hold all 8 slots.
	for i := range 4 {
		submit(p, delivery.Key{Namespace: "a", Name: string(rune('w' + i))}, delivery.Limits{}, slow.URL, 20)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	got := wait(t, submit(p, delivery.Key{Namespace: "b", Name: "c"}, delivery.Limits{}, fast.URL, 20), 20, 5*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("organisation b's 20 requests took %s behind a's slow receivers", took)
	}
	for _, o := range got {
		if !o.OK() {
			t.Fatalf("outcome %+v", o)
		}
	}
	if peak := slow.peak.Load(); peak > 4 {
		t.Fatalf("organisation a had %d requests in flight, bound is 4", peak)
	}
}

func TestPoolRetryAfterPausesThatConfigOnly(t *testing.T) {
	throttled := newServer(t, func(w http.ResponseWriter, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	other := newServer(t, nil)
	p := startPool(t, delivery.Options{MaxInFlight: 8, MaxInFlightPerConfig: 1})
	a := delivery.Key{Namespace: "a", Name: "c"}
	first := wait(t, submit(p, a, delivery.Limits{}, throttled.URL, 1), 1, 5*time.Second)[0]
	if first.HTTPStatus != http.StatusTooManyRequests || first.RetryAfter != time.Second {
		t.Fatalf("first outcome %+v", first)
	}
	paused := time.Now()
	chA := submit(p, a, delivery.Limits{}, throttled.URL, 1)
	wait(t, submit(p, delivery.Key{Namespace: "b", Name: "c"}, delivery.Limits{}, other.URL, 5), 5, time.Second)
	if took := time.Since(paused); took > 500*time.Millisecond {
		t.Fatalf("another organisation waited %s behind a's Retry-After", took)
	}
	wait(t, chA, 1, 5*time.Second)
	if gap := throttled.times()[1].Sub(throttled.times()[0]); gap < 900*time.Millisecond {
		t.Fatalf("the throttled config was asked again after %s, Retry-After was 1s", gap)
	}
}

func TestPoolReportsAJobItCouldNotPrepare(t *testing.T) {
	p := startPool(t, delivery.Options{MaxInFlight: 1})
	ch := make(chan delivery.Outcome, 1)
	p.Submit(delivery.Job{Config: delivery.Key{Namespace: "a", Name: "c"},
		Prepare: func(context.Context) (outbound.Request, error) { return outbound.Request{}, errors.New("no secret") },
		Done:    func(_ context.Context, o delivery.Outcome) { ch <- o }})
	o := wait(t, ch, 1, time.Second)[0]
	if !o.NotSent || o.Err == nil || o.Err.Error() != "no secret" {
		t.Fatalf("outcome %+v", o)
	}
}
