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

package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/receiver"
)

// syncBuffer is a log sink the server goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a receiver on a real 127.0.0.1 listener until the test ends.
func start(t *testing.T, keys receiver.KeySource) (url string, h *receiver.Handler, logs *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	h = receiver.NewHandler(keys, slog.New(slog.NewJSONHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- receiver.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/webhooks/events", h, logs
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := wire.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seedMessage is seed 001's example, as labhook renders it.
func seedMessage(t *testing.T) []byte {
	t.Helper()
	b, err := wire.OutgoingMessage{
		MessageID: "4dd6be9e", Type: wire.TypeEvent, Status: "STARTED", EntityIDs: []string{"daf24556"},
		Timestamp: "2020-10-05T08:36:09+00:00", Context: json.RawMessage(`{"event":"intro"}`),
		Callback: "https://labhook.example.com/api/v1/webhooks/events/incoming",
	}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body signed with secrets at ts, the way labhook's outbound
// client does, and returns the status code.
func post(t *testing.T, url, msgID string, secrets []string, ts time.Time, body []byte, tamper func(*http.Request)) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(wire.HeaderWebhookID, msgID)
	req.Header.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(secrets) > 0 {
		sig, err := wire.Sign(secrets, msgID, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(wire.HeaderWebhookSignature, sig)
	}
	if tamper != nil {
		tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverAcceptsSignedMessagesAndRefusesTheRest(t *testing.T) {
	secret, other := newSecret(t), newSecret(t)
	body := seedMessage(t)
	now := time.Now()
	cases := []struct {
		name     string
		secrets  []string
		ts       time.Time
		body     []byte
		tamper   func(*http.Request)
		want     int
		recorded bool
	}{
		{name: "signed with the secret", secrets: []string{secret}, ts: now, body: body, want: http.StatusNoContent, recorded: true},
		{name: "signed with the new and the old secret during a rotation", secrets: []string{other, secret}, ts: now, body: body, want: http.StatusNoContent, recorded: true},
		{name: "signed with another secret", secrets: []string{other}, ts: now, body: body, want: http.StatusUnauthorized},
		{name: "not signed", ts: now, body: body, want: http.StatusUnauthorized},
		{name: "body changed after signing", secrets: []string{secret}, ts: now, body: body, want: http.StatusUnauthorized,
			tamper: func(r *http.Request) {
				b := bytes.Replace(body, []byte("STARTED"), []byte("ENDED"), 1)
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			}},
		{name: "webhook-id changed after signing", secrets: []string{secret}, ts: now, body: body, want: http.StatusUnauthorized,
			tamper: func(r *http.Request) { r.Header.Set(wire.HeaderWebhookID, "another") }},
		{name: "timestamp ten minutes old (replay)", secrets: []string{secret}, ts: now.Add(-10 * time.Minute), body: body, want: http.StatusUnauthorized},
		{name: "signed but not JSON", secrets: []string{secret}, ts: now, body: []byte("not json"), want: http.StatusBadRequest},
		{name: "GET", ts: now, body: nil, want: http.StatusMethodNotAllowed,
			tamper: func(r *http.Request) { r.Method = http.MethodGet }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, h, logs := start(t, receiver.StaticKeys{secret})
			got := post(t, url, "4dd6be9e", c.secrets, c.ts, c.body, c.tamper)
			if got != c.want {
				t.Fatalf("status %d, want %d; log:\n%s", got, c.want, logs.String())
			}
			rec := h.Received()
			if c.recorded != (len(rec) == 1) {
				t.Fatalf("recorded %d messages, want recorded=%v", len(rec), c.recorded)
			}
			if strings.Contains(logs.String(), strings.TrimPrefix(secret, wire.SecretPrefix)) {
				t.Fatal("the log contains the signing secret")
			}
		})
	}
}

func TestReceiverLogsEachMessageAsJSON(t *testing.T) {
	secret := newSecret(t)
	url, h, logs := start(t, receiver.StaticKeys{secret})
	for range 2 {
		if got := post(t, url, "4dd6be9e", []string{secret}, time.Now(), seedMessage(t), nil); got != http.StatusNoContent {
			t.Fatalf("status %d", got)
		}
	}

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), logs.String())
	}
	first := lines[0]
	for k, want := range map[string]any{
		"msg": "received message", "message_id": "4dd6be9e", "type": "EVENT", "status": "STARTED",
		"entity_ids": []any{"daf24556"}, "duplicate": false,
	} {
		if got, _ := json.Marshal(first[k]); string(got) != mustJSON(t, want) {
			t.Errorf("log %s = %s, want %s", k, got, mustJSON(t, want))
		}
	}
	if lines[1]["duplicate"] != true {
		t.Errorf("the retry of the same message_id is not logged as a duplicate: %v", lines[1])
	}
	rec := h.Received()
	if len(rec) != 2 || rec[0].Message.Callback != "https://labhook.example.com/api/v1/webhooks/events/incoming" || !rec[1].Duplicate {
		t.Errorf("recorded %+v", rec)
	}
}

func TestLoadKeys(t *testing.T) {
	secret := newSecret(t)
	priv, pub := newKeyPair(t)
	_, pub2 := newKeyPair(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		name    string
		cfg     receiver.Config
		env     func(string) string
		want    []string
		jwks    bool
		wantErr error // nil: any error when wantFail
		fail    bool
	}{
		{name: "secret from the environment", env: env(receiver.SecretEnv, secret), want: []string{secret}},
		{name: "secret from a file, trailing newline trimmed", cfg: receiver.Config{SecretFile: file},
			env: env(receiver.SecretEnv, "whsec_ignored"), want: []string{secret}},
		{name: "public keys from the flag", cfg: receiver.Config{PublicKeys: []string{pub, " " + pub2}},
			env: env(receiver.PublicKeyEnv, "ignored"), want: []string{pub, pub2}},
		{name: "public keys from the environment, beside the secret",
			env: env(receiver.SecretEnv, secret, receiver.PublicKeyEnv, pub+","+pub2), want: []string{secret, pub, pub2}},
		{name: "a JWKS URL", cfg: receiver.Config{JWKSURL: "https://labhook.example.com/api/v1/webhooks/jwks/acme"}, env: env(), jwks: true},
		{name: "none", env: env(), fail: true},
		{name: "not a whsec_ secret", env: env(receiver.SecretEnv, "hunter2"), fail: true},
		{name: "missing file", cfg: receiver.Config{SecretFile: filepath.Join(t.TempDir(), "absent")}, env: env(), fail: true},
		{name: "empty file", cfg: receiver.Config{SecretFile: empty}, env: env(), fail: true},
		{name: "the private key given as public key", cfg: receiver.Config{PublicKeys: []string{priv}}, env: env(),
			fail: true, wantErr: wire.ErrPrivateKeyToVerify},
		{name: "a malformed public key", cfg: receiver.Config{PublicKeys: []string{"whpk_AAAA"}}, env: env(),
			fail: true, wantErr: wire.ErrInvalidKey},
		{name: "a JWKS URL that is not absolute", cfg: receiver.Config{JWKSURL: "labhook/jwks"}, env: env(), fail: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := receiver.LoadKeys(c.cfg, c.env)
			if c.fail {
				if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
					t.Fatalf("LoadKeys = %v, %v; want error %v", got, err, c.wantErr)
				}
				if strings.Contains(err.Error(), strings.TrimPrefix(priv, wire.PrivateKeyPrefix)) {
					t.Fatal("the error contains the private key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, isJWKS := got.(*receiver.JWKSKeys); isJWKS != c.jwks {
				t.Fatalf("LoadKeys = %T, JWKS source %v", got, c.jwks)
			}
			if !c.jwks {
				keys, _ := got.Keys(context.Background())
				if strings.Join(keys, " ") != strings.Join(c.want, " ") {
					t.Fatalf("keys %q, want %q", keys, c.want)
				}
			}
		})
	}
}

func newKeyPair(t *testing.T) (string, string) {
	t.Helper()
	priv, pub, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestReceiverVerifiesEd25519WithPublicKeys(t *testing.T) {
	priv, pub := newKeyPair(t)
	prevPriv, prevPub := newKeyPair(t)
	otherPriv, _ := newKeyPair(t)
	secret := newSecret(t)
	body := seedMessage(t)
	cases := []struct {
		name string
		keys receiver.StaticKeys
		sign []string
		want int
	}{
		{"v1a with the public key", receiver.StaticKeys{pub}, []string{priv}, http.StatusNoContent},
		{"v1a during a rotation, with the previous public key", receiver.StaticKeys{prevPub}, []string{priv, prevPriv}, http.StatusNoContent},
		{"v1a and v1 during a switch, with the secret only", receiver.StaticKeys{secret}, []string{priv, secret}, http.StatusNoContent},
		{"v1a from another key", receiver.StaticKeys{pub}, []string{otherPriv}, http.StatusUnauthorized},
		{"v1 only, with a public key", receiver.StaticKeys{pub}, []string{secret}, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, h, logs := start(t, c.keys)
			if got := post(t, url, "4dd6be9e", c.sign, time.Now(), body, nil); got != c.want {
				t.Fatalf("status %d, want %d; log:\n%s", got, c.want, logs.String())
			}
			if recorded := len(h.Received()) == 1; recorded != (c.want == http.StatusNoContent) {
				t.Fatalf("recorded %v for status %d", recorded, c.want)
			}
		})
	}
}

// jwksServer is a webhookserver's JWKS endpoint on loopback whose keys a
// test changes, counting fetches.
type jwksServer struct {
	url     string
	mu      sync.Mutex
	keys    []string
	fetches int
	down    bool
}

func newJWKSServer(t *testing.T, keys ...string) *jwksServer {
	t.Helper()
	j := &jwksServer{keys: keys}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.fetches++
		if j.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		set := wire.JWKS{Keys: []wire.JWK{{Kty: "RSA", Kid: "ignored"}}}
		for _, k := range j.keys {
			jwk, err := wire.NewJWK(k)
			if err != nil {
				t.Error(err)
			}
			set.Keys = append(set.Keys, jwk)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	j.url = srv.URL + wire.JWKSPathPrefix + "acme"
	return j
}

func (j *jwksServer) set(down bool, keys ...string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.down, j.keys = down, keys
}

func (j *jwksServer) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetches
}

func TestReceiverFetchesTheJWKSAndRefetchesForANewKey(t *testing.T) {
	privA, pubA := newKeyPair(t)
	privB, pubB := newKeyPair(t)
	otherPriv, _ := newKeyPair(t)
	body := seedMessage(t)
	jw := newJWKSServer(t, pubA)
	keys, err := receiver.LoadKeys(receiver.Config{JWKSURL: jw.url}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	url, h, logs := start(t, keys)

	if got := post(t, url, "m1", []string{privA}, time.Now(), body, nil); got != http.StatusNoContent {
		t.Fatalf("signed with the published key: status %d; log:\n%s", got, logs.String())
	}
	if got := post(t, url, "m2", []string{privA}, time.Now(), body, nil); got != http.StatusNoContent || jw.count() != 1 {
		t.Fatalf("second message: status %d after %d fetches, want 204 after 1 (keys are cached)", got, jw.count())
	}

	// A config switched to ed25519 signs with a key the receiver has not
	// fetched yet: the miss fetches the JWKS again.
	jw.set(false, pubA, pubB)
	if got := post(t, url, "m3", []string{privB}, time.Now(), body, nil); got != http.StatusNoContent || jw.count() != 2 {
		t.Fatalf("signed with a newly published key: status %d after %d fetches, want 204 after 2; log:\n%s", got, jw.count(), logs.String())
	}

	// Garbage signatures cannot make it fetch more than once every few seconds.
	for i := range 50 {
		if got := post(t, url, fmt.Sprintf("bad-%d", i), []string{otherPriv}, time.Now(), body, nil); got != http.StatusUnauthorized {
			t.Fatalf("signed with an unpublished key: status %d, want 401", got)
		}
	}
	if n := jw.count(); n > 3 {
		t.Fatalf("50 bad signatures caused %d JWKS fetches, want at most one more", n-2)
	}

	// Keys fetched before stay in use while the JWKS cannot be fetched.
	jw.set(true)
	if got := post(t, url, "m4", []string{privA}, time.Now(), body, nil); got != http.StatusNoContent {
		t.Fatalf("JWKS down, known key: status %d, want 204", got)
	}
	if n := len(h.Received()); n != 4 {
		t.Fatalf("recorded %d messages, want 4", n)
	}
}

func TestReceiverFetchesAgainWhenTheJWKSWasEmpty(t *testing.T) {
	priv, pub := newKeyPair(t)
	jw := newJWKSServer(t)
	keys, err := receiver.LoadKeys(receiver.Config{JWKSURL: jw.url}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if k, err := keys.Keys(context.Background()); err != nil || len(k) != 0 {
		t.Fatalf("keys of an empty JWKS: %q, %v", k, err)
	}
	jw.set(false, pub)
	url, _, logs := start(t, keys)
	if got := post(t, url, "m1", []string{priv}, time.Now(), seedMessage(t), nil); got != http.StatusNoContent {
		t.Fatalf("a key published after the last fetch: status %d, want 204; log:\n%s", got, logs.String())
	}
}

func TestReceiverWithoutKeysAnswers503(t *testing.T) {
	priv, pub := newKeyPair(t)
	jw := newJWKSServer(t, pub)
	jw.set(true)
	keys, err := receiver.LoadKeys(receiver.Config{JWKSURL: jw.url}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	url, h, _ := start(t, keys)
	if got := post(t, url, "m1", []string{priv}, time.Now(), seedMessage(t), nil); got != http.StatusServiceUnavailable {
		t.Fatalf("no key could be fetched: status %d, want 503 so that labhook retries", got)
	}
	if len(h.Received()) != 0 {
		t.Fatal("a message was recorded without verification")
	}

	// A JWKS that answers but holds no key is no better.
	jw.set(false)
	time.Sleep(1100 * time.Millisecond) // past the one-second pause between failed fetches
	if got := post(t, url, "m2", []string{priv}, time.Now(), seedMessage(t), nil); got != http.StatusServiceUnavailable {
		t.Fatalf("an empty JWKS: status %d, want 503", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
