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

// Package receiver is labhook's reference webhook receiver: what a customer
// backend does with an outgoing message. It verifies the Standard Webhooks
// signature with wire.VerifyAny (v1 with a whsec_ secret, v1a with whpk_
// public keys given or fetched from the webhookserver's JWKS), logs the
// message as one JSON line, remembers it (so tests and make dev can look),
// and answers 204. A bad signature is answered 401 and the message is
// dropped.
package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labhook/labhook/api/wire"
)

// SecretEnv is the environment variable holding the signing secret. The
// secret is never taken from a flag value: flags show up in ps and in Pod
// specs.
const SecretEnv = "LABHOOK_SIGNING_SECRET"

// PublicKeyEnv is the environment variable holding whpk_ public keys,
// comma-separated, when --public-key is not given. Public keys are not
// secret, so a flag is fine for them.
const PublicKeyEnv = "LABHOOK_PUBLIC_KEY"

// maxBodyBytes bounds what the receiver reads of one message.
const maxBodyBytes = 1 << 20

// Config says where the receiver's keys come from.
type Config struct {
	// SecretFile holds a whsec_ secret (--secret-file); else SecretEnv.
	SecretFile string
	// PublicKeys are whpk_ keys (--public-key); else PublicKeyEnv.
	PublicKeys []string
	// JWKSURL is the webhookserver's JWKS of the organisation
	// (--jwks-url), for example
	// https://labhook.example.com/api/v1/webhooks/jwks/acme.
	JWKSURL string
}

// LoadKeys returns the keys c names: the whsec_ secret from c.SecretFile or
// the SecretEnv environment variable (read through getenv), whpk_ public
// keys from c.PublicKeys or PublicKeyEnv, and the JWKS at c.JWKSURL. At
// least one is needed.
func LoadKeys(c Config, getenv func(string) string) (KeySource, error) {
	var keys []string
	secret, err := loadSecret(c.SecretFile, getenv)
	if err != nil {
		return nil, err
	}
	if secret != "" {
		keys = append(keys, secret)
	}
	pubs := c.PublicKeys
	if len(pubs) == 0 && getenv(PublicKeyEnv) != "" {
		pubs = strings.Split(getenv(PublicKeyEnv), ",")
	}
	for _, pk := range pubs {
		pk = strings.TrimSpace(pk)
		if wire.IsPrivateKey(pk) {
			return nil, fmt.Errorf("public key: %w", wire.ErrPrivateKeyToVerify)
		}
		if _, err := wire.NewJWK(pk); err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		keys = append(keys, pk)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("jwks url %q is not an absolute http(s) URL", c.JWKSURL)
		}
		return NewJWKSKeys(c.JWKSURL, keys), nil
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key to verify with: set %s or --secret-file (hmac-sha256), or --public-key, %s or --jwks-url (ed25519)",
			SecretEnv, PublicKeyEnv)
	}
	return StaticKeys(keys), nil
}

// loadSecret returns the whsec_ secret from file when file is set, else
// from SecretEnv, or "" when neither is set.
func loadSecret(file string, getenv func(string) string) (string, error) {
	var secret string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
	} else {
		secret = strings.TrimSpace(getenv(SecretEnv))
	}
	if secret != "" && !strings.HasPrefix(secret, wire.SecretPrefix) {
		return "", fmt.Errorf("the signing secret must start with %s", wire.SecretPrefix)
	}
	return secret, nil
}

// KeySource gives a Handler the keys it verifies with.
type KeySource interface {
	// Keys returns whsec_ secrets and whpk_ public keys.
	Keys(ctx context.Context) ([]string, error)
	// Refresh is called when no key verified a message: a source that can
	// fetch newer keys does so, within its own rate bound, and reports
	// whether the keys changed.
	Refresh(ctx context.Context) bool
}

// StaticKeys is a KeySource of fixed keys.
type StaticKeys []string

// Keys returns k.
func (k StaticKeys) Keys(context.Context) ([]string, error) { return k, nil }

// Refresh does nothing: fixed keys do not change.
func (StaticKeys) Refresh(context.Context) bool { return false }

// Bounds of JWKSKeys.
const (
	// jwksMaxAge is how long fetched keys are used before they are fetched
	// again (the webhookserver says Cache-Control: max-age=30).
	jwksMaxAge = 30 * time.Second
	// jwksMinRefresh is the least time between two fetches a bad signature
	// causes, so that a sender of garbage cannot make the receiver hammer
	// the webhookserver. It is under labhook's first retry delay (5s), so a
	// retry can always fetch again.
	jwksMinRefresh = 3 * time.Second
	// jwksMaxBytes bounds a JWKS answer (32 keys are about 6 KiB).
	jwksMaxBytes = 64 << 10
	jwksTimeout  = 10 * time.Second
)

// JWKSKeys is a KeySource of the public keys a JWKS URL serves, plus fixed
// keys. Fetched keys are used for jwksMaxAge; a message no key verifies
// fetches them again, at most every jwksMinRefresh. When a fetch fails the
// last keys fetched stay in use.
type JWKSKeys struct {
	url    string
	static []string
	client *http.Client

	mu          sync.Mutex
	fetched     []string
	fetchedAt   time.Time
	lastAttempt time.Time // of any fetch
	lastRefresh time.Time // of a fetch Refresh made
}

// NewJWKSKeys returns a JWKSKeys for url, with static keys beside it.
func NewJWKSKeys(url string, static []string) *JWKSKeys {
	return &JWKSKeys{url: url, static: static, client: &http.Client{Timeout: jwksTimeout}}
}

