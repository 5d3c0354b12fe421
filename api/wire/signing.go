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

package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Standard Webhooks header names, as sent with every outgoing message.
const (
	HeaderWebhookID        = standardwebhooks.HeaderWebhookID
	HeaderWebhookTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderWebhookSignature = standardwebhooks.HeaderWebhookSignature
)

// Verification failures, re-exported from the Standard Webhooks library so
// receivers can tell them apart with errors.Is without importing it. The
// same errors are returned for v1a (Ed25519) signatures.
var (
	ErrRequiredHeaders     = standardwebhooks.ErrRequiredHeaders
	ErrInvalidHeaders      = standardwebhooks.ErrInvalidHeaders
	ErrNoMatchingSignature = standardwebhooks.ErrNoMatchingSignature
	ErrMessageTooOld       = standardwebhooks.ErrMessageTooOld
	ErrMessageTooNew       = standardwebhooks.ErrMessageTooNew
)

// Key prefixes of the Standard Webhooks specification. A key's prefix
// says its scheme, so a list of keys can mix them (during a switch from
// one scheme to the other, both sign).
const (
	// SecretPrefix starts a shared HMAC-SHA256 secret (signatures "v1,").
	SecretPrefix = "whsec_"
	// PrivateKeyPrefix starts an Ed25519 private key (signatures "v1a,"):
	// whsk_ + base64 of the 32-byte RFC 8032 private key (the seed). The
	// 64-byte form (seed followed by the public key, as Go and libsodium
	// keep it) is accepted too.
	PrivateKeyPrefix = "whsk_"
	// PublicKeyPrefix starts an Ed25519 public key: whpk_ + base64 of the
	// 32-byte RFC 8032 public key. It verifies v1a signatures and may be
	// published.
	PublicKeyPrefix = "whpk_"
)

// MinSecretBytes is the shortest key Sign and Verify accept. It exists so
// that a receiver whose secret is misconfigured as empty (an unset
// environment variable) rejects every message instead of accepting
// messages anyone can sign with the empty key.
const MinSecretBytes = 16

// Tolerance is how far a webhook-timestamp may be from the verifier's
// clock, either way; the Standard Webhooks library uses the same.
const Tolerance = 5 * time.Minute

// maxAsymmetricSignatures bounds the v1a signatures one verification
// tries: a rotation needs two, and a sender must not make a receiver run
// hundreds of Ed25519 verifications for one message.
const maxAsymmetricSignatures = 16

// ErrWeakSecret is returned for a secret that is not whsec_ + base64 of at
// least MinSecretBytes bytes. The secret itself is never in the error.
var ErrWeakSecret = errors.New("secret is not whsec_ + base64 of at least 16 bytes")

// ErrInvalidKey is returned for a whsk_ or whpk_ key that is not base64 of
// an Ed25519 key of the right length. The key itself is never in the error.
var ErrInvalidKey = errors.New("key is not whsk_ + base64 of a 32-byte Ed25519 private key, or whpk_ + base64 of a 32-byte Ed25519 public key")

// ErrPrivateKeyToVerify is returned when a whsk_ private key is given to
// verify with. Receivers need only the public key (whpk_); a private key
// on a receiver is one more place it can leak from.
var ErrPrivateKeyToVerify = errors.New("verify with the public key (whpk_), not the private key (whsk_)")

// ErrPublicKeyToSign is returned when a whpk_ public key is given to sign with.
var ErrPublicKeyToSign = errors.New("a public key (whpk_) cannot sign; use the private key (whsk_)")

// key is one parsed key: exactly one of its fields is set.
type key struct {
	hmac *standardwebhooks.Webhook // whsec_ (or unprefixed base64)
	priv ed25519.PrivateKey        // whsk_
	pub  ed25519.PublicKey         // whpk_
}

