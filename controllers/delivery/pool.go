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

// Package delivery runs labhook's outgoing requests in one bounded pool that
// every sender shares (lab objects' direct sends and OutgoingMessage
// attempts). It is fair across organisations and their WebhookConfigs: it
// takes jobs round-robin, first over organisations, then over each
// organisation's configs, so a receiver that answers in 10 s, or never,
// holds only its own config's share of the pool. It keeps to each config's
// rate and concurrency, and pauses a config alone when its receiver answers
// 429 or 503 with Retry-After. Callers hand it a Job and get the outcome in
// a callback: nothing that submits a job waits on a receiver.
package delivery

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"

	"github.com/labhook/labhook/controllers/outbound"
)

// Key names a WebhookConfig; its namespace is the organisation.
type Key = types.NamespacedName

// Limits are a config's own bounds, from its spec.
type Limits struct {
	// RequestsPerSecond bounds the rate of requests; 0 means no limit.
	RequestsPerSecond float64
	// Concurrency bounds requests in flight; 0 means the pool's default.
	Concurrency int
}

// Job is one request to one config's receiver.
type Job struct {
	// Config is where the request goes; it decides the job's queue.
	Config Key
	// Limits of that config when the job was submitted. The newest job's
	// limits win, so a changed spec applies from the next submission on.
	Limits Limits
	// Prepare builds the request when the job's turn has come, so secrets
	// are read and the request signed at send time. An error means nothing
	// was sent.
	Prepare func(ctx context.Context) (outbound.Request, error)
	// Done receives the outcome, on a pool goroutine, with the pool's
	// context (the manager's). It must not block for long.
	Done func(context.Context, Outcome)
}

// Outcome is what became of a Job.
type Outcome struct {
	outbound.Result
	// Start is when the request was sent.
	Start time.Time
	// NotSent is true when no request went out: Prepare failed (Err says
	// why) or the pool stopped first.
	NotSent bool
	// Err is Prepare's error when NotSent.
	Err error
}

// Options bound the pool.
type Options struct {
	// MaxInFlight bounds requests in flight across every organisation.
	MaxInFlight int
	// MaxInFlightPerOrganisation bounds one organisation's requests in
	// flight, whatever its number of configs, so slow receivers of a few
	// organisations cannot hold the whole pool.
	MaxInFlightPerOrganisation int
	// MaxInFlightPerConfig is a config's concurrency when its spec sets none.
	MaxInFlightPerConfig int
}

// Pool is the delivery pool. Start it with the manager (it runs on the
// leader only); Submit may be called before.
type Pool struct {
	out  *outbound.Client
	opts Options

	mu       sync.Mutex
	orgs     []*org // organisations with queued jobs, in round-robin order
	nextOrg  int
	byOrg    map[string]*org
	configs  map[Key]*config
	inFlight int
	stopped  bool
	wake     chan struct{}
	running  sync.WaitGroup
}

type org struct {
	name     string
	configs  []*config // configs with queued jobs, in round-robin order
	next     int
	inFlight int
}

type config struct {
	key         Key
	jobs        []*Job
	inFlight    int
	concurrency int
	limiter     *rate.Limiter // nil: no rate limit
	pausedUntil time.Time
	lastUsed    time.Time
}

// New builds a pool sending through out.
func New(out *outbound.Client, o Options) *Pool {
	o.MaxInFlight = max(o.MaxInFlight, 1)
	if o.MaxInFlightPerOrganisation <= 0 || o.MaxInFlightPerOrganisation > o.MaxInFlight {
		o.MaxInFlightPerOrganisation = o.MaxInFlight
	}
	o.MaxInFlightPerConfig = max(o.MaxInFlightPerConfig, 1)
	return &Pool{out: out, opts: o, byOrg: map[string]*org{}, configs: map[Key]*config{}, wake: make(chan struct{}, 1)}
}

// Submit queues j behind the jobs already queued for its config.
func (p *Pool) Submit(j Job) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	c := p.config(j.Config, j.Limits, time.Now())
	if len(c.jobs) == 0 {
		o := p.byOrg[j.Config.Namespace]
		if o == nil {
			o = &org{name: j.Config.Namespace}
			p.byOrg[o.name] = o
		}
		if len(o.configs) == 0 {
			p.orgs = append(p.orgs, o)
		}
		o.configs = append(o.configs, c)
	}
	c.jobs = append(c.jobs, &j)
	queued.Inc()
	p.mu.Unlock()
	p.signal()
}

// Pause holds a config's queue until until (a receiver's Retry-After).
func (p *Pool) Pause(k Key, until time.Time) {
	p.mu.Lock()
	c := p.config(k, Limits{}, time.Now())
	if until.After(c.pausedUntil) {
		c.pausedUntil = until
	}
	p.mu.Unlock()
}

// Wait blocks until the config's rate limit allows one more request, for
// requests sent outside the pool (WebhookConfig tests), so they count
// towards spec.maxRequestsPerSecond too.
func (p *Pool) Wait(ctx context.Context, k Key, l Limits) error {
	p.mu.Lock()
	lim := p.config(k, l, time.Now()).limiter
	p.mu.Unlock()
	if lim == nil {
		return nil
	}
	return lim.Wait(ctx)
}

// Queued returns how many jobs wait for their turn, for tests and metrics.
func (p *Pool) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.configs {
		n += len(c.jobs)
	}
	return n
}

