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

package foreignverify_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/foreignverify"
)

// TestReceivingDocShowsTheTestedExamples keeps docs/receiving.md true: the
// code it shows is the code these tests run.
func TestReceivingDocShowsTheTestedExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/receiving.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{foreignverify.NodeExample, foreignverify.PythonExample} {
		src, err := foreignverify.Example(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), src) {
			t.Errorf("docs/receiving.md does not show docs/examples/%s as it is", name)
		}
	}
}

// signed returns a fresh message signed by labhook's wire.Sign with a new
// key pair (current and previous, as during a rotation).
func signed(t *testing.T) (pub, prevPub string, h http.Header, body []byte) {
	t.Helper()
	priv, pub, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	prevPriv, prevPub, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	body, err = wire.OutgoingMessage{MessageID: "4dd6be9e", Type: wire.TypeEvent, Status: "STARTED",
		EntityIDs: []string{"daf24556"}, Timestamp: wire.FormatTimestamp(time.Now()),
		Context: []byte(`{"event":"intro","ünïcode":"✓"}`)}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wire.Sign([]string{priv, prevPriv}, "4dd6be9e", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h = http.Header{}
	h.Set(wire.HeaderWebhookID, "4dd6be9e")
	h.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(wire.HeaderWebhookSignature, sig)
	return pub, prevPub, h, body
}

func TestForeignImplementationsVerifyLabhookSignatures(t *testing.T) {
	verifiers := map[string]func(context.Context, string, http.Header, []byte) error{
		"node crypto.verify":  foreignverify.Node,
		"python cryptography": foreignverify.Python,
	}
	for name, verify := range verifiers {
		t.Run(name, func(t *testing.T) {
			pub, prevPub, h, body := signed(t)
			if err := verify(context.Background(), pub, h, body); errors.Is(err, foreignverify.ErrUnavailable) {
				t.Skipf("%s: %v", name, err)
			} else if err != nil {
				t.Fatalf("the current key does not verify: %v", err)
			}
			if err := verify(context.Background(), prevPub, h, body); err != nil {
				t.Fatalf("the previous key does not verify during a rotation: %v", err)
			}

			// The same verifier refuses what it must, so it cannot pass by accident.
			other, _, _, _ := signed(t)
			tampered := []byte(strings.Replace(string(body), "STARTED", "ENDED", 1))
			old := h.Clone()
			old.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10))
			for what, c := range map[string]struct {
				key  string
				h    http.Header
				body []byte
				want string
			}{
				"another key":      {other, h, body, "no matching signature"},
				"a changed body":   {pub, h, tampered, "no matching signature"},
				"an old timestamp": {pub, old, body, "more than five minutes away"},
			} {
				if err := verify(context.Background(), c.key, c.h, c.body); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: %v, want an error saying %q", what, err, c.want)
				}
			}
		})
	}
}