// parseKey reads a whsec_, whsk_ or whpk_ key. A value with none of these
// prefixes is read as the base64 of an HMAC secret, as the Standard
// Webhooks library does.
func parseKey(s string) (key, error) {
	switch {
	case strings.HasPrefix(s, PrivateKeyPrefix):
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PrivateKeyPrefix))
		switch {
		case err == nil && len(b) == ed25519.SeedSize:
			return key{priv: ed25519.NewKeyFromSeed(b)}, nil
		case err == nil && len(b) == ed25519.PrivateKeySize:
			// The 64-byte form repeats the public key: it must be the one
			// the seed gives, or signatures would not verify with it.
			priv := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
			if string(priv) == string(b) {
				return key{priv: priv}, nil
			}
		}
		return key{}, ErrInvalidKey
	case strings.HasPrefix(s, PublicKeyPrefix):
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PublicKeyPrefix))
		if err != nil || len(b) != ed25519.PublicKeySize {
			return key{}, ErrInvalidKey
		}
		return key{pub: ed25519.PublicKey(b)}, nil
	default:
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		if err != nil || len(b) < MinSecretBytes {
			return key{}, ErrWeakSecret
		}
		wh, err := standardwebhooks.NewWebhookRaw(b)
		if err != nil {
			return key{}, err
		}
		return key{hmac: wh}, nil
	}
}

// GenerateSecret returns a new signing secret: "whsec_" + base64 of 32
// random bytes.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate signing secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// GenerateKeyPair returns a new Ed25519 key pair: the private key as whsk_
// + base64 of its 32-byte seed, the public key as whpk_ + base64 of its 32
// bytes.
func GenerateKeyPair() (privateKey, publicKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return PrivateKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()),
		PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub), nil
}

// PublicKey returns the whpk_ public key of a whsk_ private key.
func PublicKey(privateKey string) (string, error) {
	if !strings.HasPrefix(privateKey, PrivateKeyPrefix) {
		return "", ErrInvalidKey
	}
	k, err := parseKey(privateKey)
	if err != nil {
		return "", err
	}
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(k.priv.Public().(ed25519.PublicKey)), nil
}

// CheckSigningKey reports whether key can sign: a whsec_ secret of at
// least MinSecretBytes, or a whsk_ Ed25519 private key. It costs less than
// signing (a 32-byte private key is not expanded), so a caller can check
// keys ahead of every attempt. The error never contains the key.
func CheckSigningKey(key string) error {
	if strings.HasPrefix(key, PrivateKeyPrefix) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key, PrivateKeyPrefix))
		if err == nil && len(b) == ed25519.SeedSize {
			return nil
		}
	}
	k, err := parseKey(key)
	if err == nil && k.pub != nil {
		return ErrPublicKeyToSign
	}
	return err
}

// IsPrivateKey reports whether s is written as an Ed25519 private key
// (whsk_), that is, signs v1a; it does not check the key itself.
func IsPrivateKey(s string) bool { return strings.HasPrefix(s, PrivateKeyPrefix) }

// signedContent is what both schemes sign: "id.timestamp.body".
func signedContent(msgID string, ts time.Time, body []byte) []byte {
	b := make([]byte, 0, len(msgID)+len(body)+22)
	b = append(b, msgID...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts.Unix(), 10)
	b = append(b, '.')
	return append(b, body...)
}