// config returns the state of k, applying l when it is set. The limiter
// has a burst of one, so an idle config's limiter is the same as a new one
// and idle configs can be forgotten without loosening the limit.
func (p *Pool) config(k Key, l Limits, now time.Time) *config {
	c := p.configs[k]
	if c == nil {
		c = &config{key: k, concurrency: p.opts.MaxInFlightPerConfig}
		p.configs[k] = c
	}
	c.lastUsed = now
	if l == (Limits{}) {
		return c
	}
	c.concurrency = p.opts.MaxInFlightPerConfig
	if l.Concurrency > 0 {
		c.concurrency = l.Concurrency
	}
	switch {
	case l.RequestsPerSecond <= 0:
		c.limiter = nil
	case c.limiter == nil:
		c.limiter = rate.NewLimiter(rate.Limit(l.RequestsPerSecond), 1)
	case c.limiter.Limit() != rate.Limit(l.RequestsPerSecond):
		c.limiter.SetLimitAt(now, rate.Limit(l.RequestsPerSecond))
	}
	return c
}

func (p *Pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start dispatches jobs until ctx ends, then waits for the requests in
// flight (cancelled with ctx) to finish. Jobs still queued are dropped:
// their senders owe them still, and the next leader sends them.
func (p *Pool) Start(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		next := p.dispatch(ctx)
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			p.stop()
			return nil
		case <-p.wake:
		case <-timer.C:
		case <-prune.C:
			p.prune(time.Now())
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (p *Pool) stop() {
	p.mu.Lock()
	p.stopped = true
	for _, c := range p.configs {
		queued.Sub(float64(len(c.jobs)))
		c.jobs = nil
	}
	p.orgs, p.byOrg = nil, map[string]*org{}
	p.mu.Unlock()
	p.running.Wait()
}

// dispatch starts every job whose turn has come, and returns when the next
// paused or rate-limited config may go (zero when nothing waits on time).
func (p *Pool) dispatch(ctx context.Context) time.Time {
	for {
		p.mu.Lock()
		j, c, o, next := p.pick(time.Now())
		if j == nil {
			p.mu.Unlock()
			return next
		}
		c.inFlight++
		o.inFlight++
		p.inFlight++
		p.running.Add(1)
		p.mu.Unlock()
		queued.Dec()
		inFlight.Inc()
		go p.run(ctx, j, c, o)
	}
}

// pick takes the next job: round-robin over organisations, then over the
// organisation's configs, skipping those at their concurrency, paused, or
// out of rate tokens. It returns the earliest time a skipped config may go.
func (p *Pool) pick(now time.Time) (*Job, *config, *org, time.Time) {
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if p.inFlight >= p.opts.MaxInFlight {
		return nil, nil, nil, next
	}
	for i := range len(p.orgs) {
		oi := (p.nextOrg + i) % len(p.orgs)
		o := p.orgs[oi]
		if o.inFlight >= p.opts.MaxInFlightPerOrganisation {
			continue
		}
		for k := range len(o.configs) {
			ci := (o.next + k) % len(o.configs)
			c := o.configs[ci]
			if c.inFlight >= c.concurrency {
				continue
			}
			if now.Before(c.pausedUntil) {
				later(c.pausedUntil)
				continue
			}
			if c.limiter != nil && !c.limiter.AllowN(now, 1) {
				missing := 1 - c.limiter.TokensAt(now)
				later(now.Add(time.Duration(missing / float64(c.limiter.Limit()) * float64(time.Second))))
				continue
			}
			j := c.jobs[0]
			c.jobs[0] = nil
			c.jobs = c.jobs[1:]
			c.lastUsed = now
			o.next, p.nextOrg = ci+1, oi+1
			if len(c.jobs) == 0 {
				o.configs = slices.Delete(o.configs, ci, ci+1)
				o.next = ci
			}
			if len(o.configs) == 0 {
				p.orgs = slices.Delete(p.orgs, oi, oi+1)
				p.nextOrg = oi
			}
			return j, c, o, next
		}
	}
	return nil, nil, nil, next
}

func (p *Pool) run(ctx context.Context, j *Job, c *config, o *org) {
	defer p.running.Done()
	out := p.send(ctx, j)
	p.mu.Lock()
	c.inFlight--
	o.inFlight--
	p.inFlight--
	if s := out.HTTPStatus; (s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable) && out.RetryAfter > 0 {
		if until := time.Now().Add(out.RetryAfter); until.After(c.pausedUntil) {
			c.pausedUntil = until
		}
	}
	p.mu.Unlock()
	inFlight.Dec()
	p.signal()
	if j.Done != nil {
		j.Done(ctx, out)
	}
}

func (p *Pool) send(ctx context.Context, j *Job) Outcome {
	req, err := j.Prepare(ctx)
	if err != nil {
		return Outcome{NotSent: true, Err: err}
	}
	if ctx.Err() != nil {
		return Outcome{NotSent: true, Err: ctx.Err()}
	}
	start := time.Now()
	return Outcome{Result: p.out.Send(ctx, req), Start: start}
}

// prune forgets configs that have been idle for a minute.
func (p *Pool) prune(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.configs {
		if len(c.jobs) == 0 && c.inFlight == 0 && now.After(c.pausedUntil) && now.Sub(c.lastUsed) > time.Minute {
			delete(p.configs, k)
		}
	}
	for name, o := range p.byOrg {
		if len(o.configs) == 0 && o.inFlight == 0 {
			delete(p.byOrg, name)
		}
	}
}
