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

package wire_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labhook/labhook/api/wire"
)

// receiver is the receiver README.md shows, to the letter (a test checks).
func receiver(keys []string) http.Handler {
	// BEGIN README receiver
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// keys: whsec_ secrets (v1), whpk_ public keys (v1a), or both.
		if err := wire.VerifyAny(keys, r.Header, body); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var msg wire.OutgoingMessage
		if err := json.Unmarshal(body, &msg); err != nil {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		// Delivery is at least once: skip a message_id already handled.
		log.Printf("%s %s %s %v", msg.MessageID, msg.Type, msg.Status, msg.EntityIDs)
		w.WriteHeader(http.StatusNoContent)
	})
	// END README receiver
}

// TestReadmeReceiver: the README's receiver accepts what labhook signs
// with an HMAC secret (v1) and with an Ed25519 key (v1a), and refuses a
// changed body, another key's signature and a stale timestamp.
func TestReadmeReceiver(t *testing.T) {
	log.SetOutput(io.Discard)
	defer log.SetOutput(os.Stderr)
	secret, err := wire.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, _, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(receiver([]string{secret, pub}))
	defer srv.Close()
	body, err := wire.OutgoingMessage{MessageID: "m1", Type: wire.TypeResource, Status: wire.StatusCreated,
		EntityIDs: []string{"r1"}, Timestamp: wire.FormatTimestamp(time.Now())}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	post := func(signWith string, at time.Time, b []byte) int {
		t.Helper()
		sig, err := wire.Sign([]string{signWith}, "m1", at, body)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(b))
		req.Header.Set(wire.HeaderWebhookID, "m1")
		req.Header.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
		req.Header.Set(wire.HeaderWebhookSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	now := time.Now()
	for _, c := range []struct {
		name string
		key  string
		at   time.Time
		body []byte
		want int
	}{
		{"v1 (whsec_)", secret, now, body, http.StatusNoContent},
		{"v1a (whsk_, verified by its whpk_)", priv, now, body, http.StatusNoContent},
		{"changed body", priv, now, append([]byte(" "), body...), http.StatusUnauthorized},
		{"another key", otherPriv, now, body, http.StatusUnauthorized},
		{"stale timestamp", secret, now.Add(-2 * wire.Tolerance), body, http.StatusUnauthorized},
	} {
		if got := post(c.key, c.at, c.body); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// TestReadmeShowsTheTestedReceiver: README.md's code is receiver's body.
func TestReadmeShowsTheTestedReceiver(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(src), "// BEGIN README receiver\n")
	code, _, _ := strings.Cut(rest, "\t// END README receiver")
	if !strings.Contains(string(readme), code) {
		t.Errorf("README.md does not show the tested receiver; it should contain:\n%s", code)
	}
}
