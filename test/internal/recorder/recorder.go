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

// Package recorder is a loopback webhook receiver for benchmarks and
// reliability tests: it verifies every POST with wire.Verify, records each
// verified message with its arrival time, and can simulate an outage.
package recorder

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labhook/labhook/api/wire"
)

// Arrival is one verified POST.
type Arrival struct {
	At      time.Time
	Message wire.OutgoingMessage
}

// Recorder records what labhook delivers.
type Recorder struct {
	// URL is http://127.0.0.1:<port>/webhooks/events.
	URL string

	secret  string
	srv     *http.Server
	down    atomic.Bool
	badSigs atomic.Int64
	refused atomic.Int64

	mu       sync.Mutex
	arrivals []Arrival
	byID     map[string]int
	notify   chan struct{}
}

// Start listens on 127.0.0.1 and verifies with secret (whsec_...).
func Start(secret string) (*Recorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Recorder{secret: secret, byID: map[string]int{}, notify: make(chan struct{}, 1)}
	r.URL = "http://" + ln.Addr().String() + "/webhooks/events"
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the server.
func (r *Recorder) Close() { _ = r.srv.Close() }

// SetDown makes the receiver answer 503 with Retry-After: 1 (an outage)
// until SetDown(false).
func (r *Recorder) SetDown(down bool) { r.down.Store(down) }

// ServeHTTP implements http.Handler.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if r.down.Load() {
		r.refused.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	if err := wire.Verify(r.secret, req.Header, body); err != nil {
		r.badSigs.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m wire.OutgoingMessage
	if err := json.Unmarshal(body, &m); err != nil {
		r.badSigs.Add(1)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.arrivals = append(r.arrivals, Arrival{At: time.Now(), Message: m})
	r.byID[m.MessageID]++
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// Arrivals returns a copy of every verified arrival, in arrival order.
func (r *Recorder) Arrivals() []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Arrival(nil), r.arrivals...)
}

// Counts returns how many distinct message ids arrived and how many
// arrivals were duplicates (a message id seen again).
func (r *Recorder) Counts() (distinct, duplicates int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.byID {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}

// BadSignatures counts POSTs that failed verification.
func (r *Recorder) BadSignatures() int64 { return r.badSigs.Load() }

// Refused counts POSTs answered 503 during an outage.
func (r *Recorder) Refused() int64 { return r.refused.Load() }

// WaitFor polls done (under no lock) after every arrival and at least every
// 200ms until it returns true or timeout passes.
func (r *Recorder) WaitFor(timeout time.Duration, done func() bool) bool {
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if done() {
			return true
		}
		select {
		case <-r.notify:
		case <-tick.C:
		case <-deadline:
			return done()
		}
	}
}
