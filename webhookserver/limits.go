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

package webhookserver

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/lru"
)

// The limits that keep one organisation from taking the webhookserver down
// for the others. Each has a flag; docs/incoming.md lists them all.

// orgState is what the webhookserver keeps per authenticated organisation:
// its request rate, its API budget, and what it has in flight.
type orgState struct {
	requests *rate.Limiter // nil: no rate limit
	api      *rate.Limiter // nil: no API budget
	active   int
	bytes    int64
	// calls is the API calls the organisation's messages in progress may
	// still make (an estimate from their size).
	calls int
	// slots holds a token per API call in flight; nil: no cap.
	slots chan struct{}
}

// limits holds every organisation's state and the global counters.
type limits struct {
	opts Options

	mu     sync.Mutex
	orgs   map[string]*orgState
	active int
	bytes  int64

	// authFailures throttles failed API-key attempts per organisation
	// name and per client IP; bounded, so made-up names cannot grow it.
	authMu       sync.Mutex
	authFailures *lru.Cache
}

func newLimits(opts Options) *limits {
	return &limits{opts: opts, orgs: map[string]*orgState{}, authFailures: lru.New(authFailureEntries)}
}

// authFailureEntries bounds the failed-attempt limiters kept in memory.
const authFailureEntries = 10000

func limiter(qps float64, burst int) *rate.Limiter {
	if qps <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(math.Ceil(qps))
	}
	return rate.NewLimiter(rate.Limit(qps), burst)
}

// org returns org's state, creating it on first use. Only authenticated
// organisations get one, so the map is bounded by the namespaces that hold
// API keys.
func (l *limits) org(org string) *orgState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.orgs[org]
	if !ok {
		st = &orgState{
			requests: limiter(l.opts.RateLimit, l.opts.RateBurst),
			api:      limiter(l.opts.OrgAPIQPS, l.opts.OrgAPIBurst),
		}
		if l.opts.OrgAPIConcurrency > 0 {
			st.slots = make(chan struct{}, l.opts.OrgAPIConcurrency)
		}
		l.orgs[org] = st
	}
	return st
}

// allow takes a request token of org; when there is none it returns how
// long until there is.
func (l *limits) allow(st *orgState) (time.Duration, bool) {
	if st.requests == nil {
		return 0, true
	}
	res := st.requests.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// refusal is why a request was not admitted: the answer's code and text.
type refusal struct {
	code int
	text string
}

// admit reserves a slot and bytes of body for org, within its own caps and
// the global ones. Over org's caps the answer is 429 (the organisation's
// own load); over the global caps, 503 (the webhookserver's). It returns
// the release to call when the request is done.
func (l *limits) admit(org string, st *orgState, bytes int64) (func(), *refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.opts
	switch {
	case o.MaxConcurrentRequestsPerOrg > 0 && st.active >= o.MaxConcurrentRequestsPerOrg:
		return nil, &refusal{http.StatusTooManyRequests, fmt.Sprintf("organisation %s already has %d requests in progress (--max-concurrent-requests-per-org)", org, st.active)}
	case o.MaxInflightBytesPerOrg > 0 && st.bytes+bytes > o.MaxInflightBytesPerOrg:
		return nil, &refusal{http.StatusTooManyRequests, fmt.Sprintf("organisation %s already has %d bytes of messages in progress (--max-inflight-bytes-per-org %d)", org, st.bytes, o.MaxInflightBytesPerOrg)}
	case o.MaxConcurrentRequests > 0 && l.active >= o.MaxConcurrentRequests:
		return nil, &refusal{http.StatusServiceUnavailable, "the webhookserver is at its limit of requests in progress (--max-concurrent-requests)"}
	case o.MaxInflightBytes > 0 && l.bytes+bytes > o.MaxInflightBytes:
		return nil, &refusal{http.StatusServiceUnavailable, "the webhookserver is at its limit of message bytes in progress (--max-inflight-bytes)"}
	}
	st.active++
	st.bytes += bytes
	l.active++
	l.bytes += bytes
	requestsInProgress.Inc()
	bytesInProgress.Add(float64(bytes))
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		st.active--
		st.bytes -= bytes
		l.active--
		l.bytes -= bytes
		requestsInProgress.Dec()
		bytesInProgress.Sub(float64(bytes))
	}, nil
}

