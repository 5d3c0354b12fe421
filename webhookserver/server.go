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
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/labhook/labhook/api/wire"
)

// IncomingPath is the endpoint of SPEC §4.
const IncomingPath = "/api/v1/webhooks/events/incoming"

// Server answers incoming messages. Its client reads API-key Secrets from
// a cache (see CacheOptions) and writes to the API server; reader reads
// what a message names from the API server.
type Server struct {
	opts   Options
	client client.Client
	reader client.Reader
	log    logr.Logger
	ready  atomic.Bool
	limits *limits

	// answered remembers the 200 answers of this replica by organisation,
	// source_message_id, action and timestamp: a shortcut for retries; the
	// objects remember the same across replicas and restarts. locks
	// serialises the requests of one source_message_id.
	answered *lru.Cache
	locks    *keyLocks
	// recent remembers the objects this replica applied lately.
	recent *lru.Cache
}

// New returns a Server. It is not ready until Start runs, once the
// caches have synced.
func New(c client.Client, reader client.Reader, log logr.Logger, opts Options) *Server {
	return &Server{
		opts: opts, client: c, reader: reader, log: log,
		limits:   newLimits(opts),
		answered: lru.New(max(opts.ReplayEntries, 1)),
		recent:   lru.New(max(opts.ReplayEntries, 1)),
		locks:    newKeyLocks(),
	}
}

// wroteRecently tells whether this replica applied the object lately.
func (s *Server) wroteRecently(ns, kind, name string) bool {
	_, ok := s.recent.Get(recentKey(ns, kind, name))
	return ok
}

func recentKey(ns, kind, name string) string { return ns + "/" + kind + "/" + name }

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

// Response is every answer's body. A 200 has source_message_id, reply_to
// (null when source_message_id names nothing labhook sent to the
// organisation) and results; an error has error and details, and results
// when some writes were applied before the failure.
type Response struct {
	SourceMessageID string   `json:"source_message_id,omitempty"`
	ReplyTo         *ReplyTo `json:"reply_to,omitempty"`
	Results         []Result `json:"results,omitempty"`
	Error           string   `json:"error,omitempty"`
	Details         []Detail `json:"details,omitempty"`
}

