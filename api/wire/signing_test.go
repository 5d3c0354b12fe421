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
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/labhook/labhook/api/wire"
)

// The test vectors of docs/receiving.md. Keep both in sync.
const (
	vectorSecret         = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorPreviousSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	vectorID             = "msg-vector-1"
	vectorUnix           = 1700000000
	vectorBody           = `{"message_id":"msg-vector-1","type":"RESOURCE","status":"CREATED","entity_ids":["vm-1"],` +
		`"timestamp":"2023-11-14T22:13:20+00:00","context":{"name":"vm-1","namespace":"acme"},` +
		`"callback":"https://labhook.example.com/api/v1/webhooks/events/incoming"}`
	vectorSignature         = "v1,eNj4fT6HVnJRrIiQGhI/SMNU+KvSstvrBJRElNBzbX4="
	vectorPreviousSignature = "v1,6UZXCKZC6WnBP1AEF8dcgNFkwSyvjtMghbqJZzw//kA="
)

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(wire.HeaderWebhookID, id)
	h.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(wire.HeaderWebhookSignature, sig)
	return h
}

func TestVectorBodyIsWhatOutgoingMessageMarshals(t *testing.T) {
	b, err := wire.OutgoingMessage{
		MessageID: vectorID, Type: wire.TypeResource, Status: wire.StatusCreated, EntityIDs: []string{"vm-1"},
		Timestamp: wire.FormatTimestamp(time.Unix(vectorUnix, 0)),
		Context:   []byte(`{"name":"vm-1","namespace":"acme"}`),
		Callback:  "https://labhook.example.com/api/v1/webhooks/events/incoming",
	}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != vectorBody {
		t.Errorf("Marshal =\n%s\nwant\n%s", b, vectorBody)
	}
}

func TestSignMatchesVectors(t *testing.T) {
	cases := []struct {
		name    string
		secrets []string
		id      string
		unix    int64
		body    string
		want    string
	}{
		// The Standard Webhooks specification's own example.
		{"standard webhooks spec", []string{vectorSecret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, `{"test": 2432232314}`,
			"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
		{"labhook message", []string{vectorSecret}, vectorID, vectorUnix, vectorBody, vectorSignature},
		{"during a rotation", []string{vectorSecret, vectorPreviousSecret}, vectorID, vectorUnix, vectorBody,
			vectorSignature + " " + vectorPreviousSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wire.Sign(tc.secrets, tc.id, time.Unix(tc.unix, 0), []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Sign = %q, want %q", got, tc.want)
			}
			// Every secret alone verifies the header, with the reference verifier.
			for _, s := range tc.secrets {
				wh, err := standardwebhooks.NewWebhook(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := wh.VerifyIgnoringTimestamp([]byte(tc.body), headers(tc.id, tc.unix, got)); err != nil {
					t.Errorf("standardwebhooks verify with %s…: %v", s[:10], err)
				}
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	sig, err := wire.Sign([]string{vectorSecret, vectorPreviousSecret}, vectorID, now, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	other, err := wire.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		secret  string
		headers http.Header
		body    string
		want    error // nil: verifies
	}{
		{"current secret", vectorSecret, headers(vectorID, now.Unix(), sig), vectorBody, nil},
		{"previous secret during rotation", vectorPreviousSecret, headers(vectorID, now.Unix(), sig), vectorBody, nil},
		{"unrelated secret", other, headers(vectorID, now.Unix(), sig), vectorBody, wire.ErrNoMatchingSignature},
		{"body changed", vectorSecret, headers(vectorID, now.Unix(), sig), strings.Replace(vectorBody, "vm-1", "vm-2", 1), wire.ErrNoMatchingSignature},
		{"id changed", vectorSecret, headers("msg-vector-2", now.Unix(), sig), vectorBody, wire.ErrNoMatchingSignature},
		{"timestamp changed", vectorSecret, headers(vectorID, now.Unix()+1, sig), vectorBody, wire.ErrNoMatchingSignature},
		{"fixed vector is too old", vectorSecret, headers(vectorID, vectorUnix, vectorSignature), vectorBody, wire.ErrMessageTooOld},
		{"from the future", vectorSecret, headers(vectorID, now.Add(time.Hour).Unix(), sig), vectorBody, wire.ErrMessageTooNew},
		{"no signature", vectorSecret, headers(vectorID, now.Unix(), ""), vectorBody, wire.ErrRequiredHeaders},
		{"v2 signature only", vectorSecret, headers(vectorID, now.Unix(), strings.ReplaceAll(sig, "v1,", "v2,")), vectorBody, wire.ErrNoMatchingSignature},
		{"empty secret", "", headers(vectorID, now.Unix(), sig), vectorBody, wire.ErrWeakSecret},
		{"short secret", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), headers(vectorID, now.Unix(), sig), vectorBody, wire.ErrWeakSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := wire.Verify(tc.secret, tc.headers, []byte(tc.body))
			if tc.want == nil && err != nil {
				t.Fatalf("Verify = %v, want success", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignRefusesUnusableSecrets(t *testing.T) {
	for _, secrets := range [][]string{nil, {""}, {"whsec_!!!"}, {vectorSecret, "whsec_c2hvcnQ="}} {
		if _, err := wire.Sign(secrets, "id", time.Now(), nil); err == nil {
			t.Errorf("Sign(%q) succeeded", secrets)
		}
	}
}

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s, err := wire.GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, wire.SecretPrefix))
		if !strings.HasPrefix(s, wire.SecretPrefix) || err != nil || len(key) != 32 {
			t.Fatalf("GenerateSecret = %q, want whsec_ + base64 of 32 bytes", s)
		}
		if seen[s] {
			t.Fatalf("GenerateSecret repeated %q", s)
		}
		seen[s] = true
		if _, err := standardwebhooks.NewWebhook(s); err != nil {
			t.Fatalf("standardwebhooks rejects %q: %v", s, err)
		}
	}
}

// FuzzVerify feeds arbitrary headers, bodies and secrets to Verify: it must
// never panic, and must never accept a body other than the signed one.
func FuzzVerify(f *testing.F) {
	f.Add(vectorSecret, vectorID, strconv.Itoa(vectorUnix), vectorSignature, []byte(vectorBody))
	f.Add(vectorSecret, "x", "99999999999999999999", "v1,", []byte{})
	f.Add("whsec_", "", "-1", "v1,a v1,b ,, v2", []byte("{}"))
	f.Add("", "id", "0", "v1,AAAA", []byte(nil))
	signed := []byte(vectorBody)
	f.Fuzz(func(t *testing.T, secret, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(wire.HeaderWebhookID, id)
		h.Set(wire.HeaderWebhookTimestamp, ts)
		h.Set(wire.HeaderWebhookSignature, sig)
		_ = wire.Verify(secret, h, body)

		// A fresh, valid signature over signed must not verify another body.
		now := time.Now()
		good, err := wire.Sign([]string{vectorSecret}, id, now, signed)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(wire.HeaderWebhookSignature, good)
		err = wire.Verify(vectorSecret, h, body)
		if string(body) == string(signed) {
			if id != "" && err != nil {
				t.Fatalf("valid signature rejected: %v", err)
			}
		} else if err == nil {
			t.Fatalf("signature over another body accepted for %q", body)
		}
	})
}