// Sign returns the webhook-signature header value for one message attempt:
// one signature per key, space-separated, as Standard Webhooks allows
// during a rotation. A whsec_ secret gives "v1,<base64 HMAC-SHA256>" (by
// the Standard Webhooks library), a whsk_ private key gives
// "v1a,<base64 Ed25519 signature>", both of "id.timestamp.body".
func Sign(keys []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(keys) == 0 {
		return "", errors.New("sign: no signing secret")
	}
	sigs := make([]string, 0, len(keys))
	for i, s := range keys {
		k, err := parseKey(s)
		if err != nil {
			return "", fmt.Errorf("sign: secret %d: %w", i, err)
		}
		switch {
		case k.hmac != nil:
			sig, err := k.hmac.Sign(msgID, ts, body)
			if err != nil {
				return "", fmt.Errorf("sign: %w", err)
			}
			sigs = append(sigs, sig)
		case k.priv != nil:
			sig := ed25519.Sign(k.priv, signedContent(msgID, ts, body))
			sigs = append(sigs, "v1a,"+base64.StdEncoding.EncodeToString(sig))
		default:
			return "", fmt.Errorf("sign: secret %d: %w", i, ErrPublicKeyToSign)
		}
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a received message against one key: a whsec_ secret
// (v1 signatures) or a whpk_ public key (v1a signatures). See VerifyAny.
func Verify(key string, headers http.Header, body []byte) error {
	return VerifyAny([]string{key}, headers, body)
}

// VerifyAny checks a received message against keys, whsec_ secrets and
// whpk_ public keys alike (say, every key of a JWKS): the webhook-id,
// webhook-timestamp and webhook-signature headers, the body, and a
// timestamp within Tolerance of now (which bounds replays; keep the
// webhook-id of recent messages to drop duplicates). Any one signature
// that any key verifies suffices, so receivers keep working through a
// rotation. HMAC signatures are checked by the Standard Webhooks library,
// in constant time; Ed25519 ones by crypto/ed25519.
//
// Errors wrap ErrNoMatchingSignature, ErrMessageTooOld, ErrMessageTooNew,
// ErrRequiredHeaders, ErrInvalidHeaders, or, for an unusable key,
// ErrWeakSecret, ErrInvalidKey or ErrPrivateKeyToVerify.
func VerifyAny(keys []string, headers http.Header, body []byte) error {
	return verify(keys, headers, body, true)
}

// VerifyIgnoringTimestamp is Verify without the replay window: for a
// message recorded earlier and checked now (kubectl labhook verify
// --ignore-timestamp). A receiver must not use it for live traffic.
func VerifyIgnoringTimestamp(key string, headers http.Header, body []byte) error {
	return verify([]string{key}, headers, body, false)
}

func verify(keys []string, headers http.Header, body []byte, checkTime bool) error {
	if len(keys) == 0 {
		return fmt.Errorf("verify: no key: %w", ErrWeakSecret)
	}
	parsed := make([]key, 0, len(keys))
	for _, s := range keys {
		k, err := parseKey(s)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if k.priv != nil {
			return fmt.Errorf("verify: %w", ErrPrivateKeyToVerify)
		}
		parsed = append(parsed, k)
	}
	now := time.Now()
	if !checkTime {
		if ts, err := strconv.ParseInt(headers.Get(HeaderWebhookTimestamp), 10, 64); err == nil {
			now = time.Unix(ts, 0)
		}
	}
	msgID, ts, err := checkHeaders(headers, now)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var content []byte // built once, for the first public key
	for _, k := range parsed {
		if k.hmac != nil {
			// The timestamp is checked above, the same way.
			if k.hmac.VerifyIgnoringTimestamp(body, headers) == nil {
				return nil
			}
			continue
		}
		if content == nil {
			content = signedContent(msgID, ts, body)
		}
		if verifyEd25519(k.pub, headers.Get(HeaderWebhookSignature), content) {
			return nil
		}
	}
	return fmt.Errorf("verify: %w", ErrNoMatchingSignature)
}

// checkHeaders reads webhook-id and webhook-timestamp, as the Standard
// Webhooks library does, and checks the timestamp against now.
func checkHeaders(h http.Header, now time.Time) (string, time.Time, error) {
	msgID, sig, tsHeader := h.Get(HeaderWebhookID), h.Get(HeaderWebhookSignature), h.Get(HeaderWebhookTimestamp)
	if msgID == "" || sig == "" || tsHeader == "" {
		return "", time.Time{}, ErrRequiredHeaders
	}
	unix, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("timestamp header: %w", ErrInvalidHeaders)
	}
	ts := time.Unix(unix, 0)
	if now.Sub(ts) > Tolerance {
		return "", time.Time{}, ErrMessageTooOld
	}
	if ts.After(now.Add(Tolerance)) {
		return "", time.Time{}, ErrMessageTooNew
	}
	return msgID, ts, nil
}

// verifyEd25519 reports whether one of the first maxAsymmetricSignatures
// v1a signatures of header is pub's signature of content.
func verifyEd25519(pub ed25519.PublicKey, header string, content []byte) bool {
	tried := 0
	for _, versioned := range strings.Split(header, " ") {
		b64, ok := strings.CutPrefix(versioned, "v1a,")
		if !ok {
			continue
		}
		if tried++; tried > maxAsymmetricSignatures {
			return false
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, content, sig) {
			return true
		}
	}
	return false
}
