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
// signature with wire.Verify, logs the message as one JSON line, remembers
// it (so tests and make dev can look), and answers 204. A bad signature is
// answered 401 and the message is dropped.
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
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labhook/labhook/api/wire"
)

// SecretEnv is the environment variable holding the signing secret. The
// secret is never taken from a flag value: flags show up in ps and in Pod
// specs.
const SecretEnv = "LABHOOK_SIGNING_SECRET"

// maxBodyBytes bounds what the receiver reads of one message.
const maxBodyBytes = 1 << 20

// LoadSecret returns the whsec_ signing secret from file when file is set,
// else from the SecretEnv environment variable (read through getenv).
func LoadSecret(file string, getenv func(string) string) (string, error) {
	var secret string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		secret = string(b)
	} else {
		secret = getenv(SecretEnv)
	}
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return "", fmt.Errorf("no signing secret: set %s or --secret-file", SecretEnv)
	}
	if !strings.HasPrefix(secret, wire.SecretPrefix) {
		return "", fmt.Errorf("the signing secret must start with %s", wire.SecretPrefix)
	}
	return secret, nil
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
	secret string
	log    *slog.Logger

	mu       sync.Mutex
	received []Received
	seen     map[string]bool
}

// NewHandler returns a Handler verifying with secret (a whsec_ value) and
// logging to log.
func NewHandler(secret string, log *slog.Logger) *Handler {
	return &Handler{secret: secret, log: log, seen: map[string]bool{}}
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
	if err := wire.Verify(h.secret, r.Header, body); err != nil {
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