// admitCalls reserves, for a message that may make calls API calls, room
// in org's API budget: the messages of an organisation in progress must be
// able to finish within RequestTimeout at OrgAPIQPS. Admitting more would
// only make them all run out of time half-written; the message is refused
// (429) before it writes anything instead, with how long until there is
// room.
func (l *limits) admitCalls(org string, st *orgState, calls int) (func(), time.Duration, *refusal) {
	if st.api == nil {
		return func() {}, 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	qps := float64(st.api.Limit())
	budget := int(qps * l.opts.RequestTimeout.Seconds())
	if st.calls > 0 && st.calls+calls > budget {
		wait := time.Duration(float64(st.calls) / qps * float64(time.Second))
		return nil, wait, &refusal{http.StatusTooManyRequests, fmt.Sprintf(
			"organisation %s has messages in progress that need about %d Kubernetes API calls; with this one they could not finish within %s at --org-api-qps %g",
			org, st.calls, l.opts.RequestTimeout, qps)}
	}
	st.calls += calls
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		st.calls -= calls
	}, 0, nil
}

// clientIP is the peer address of r. Behind a proxy it is the proxy's.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authFailureLimiters are the limiters of failed attempts that apply to a
// request naming org from ip.
func (l *limits) authFailureLimiters(org, ip string) []*rate.Limiter {
	if l.opts.AuthFailureRate <= 0 {
		return nil
	}
	l.authMu.Lock()
	defer l.authMu.Unlock()
	var out []*rate.Limiter
	for _, k := range []string{"org/" + org, "ip/" + ip} {
		v, ok := l.authFailures.Get(k)
		if !ok {
			v = limiter(l.opts.AuthFailureRate, l.opts.AuthFailureBurst)
			l.authFailures.Add(k, v)
		}
		out = append(out, v.(*rate.Limiter))
	}
	return out
}

// authThrottled tells whether attempts for org from ip must wait, because
// too many failed lately; it is asked before the key is checked, so a
// throttled guess learns nothing.
func authThrottled(lims []*rate.Limiter) (time.Duration, bool) {
	var wait time.Duration
	for _, lim := range lims {
		if lim.Tokens() < 1 {
			wait = max(wait, time.Duration((1-lim.Tokens())/float64(lim.Limit())*float64(time.Second)))
		}
	}
	return wait, wait > 0
}

// authFailed spends a token of each limiter.
func authFailed(lims []*rate.Limiter) {
	for _, lim := range lims {
		lim.Allow()
	}
}

// keyLocks serialises requests with the same key (organisation and
// source_message_id) on this replica: a concurrent duplicate waits for the
// first answer. One lock per key in use, so unrelated messages never wait
// for each other.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch      chan struct{}
	waiters int
}

func newKeyLocks() *keyLocks { return &keyLocks{locks: map[string]*keyLock{}} }

// lock takes key's lock, or gives up when ctx ends.
func (k *keyLocks) lock(ctx context.Context, key string) error {
	k.mu.Lock()
	l, ok := k.locks[key]
	if !ok {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.waiters++
	k.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		k.release(key, l)
		return ctx.Err()
	}
}

// unlock releases key's lock.
func (k *keyLocks) unlock(key string) {
	k.mu.Lock()
	l := k.locks[key]
	k.mu.Unlock()
	<-l.ch
	k.release(key, l)
}

func (k *keyLocks) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.waiters--
	if l.waiters == 0 {
		delete(k.locks, key)
	}
}