// Keys returns the static keys and the fetched ones, fetching when they
// are older than jwksMaxAge.
func (j *JWKSKeys) Keys(ctx context.Context) ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if time.Since(j.fetchedAt) > jwksMaxAge && time.Since(j.lastAttempt) > time.Second {
		if err := j.fetchLocked(ctx); err != nil && j.fetchedAt.IsZero() {
			return nil, err
		}
	}
	return append(slices.Clone(j.static), j.fetched...), nil
}

// Refresh fetches the keys again unless an earlier Refresh did in the last
// jwksMinRefresh, and reports whether they changed. A fetch for Keys does
// not count: a key published a moment after it must still be found.
func (j *JWKSKeys) Refresh(ctx context.Context) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if time.Since(j.lastRefresh) < jwksMinRefresh {
		return false
	}
	j.lastRefresh = time.Now()
	before := j.fetched
	return j.fetchLocked(ctx) == nil && !slices.Equal(before, j.fetched)
}

func (j *JWKSKeys) fetchLocked(ctx context.Context) error {
	j.lastAttempt = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	switch {
	case err != nil:
		return fmt.Errorf("jwks: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("jwks: %s answered HTTP %d", j.url, resp.StatusCode)
	case len(body) > jwksMaxBytes:
		return fmt.Errorf("jwks: %s answered more than %d bytes", j.url, jwksMaxBytes)
	}
	var set wire.JWKS
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys, err := set.PublicKeys()
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	j.fetched, j.fetchedAt = keys, time.Now()
	return nil
}

// Received is one verified message as the receiver saw it.
type Received struct {
	// Message is the decoded body.
	Message wire.OutgoingMessage
	// Authorization is the Authorization header that came with it, if any.
	Authorization string
	// Duplicate is true when this message_id had been received before: a
	// retry after a lost answer. Receivers must deduplicate on message_id.
	Duplicate bool
	// Time is when it arrived.
	Time time.Time
}

// Handler verifies, logs and records outgoing messages. It answers every
// path, so it works whatever path the WebhookConfig's url names.
type Handler struct {
	keys KeySource
	log  *slog.Logger

	mu       sync.Mutex
	received []Received
	seen     map[string]bool
}

// NewHandler returns a Handler verifying with the keys of keys (a
// StaticKeys of a whsec_ secret, say) and logging to log.
func NewHandler(keys KeySource, log *slog.Logger) *Handler {
	return &Handler{keys: keys, log: log, seen: map[string]bool{}}
}

// verify checks a message against the current keys, and once more after a
// refresh when none matched (the sender may have a key the receiver has
// not fetched yet).
func (h *Handler) verify(ctx context.Context, header http.Header, body []byte) error {
	keys, err := h.keys.Keys(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 && h.keys.Refresh(ctx) {
		// An organisation's first key may be published a moment before its
		// first message.
		if keys, err = h.keys.Keys(ctx); err != nil {
			return err
		}
	}
	if len(keys) == 0 {
		return errNoKeys
	}
	err = wire.VerifyAny(keys, header, body)
	if errors.Is(err, wire.ErrNoMatchingSignature) && h.keys.Refresh(ctx) {
		if keys, kerr := h.keys.Keys(ctx); kerr == nil {
			err = wire.VerifyAny(keys, header, body)
		}
	}
	return err
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	msgID := r.Header.Get(wire.HeaderWebhookID)
	if err := h.verify(r.Context(), r.Header, body); err != nil {
		if !isVerificationFailure(err) {
			// No keys to verify with (the JWKS cannot be fetched): the
			// sender retries later.
			h.log.Error("cannot verify message: no keys", "webhook_id", msgID, "error", err.Error())
			w.Header().Set("Retry-After", "5")
			http.Error(w, "cannot verify now", http.StatusServiceUnavailable)
			return
		}
		h.log.Warn("refused message: bad signature", "webhook_id", msgID, "error", err.Error())
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var m wire.OutgoingMessage
	if err := json.Unmarshal(body, &m); err != nil {
		h.log.Warn("refused message: not a labhook message", "webhook_id", msgID, "error", err.Error())
		http.Error(w, "body is not an outgoing message", http.StatusBadRequest)
		return
	}

	h.mu.Lock()
	dup := h.seen[m.MessageID]
	h.seen[m.MessageID] = true
	h.received = append(h.received, Received{
		Message: m, Authorization: r.Header.Get("Authorization"), Duplicate: dup, Time: time.Now(),
	})
	h.mu.Unlock()

	h.log.Info("received message",
		"message_id", m.MessageID,
		"type", m.Type,
		"status", m.Status,
		"entity_ids", m.EntityIDs,
		"timestamp", m.Timestamp,
		"duplicate", dup,
	)
	w.WriteHeader(http.StatusNoContent)
}

// errNoKeys is a JWKS that holds no key (yet).
var errNoKeys = errors.New("no key to verify with yet")

// isVerificationFailure tells a message that does not verify from keys
// that cannot be had.
func isVerificationFailure(err error) bool {
	for _, e := range []error{wire.ErrNoMatchingSignature, wire.ErrMessageTooOld, wire.ErrMessageTooNew,
		wire.ErrRequiredHeaders, wire.ErrInvalidHeaders, wire.ErrWeakSecret, wire.ErrInvalidKey, wire.ErrPrivateKeyToVerify} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Received returns a copy of every verified message, oldest first.
func (h *Handler) Received() []Received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Received(nil), h.received...)
}

// Serve answers on ln until ctx is done, then drains in-flight requests.
// /healthz answers 200; every other path goes to h.
func Serve(ctx context.Context, ln net.Listener, h *Handler) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("/", h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
