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

	// The Ed25519 key of RFC 8032 section 7.1, test 1, and of RFC 8037
	// appendix A; the signature was computed with Python's cryptography
	// package, not with labhook.
	vectorPrivateKey       = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
	vectorPublicKey        = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	vectorEd25519Signature = "v1a,eACniWrGJmVLOTkVXNGv1wCH2xmgibaiGMcuutZLFL9EhtT2y/pH1mv4/DEos9/U+/A/oD6rJqyrbJupGtJdDQ=="
	// RFC 8037 appendix A.1 (x) and A.3 (its RFC 7638 thumbprint).
	vectorJWKX   = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	vectorJWKKid = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
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

func TestVerifyIgnoringTimestampChecksTheSignatureOnly(t *testing.T) {
	// The fixed vector is years old: only its signature is checked.
	if err := wire.VerifyIgnoringTimestamp(vectorSecret, headers(vectorID, vectorUnix, vectorSignature), []byte(vectorBody)); err != nil {
		t.Fatalf("VerifyIgnoringTimestamp(vector) = %v, want success", err)
	}
	if err := wire.Verify(vectorSecret, headers(vectorID, vectorUnix, vectorSignature), []byte(vectorBody)); !errors.Is(err, wire.ErrMessageTooOld) {
		t.Fatalf("Verify(vector) = %v, want %v", err, wire.ErrMessageTooOld)
	}
	changed := strings.Replace(vectorBody, "vm-1", "vm-2", 1)
	if err := wire.VerifyIgnoringTimestamp(vectorSecret, headers(vectorID, vectorUnix, vectorSignature), []byte(changed)); !errors.Is(err, wire.ErrNoMatchingSignature) {
		t.Fatalf("VerifyIgnoringTimestamp(changed body) = %v, want %v", err, wire.ErrNoMatchingSignature)
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

func TestSignEd25519MatchesVectors(t *testing.T) {
	cases := []struct {
		name string
		keys []string
		want string
	}{
		{"private key", []string{vectorPrivateKey}, vectorEd25519Signature},
		{"switching from hmac: the new key first, the old secret during the grace period",
			[]string{vectorPrivateKey, vectorSecret}, vectorEd25519Signature + " " + vectorSignature},
		{"switching to hmac", []string{vectorSecret, vectorPrivateKey}, vectorSignature + " " + vectorEd25519Signature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wire.Sign(tc.keys, vectorID, time.Unix(vectorUnix, 0), []byte(vectorBody))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Sign = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPublicKeyAndKeyForms(t *testing.T) {
	pub, err := wire.PublicKey(vectorPrivateKey)
	if err != nil || pub != vectorPublicKey {
		t.Fatalf("PublicKey = %q, %v; want %q", pub, err, vectorPublicKey)
	}
	seed, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorPrivateKey, wire.PrivateKeyPrefix))
	pubBytes, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorPublicKey, wire.PublicKeyPrefix))
	long := wire.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(append(append([]byte{}, seed...), pubBytes...))
	if got, err := wire.Sign([]string{long}, vectorID, time.Unix(vectorUnix, 0), []byte(vectorBody)); err != nil || got != vectorEd25519Signature {
		t.Errorf("the 64-byte form of the private key signs %q, %v; want %q", got, err, vectorEd25519Signature)
	}
	wrongHalf := append(append([]byte{}, seed...), make([]byte, 32)...)
	for name, k := range map[string]string{
		"64 bytes whose public half is not the seed's": wire.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(wrongHalf),
		"31 bytes":   wire.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(seed[:31]),
		"not base64": "whsk_!!!",
		"public key": vectorPublicKey,
		"hmac":       vectorSecret,
	} {
		if _, err := wire.PublicKey(k); !errors.Is(err, wire.ErrInvalidKey) {
			t.Errorf("PublicKey(%s) = %v, want ErrInvalidKey", name, err)
		}
	}
	if _, err := wire.Sign([]string{vectorPublicKey}, "id", time.Now(), nil); !errors.Is(err, wire.ErrPublicKeyToSign) {
		t.Errorf("Sign with a public key = %v, want ErrPublicKeyToSign", err)
	}
	for k, want := range map[string]error{
		vectorPrivateKey: nil, long: nil, vectorSecret: nil,
		vectorPublicKey: wire.ErrPublicKeyToSign,
		wire.PrivateKeyPrefix + base64.StdEncoding.EncodeToString(wrongHalf): wire.ErrInvalidKey,
		"whsk_!!!": wire.ErrInvalidKey, "whsec_c2hvcnQ=": wire.ErrWeakSecret, "": wire.ErrWeakSecret,
	} {
		if err := wire.CheckSigningKey(k); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("CheckSigningKey(%.10s…) = %v, want %v", k, err, want)
		}
	}
	if !wire.IsPrivateKey(vectorPrivateKey) || wire.IsPrivateKey(vectorSecret) || wire.IsPrivateKey(vectorPublicKey) {
		t.Error("IsPrivateKey tells the key kinds apart wrongly")
	}
}

