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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/keymutex"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/labhook/labhook/api/wire"
)

// IncomingPath is the endpoint of SPEC §4.
const IncomingPath = "/api/v1/webhooks/events/incoming"

// Server answers incoming messages. Its client reads API-key Secrets from
// a cache (see CacheOptions) and writes to the API server; reader reads the
// LabResources and LabInterfaces a message names from the API server.
type Server struct {
	opts   Options
	client client.Client
	reader client.Reader
	log    logr.Logger
	ready  atomic.Bool

	mu       sync.Mutex
	limiters map[string]*rate.Limiter

	// replays remembers answered messages by organisation and
	// source_message_id; messageLocks serialises one id's requests.
	replays      *lru.Cache
	messageLocks keymutex.KeyMutex
	// recent remembers the objects this replica applied lately.
	recent *lru.Cache
}

// New returns a Server. It is not ready until Start runs, once the
// caches have synced.
func New(c client.Client, reader client.Reader, log logr.Logger, opts Options) *Server {
	return &Server{
		opts: opts, client: c, reader: reader, log: log,
		limiters:     map[string]*rate.Limiter{},
		replays:      lru.New(max(opts.ReplayEntries, 1)),
		recent:       lru.New(max(opts.ReplayEntries, 1)),
		messageLocks: keymutex.NewHashed(256),
	}
}

// Start marks the server ready and waits. A manager starts it once its
// caches have synced. The memory the initial lists took is handed back to
// the operating system then, rather than kept for the process's life.
func (s *Server) Start(ctx context.Context) error {
	debug.FreeOSMemory()
	s.ready.Store(true)
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Handler serves the incoming endpoint, /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(IncomingPath, s.serveIncoming)
	mux.Handle(wire.JWKSPathPrefix+"{org}", s.jwksHandler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "caches not synced"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint at %s; messages go to POST %s", r.URL.Path, IncomingPath), nil)
	})
	return mux
}

// Detail is one problem in an error answer.
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Result is what happened to one object.
type Result struct {
	Kind      string `json:"kind"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Operation string `json:"operation"`
}

// Operations of a Result.
const (
	OpCreated   = "created"
	OpUpdated   = "updated"
	OpUnchanged = "unchanged"
	OpDeleted   = "deleted"
	OpNotFound  = "not_found"
	OpStale     = "stale"
)

// Response is every answer's body. Error answers carry error and details,
// and results when some writes were applied before the failure.
type Response struct {
	SourceMessageID string   `json:"source_message_id,omitempty"`
	Results         []Result `json:"results,omitempty"`
	Error           string   `json:"error,omitempty"`
	Details         []Detail `json:"details,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string, details []Detail) {
	writeJSON(w, code, Response{Error: msg, Details: details})
}

func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

// statusWriter remembers the code for metrics and the access log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// replay is a remembered 200 answer.
type replay struct {
	bodyHash string
	response []byte
}

func (s *Server) serveIncoming(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw, code: http.StatusOK}
	log := s.log
	defer func() {
		requestsTotal.WithLabelValues(strconv.Itoa(w.code)).Inc()
		requestDuration.Observe(time.Since(start).Seconds())
		log.V(1).Info("incoming request", "code", w.code, "duration", time.Since(start).Round(time.Microsecond).String())
	}()

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed; use POST", r.Method), nil)
		return
	}
	if !s.ready.Load() {
		retryAfter(w, s.opts.RetryAfter)
		writeError(w, http.StatusServiceUnavailable, "the webhookserver is starting; retry later", nil)
		return
	}
	org, err := s.authenticate(r.Context(), r)
	if err != nil {
		log.Error(err, "reading API keys")
		retryAfter(w, s.opts.RetryAfter)
		writeError(w, http.StatusServiceUnavailable, "API keys cannot be read; retry later", nil)
		return
	}
	if org == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="labhook"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid credentials: send Authorization: Bearer ORG_ID:API_KEY", nil)
		return
	}
	log = log.WithValues("org", org)
	if wait, ok := s.allow(org); !ok {
		retryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("organisation %s is over its rate limit of %g requests per second", org, s.opts.RateLimit), nil)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
		return
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", s.opts.MaxBodyBytes), nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", s.opts.MaxBodyBytes), nil)
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error(), nil)
		return
	}

	msg, errs, err := wire.ParseIncoming(body, wire.ParseOptions{Regions: s.opts.Regions})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	var p *messagePlan
	if len(errs) == 0 {
		p = plan(org, msg)
		errs = p.errs
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the message has %d problem(s)", len(errs)), details(errs))
		return
	}
	log = log.WithValues("sourceMessageID", msg.SourceMessageID)

	// One id at a time: a concurrent duplicate waits for the first answer.
	key := org + "/" + msg.SourceMessageID
	s.messageLocks.LockKey(key)
	defer func() { _ = s.messageLocks.UnlockKey(key) }()
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	if v, ok := s.replays.Get(key); ok {
		rp := v.(replay)
		if rp.bodyHash != bodyHash {
			writeError(w, http.StatusConflict, fmt.Sprintf("source_message_id %q was already used for a different message", msg.SourceMessageID), nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(rp.response)
		return
	}

	// Writes go on if the client hangs up: a message is applied whole or
	// as far as the API server allows, never cut off by the caller.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.RequestTimeout)
	defer cancel()
	ctx = logr.NewContext(ctx, log)

	errs, err = s.checkReferences(ctx, p)
	if err != nil {
		s.fail(w, log, msg, nil, err)
		return
	}
	if len(errs) > 0 {
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("the message refers to what cannot be: %d problem(s)", len(errs)), details(errs))
		return
	}
	results, err := s.apply(ctx, p, bodyHash)
	for _, res := range results {
		objectsApplied.WithLabelValues(res.Kind, res.Operation).Inc()
	}
	if err != nil {
		s.fail(w, log, msg, results, err)
		return
	}
	resp, _ := json.Marshal(Response{SourceMessageID: msg.SourceMessageID, Results: results})
	resp = append(resp, '\n')
	s.replays.Add(key, replay{bodyHash: bodyHash, response: resp})
	log.Info("applied incoming message", "action", msg.Action, "objects", len(results))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

// allow takes a token from org's rate limiter; when there is none it
// returns how long until there is.
func (s *Server) allow(org string) (time.Duration, bool) {
	if s.opts.RateLimit <= 0 {
		return 0, true
	}
	s.mu.Lock()
	l, ok := s.limiters[org]
	if !ok {
		burst := s.opts.RateBurst
		if burst <= 0 {
			burst = int(math.Ceil(s.opts.RateLimit))
		}
		l = rate.NewLimiter(rate.Limit(s.opts.RateLimit), burst)
		s.limiters[org] = l
	}
	s.mu.Unlock()
	res := l.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

func details(errs field.ErrorList) []Detail {
	out := make([]Detail, 0, len(errs))
	for _, e := range errs {
		out = append(out, Detail{Field: e.Field, Message: e.ErrorBody()})
	}
	return out
}

// fail answers a write that did not go through, with what was applied
// before it.
func (s *Server) fail(w http.ResponseWriter, log logr.Logger, msg *wire.IncomingMessage, results []Result, err error) {
	code, text, det := classify(err)
	if code == http.StatusServiceUnavailable {
		retryAfter(w, s.opts.RetryAfter)
	}
	if code >= 500 {
		log.Error(err, "incoming message not applied", "applied", len(results))
	} else {
		log.Info("incoming message refused", "code", code, "reason", text, "applied", len(results))
	}
	writeJSON(w, code, Response{SourceMessageID: msg.SourceMessageID, Results: results, Error: text, Details: det})
}