// okResponse is a 200's body, with reply_to always present.
type okResponse struct {
	SourceMessageID string   `json:"source_message_id"`
	ReplyTo         *ReplyTo `json:"reply_to"`
	Results         []Result `json:"results"`
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

// remembered is a 200 this replica gave: the body's hash and, when it is
// small, the answer itself.
type remembered struct {
	bodyHash string
	response []byte
}

// maxRememberedAnswer bounds an answer kept in memory; a larger one is
// rebuilt from the objects on a retry. With ReplayEntries this bounds the
// memory of the shortcut.
const maxRememberedAnswer = 4 << 10

// drain reads what is left of a body the answer does not need, so the
// client reads the answer instead of a reset connection.
func (s *Server) drain(r *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
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
	org, st, release, ok := s.admitRequest(w, r, log)
	if !ok {
		return
	}
	defer release()
	log = log.WithValues("org", org)
	p, ok := s.readMessage(w, r, org)
	if !ok {
		return
	}
	log = log.WithValues("sourceMessageID", p.msg.SourceMessageID)
	s.applyMessage(w, r, log, st, p)
}

// admitRequest answers what is refused before the body is read: the
// method, readiness, authentication, the organisation's rate limit, the
// media type, the announced size, and the caps on what is in progress,
// per organisation and in all. A refused body is drained, so the client
// reads the answer. ok tells whether the request goes on; release frees
// what it holds.
func (s *Server) admitRequest(w http.ResponseWriter, r *http.Request, log logr.Logger) (org string, st *orgState, release func(), ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed; use POST", r.Method), nil)
		return "", nil, nil, false
	}
	if !s.ready.Load() {
		retryAfter(w, s.opts.RetryAfter)
		writeError(w, http.StatusServiceUnavailable, "the webhookserver is starting; retry later", nil)
		return "", nil, nil, false
	}
	org, wait, err := s.authenticate(r.Context(), r)
	switch {
	case err != nil:
		log.Error(err, "reading API keys")
		retryAfter(w, s.opts.RetryAfter)
		writeError(w, http.StatusServiceUnavailable, "API keys cannot be read; retry later", nil)
		return "", nil, nil, false
	case wait > 0:
		retryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, "too many failed API-key attempts for this organisation or from this address; retry later", nil)
		return "", nil, nil, false
	case org == "":
		w.Header().Set("WWW-Authenticate", `Bearer realm="labhook"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid credentials: send Authorization: Bearer ORG_ID:API_KEY", nil)
		return "", nil, nil, false
	}
	st = s.limits.org(org)
	if wait, ok := s.limits.allow(st); !ok {
		s.drain(r)
		retryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("organisation %s is over its rate limit of %g requests per second", org, s.opts.RateLimit), nil)
		return "", nil, nil, false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.drain(r)
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
		return "", nil, nil, false
	}
	if r.ContentLength > s.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", s.opts.MaxBodyBytes), nil)
		return "", nil, nil, false
	}
	// The body's bytes are reserved before it is read: its announced
	// length, or the most it may be.
	reserve := r.ContentLength
	if reserve < 0 {
		reserve = s.opts.MaxBodyBytes
	}
	release, refused := s.limits.admit(org, st, reserve)
	if refused != nil {
		s.drain(r)
		retryAfter(w, s.opts.RetryAfter)
		writeError(w, refused.code, refused.text, nil)
		return "", nil, nil, false
	}
	return org, st, release, true
}

// readMessage decodes and validates the body as it streams in, and names
// what the message writes. ok tells whether it is a message to apply.
func (s *Server) readMessage(w http.ResponseWriter, r *http.Request, org string) (*messagePlan, bool) {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	sum := sha256.New()
	msg, errs, err := wire.DecodeIncoming(io.TeeReader(body, sum), wire.ParseOptions{Regions: s.opts.Regions, MaxConfigExtraBytes: s.opts.MaxConfigExtraBytes})
	if err == nil {
		// What decoding left (it stops early past MaxProblems) is read, so
		// the hash covers the whole body and the client its answer.
		_, err = io.Copy(sum, body)
	}
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", s.opts.MaxBodyBytes), nil)
			return nil, false
		}
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return nil, false
	}
	if len(errs) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the message has %d problem(s)", len(errs)), details(errs))
		return nil, false
	}
	return plan(org, msg, hex.EncodeToString(sum.Sum(nil))), true
}

// applyMessage applies a message, one source_message_id at a time, and
// answers it: from memory for a retry this replica answered, else after
// its writes are committed.
func (s *Server) applyMessage(w http.ResponseWriter, r *http.Request, log logr.Logger, st *orgState, p *messagePlan) {
	org, msg := p.ns, p.msg
	// Writes go on if the client hangs up: a message is applied whole or
	// as far as the API server allows, never cut off by the caller.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.RequestTimeout)
	defer cancel()
	ctx = logr.NewContext(ctx, log)

	// A concurrent duplicate waits for the first answer.
	key := org + "\x00" + msg.SourceMessageID
	if err := s.locks.lock(ctx, key); err != nil {
		s.fail(w, log, org, msg, nil, err)
		return
	}
	defer s.locks.unlock(key)
	answerKey := key + "\x00" + msg.Action + "\x00" + msg.Timestamp
	if v, ok := s.answered.Get(answerKey); ok {
		if a := v.(remembered); a.bodyHash != p.bodyHash {
			s.fail(w, log, org, msg, nil, &reuseError{msg: msg})
			return
		} else if a.response != nil {
			writeRaw(w, a.response)
			return
		}
	}
	done, wait, refused := s.limits.admitCalls(org, st, p.calls())
	if refused != nil {
		retryAfter(w, wait)
		writeJSON(w, refused.code, Response{SourceMessageID: msg.SourceMessageID, Error: refused.text})
		return
	}
	defer done()
	oc := orgClient{s: s, ns: org, st: st}
	results, err := s.process(ctx, oc, p)
	for _, res := range results {
		objectsApplied.WithLabelValues(res.Kind, res.Operation).Inc()
	}
	if err != nil {
		s.fail(w, log, org, msg, results, err)
		return
	}
	resp, _ := json.Marshal(okResponse{SourceMessageID: msg.SourceMessageID, ReplyTo: p.reply, Results: results})
	resp = append(resp, '\n')
	a := remembered{bodyHash: p.bodyHash}
	if len(resp) <= maxRememberedAnswer {
		a.response = resp
	}
	s.answered.Add(answerKey, a)
	replyTo := ""
	if p.reply != nil {
		replyTo = p.reply.Type + " " + p.reply.Status
	}
	log.Info("applied incoming message", "action", msg.Action, "objects", len(results), "replyTo", replyTo)
	writeRaw(w, resp)
}

func writeRaw(w http.ResponseWriter, resp []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp)
}

func details(errs field.ErrorList) []Detail {
	out := make([]Detail, 0, len(errs))
	for _, e := range errs {
		out = append(out, Detail{Field: e.Field, Message: e.ErrorBody()})
	}
	return out
}

// fail answers a message that was not applied, with what was applied
// before the failure.
func (s *Server) fail(w http.ResponseWriter, log logr.Logger, org string, msg *wire.IncomingMessage, results []Result, err error) {
	a := classify(org, err)
	if a.retryAfter {
		retryAfter(w, s.opts.RetryAfter)
	}
	if a.code >= 500 {
		log.Error(err, "incoming message not applied", "applied", len(results))
	} else {
		log.Info("incoming message refused", "code", a.code, "reason", a.text, "applied", len(results))
	}
	writeJSON(w, a.code, Response{SourceMessageID: msg.SourceMessageID, Results: results, Error: a.text, Details: a.details})
}
