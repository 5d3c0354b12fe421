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
	"io"
	"log/slog"
	"net"
	"net/http"
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
func start(t *testing.T, secret string) (url string, h *receiver.Handler, logs *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	h = receiver.NewHandler(secret, slog.New(slog.NewJSONHandler(logs, nil)))
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
			url, h, logs := start(t, secret)
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
	url, h, logs := start(t, secret)
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

func TestLoadSecret(t *testing.T) {
	secret := newSecret(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == receiver.SecretEnv {
				return v
			}
			return ""
		}
	}
	cases := []struct {
		name, file, env, want string
		wantErr               bool
	}{
		{name: "from the environment", env: secret, want: secret},
		{name: "from a file, trailing newline trimmed", file: file, env: "whsec_ignored", want: secret},
		{name: "none", wantErr: true},
		{name: "not a whsec_ secret", env: "hunter2", wantErr: true},
		{name: "missing file", file: filepath.Join(t.TempDir(), "absent"), wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := receiver.LoadSecret(c.file, env(c.env))
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("LoadSecret = %q, %v; want %q, error=%v", got, err, c.want, c.wantErr)
			}
		})
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