func TestGenerateKeyPair(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		priv, pub, err := wire.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		if seen[priv] {
			t.Fatalf("GenerateKeyPair repeated %q", priv)
		}
		seen[priv] = true
		seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(priv, wire.PrivateKeyPrefix))
		if !strings.HasPrefix(priv, wire.PrivateKeyPrefix) || err != nil || len(seed) != 32 {
			t.Fatalf("private key %q is not whsk_ + base64 of 32 bytes", priv[:8])
		}
		if derived, err := wire.PublicKey(priv); err != nil || derived != pub {
			t.Fatalf("PublicKey(private) = %q, %v; want %q", derived, err, pub)
		}
		now := time.Now()
		sig, err := wire.Sign([]string{priv}, "id", now, []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if err := wire.Verify(pub, headers("id", now.Unix(), sig), []byte("{}")); err != nil {
			t.Fatalf("a fresh key pair does not verify its own signature: %v", err)
		}
	}
}

func TestVerifyEd25519(t *testing.T) {
	now := time.Now()
	otherPriv, otherPub, err := wire.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := wire.Sign([]string{otherPriv, vectorPrivateKey}, vectorID, now, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := wire.Sign([]string{vectorPrivateKey, vectorSecret}, vectorID, now, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	single, err := wire.Sign([]string{vectorPrivateKey}, vectorID, now, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	many := strings.Repeat("v1a,"+base64.StdEncoding.EncodeToString(make([]byte, 64))+" ", 16) + single
	cases := []struct {
		name    string
		keys    []string
		headers http.Header
		body    string
		want    error // nil: verifies
	}{
		{"public key", []string{vectorPublicKey}, headers(vectorID, now.Unix(), single), vectorBody, nil},
		{"previous key during a rotation", []string{vectorPublicKey}, headers(vectorID, now.Unix(), rotated), vectorBody, nil},
		{"new key during a rotation", []string{otherPub}, headers(vectorID, now.Unix(), rotated), vectorBody, nil},
		{"v1a with the public key while switching schemes", []string{vectorPublicKey}, headers(vectorID, now.Unix(), mixed), vectorBody, nil},
		{"v1 with the secret while switching schemes", []string{vectorSecret}, headers(vectorID, now.Unix(), mixed), vectorBody, nil},
		{"any of a JWKS's keys", []string{otherPub, vectorPublicKey}, headers(vectorID, now.Unix(), single), vectorBody, nil},
		{"an unrelated key", []string{otherPub}, headers(vectorID, now.Unix(), single), vectorBody, wire.ErrNoMatchingSignature},
		{"a secret for a v1a-only message", []string{vectorSecret}, headers(vectorID, now.Unix(), single), vectorBody, wire.ErrNoMatchingSignature},
		{"body changed", []string{vectorPublicKey}, headers(vectorID, now.Unix(), single), strings.Replace(vectorBody, "vm-1", "vm-2", 1), wire.ErrNoMatchingSignature},
		{"id changed", []string{vectorPublicKey}, headers("msg-vector-2", now.Unix(), single), vectorBody, wire.ErrNoMatchingSignature},
		{"timestamp changed", []string{vectorPublicKey}, headers(vectorID, now.Unix()+1, single), vectorBody, wire.ErrNoMatchingSignature},
		{"v1a signature relabelled v1", []string{vectorPublicKey}, headers(vectorID, now.Unix(), strings.Replace(single, "v1a,", "v1,", 1)), vectorBody, wire.ErrNoMatchingSignature},
		{"past the 16 v1a signatures tried", []string{vectorPublicKey}, headers(vectorID, now.Unix(), many), vectorBody, wire.ErrNoMatchingSignature},
		{"fixed vector is too old", []string{vectorPublicKey}, headers(vectorID, vectorUnix, vectorEd25519Signature), vectorBody, wire.ErrMessageTooOld},
		{"from the future", []string{vectorPublicKey}, headers(vectorID, now.Add(time.Hour).Unix(), single), vectorBody, wire.ErrMessageTooNew},
		{"timestamp not a number", []string{vectorPublicKey}, func() http.Header {
			h := headers(vectorID, 0, single)
			h.Set(wire.HeaderWebhookTimestamp, "soon")
			return h
		}(), vectorBody, wire.ErrInvalidHeaders},
		{"no signature", []string{vectorPublicKey}, headers(vectorID, now.Unix(), ""), vectorBody, wire.ErrRequiredHeaders},
		{"the private key", []string{vectorPrivateKey}, headers(vectorID, now.Unix(), single), vectorBody, wire.ErrPrivateKeyToVerify},
		{"a malformed public key", []string{"whpk_AAAA"}, headers(vectorID, now.Unix(), single), vectorBody, wire.ErrInvalidKey},
		{"no key", nil, headers(vectorID, now.Unix(), single), vectorBody, wire.ErrWeakSecret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := wire.VerifyAny(tc.keys, tc.headers, []byte(tc.body))
			if tc.want == nil && err != nil {
				t.Fatalf("VerifyAny = %v, want success", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyAny = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestJWK(t *testing.T) {
	j, err := wire.NewJWK(vectorPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	want := wire.JWK{Kty: "OKP", Crv: "Ed25519", X: vectorJWKX, Kid: vectorJWKKid, Use: "sig", Alg: "EdDSA"}
	if j != want {
		t.Errorf("NewJWK = %+v, want %+v (RFC 8037 appendix A)", j, want)
	}
	if kid, err := wire.KeyID(vectorPublicKey); err != nil || kid != vectorJWKKid {
		t.Errorf("KeyID = %q, %v", kid, err)
	}
	if pk, err := j.PublicKey(); err != nil || pk != vectorPublicKey {
		t.Errorf("JWK.PublicKey = %q, %v; want %q", pk, err, vectorPublicKey)
	}
	for _, bad := range []string{vectorPrivateKey, vectorSecret, "whpk_AAAA"} {
		if _, err := wire.NewJWK(bad); !errors.Is(err, wire.ErrInvalidKey) {
			t.Errorf("NewJWK(%.8s…) = %v, want ErrInvalidKey", bad, err)
		}
	}

	set := wire.JWKS{Keys: []wire.JWK{{Kty: "RSA", Kid: "rsa"}, j, {Kty: "OKP", Crv: "X25519", X: vectorJWKX}}}
	keys, err := set.PublicKeys()
	if err != nil || len(keys) != 1 || keys[0] != vectorPublicKey {
		t.Errorf("PublicKeys = %q, %v; want only the Ed25519 key", keys, err)
	}
	for name, k := range map[string]wire.JWK{
		"x too short":       {Kty: "OKP", Crv: "Ed25519", X: "AAAA"},
		"x not base64url":   {Kty: "OKP", Crv: "Ed25519", X: "!!!"},
		"an encryption key": {Kty: "OKP", Crv: "Ed25519", X: vectorJWKX, Use: "enc"},
		"another algorithm": {Kty: "OKP", Crv: "Ed25519", X: vectorJWKX, Alg: "ES256"},
	} {
		if _, err := (wire.JWKS{Keys: []wire.JWK{k}}).PublicKeys(); !errors.Is(err, wire.ErrInvalidKey) {
			t.Errorf("PublicKeys with %s = %v, want ErrInvalidKey", name, err)
		}
	}
}

// FuzzVerifyEd25519 feeds arbitrary headers, bodies and keys to VerifyAny:
// it must never panic, and a v1a signature must never verify another body.
func FuzzVerifyEd25519(f *testing.F) {
	f.Add(vectorPublicKey, vectorID, strconv.Itoa(vectorUnix), vectorEd25519Signature, []byte(vectorBody))
	f.Add(vectorPublicKey, "x", "1", "v1a,", []byte{})
	f.Add("whpk_", "", "-1", "v1a,a v1a,b ,, v1,c", []byte("{}"))
	f.Add(vectorPrivateKey, "id", "0", "v1a,AAAA", []byte(nil))
	signed := []byte(vectorBody)
	f.Fuzz(func(t *testing.T, key, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(wire.HeaderWebhookID, id)
		h.Set(wire.HeaderWebhookTimestamp, ts)
		h.Set(wire.HeaderWebhookSignature, sig)
		_ = wire.VerifyAny([]string{key, vectorPublicKey}, h, body)

		now := time.Now()
		good, err := wire.Sign([]string{vectorPrivateKey}, id, now, signed)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(wire.HeaderWebhookSignature, good+" "+sig)
		err = wire.Verify(vectorPublicKey, h, body)
		if string(body) == string(signed) {
			if id != "" && err != nil {
				t.Fatalf("valid signature rejected: %v", err)
			}
		} else if err == nil {
			t.Fatalf("signature over another body accepted for %q", body)
		}
	})
}

// BenchmarkSignAndVerify measures what Ed25519 costs per message against
// HMAC-SHA256 in the same run, on the test vector's body: sign (what
// labhook does per attempt) and verify (what a receiver does). It reports
// the ratio ed25519/hmac of each.
func BenchmarkSignAndVerify(b *testing.B) {
	body := []byte(vectorBody)
	now := time.Now()
	hmacSig, err := wire.Sign([]string{vectorSecret}, vectorID, now, body)
	if err != nil {
		b.Fatal(err)
	}
	edSig, err := wire.Sign([]string{vectorPrivateKey}, vectorID, now, body)
	if err != nil {
		b.Fatal(err)
	}
	hmacH, edH := headers(vectorID, now.Unix(), hmacSig), headers(vectorID, now.Unix(), edSig)
	var signHMAC, signEd, verifyHMAC, verifyEd time.Duration
	timed := func(d *time.Duration, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*d += time.Since(start)
	}
	for b.Loop() {
		timed(&signHMAC, func() error { _, err := wire.Sign([]string{vectorSecret}, vectorID, now, body); return err })
		timed(&signEd, func() error { _, err := wire.Sign([]string{vectorPrivateKey}, vectorID, now, body); return err })
		timed(&verifyHMAC, func() error { return wire.Verify(vectorSecret, hmacH, body) })
		timed(&verifyEd, func() error { return wire.Verify(vectorPublicKey, edH, body) })
	}
	n := float64(b.N)
	b.ReportMetric(float64(signHMAC.Nanoseconds())/n, "sign-hmac-ns")
	b.ReportMetric(float64(signEd.Nanoseconds())/n, "sign-ed25519-ns")
	b.ReportMetric(float64(signEd)/float64(signHMAC), "sign-ratio")
	b.ReportMetric(float64(verifyHMAC.Nanoseconds())/n, "verify-hmac-ns")
	b.ReportMetric(float64(verifyEd.Nanoseconds())/n, "verify-ed25519-ns")
	b.ReportMetric(float64(verifyEd)/float64(verifyHMAC), "verify-ratio")
}
