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
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
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
// receivers can tell them apart with errors.Is without importing it.
var (
	ErrRequiredHeaders     = standardwebhooks.ErrRequiredHeaders
	ErrInvalidHeaders      = standardwebhooks.ErrInvalidHeaders
	ErrNoMatchingSignature = standardwebhooks.ErrNoMatchingSignature
	ErrMessageTooOld       = standardwebhooks.ErrMessageTooOld
	ErrMessageTooNew       = standardwebhooks.ErrMessageTooNew
)

// SecretPrefix starts every signing secret labhook generates.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest key Sign and Verify accept. It exists so
// that a receiver whose secret is misconfigured as empty (an unset
// environment variable) rejects every message instead of accepting
// messages anyone can sign with the empty key.
const MinSecretBytes = 16

// ErrWeakSecret is returned for a secret that is not whsec_ + base64 of at
// least MinSecretBytes bytes. The secret itself is never in the error.
var ErrWeakSecret = errors.New("secret is not whsec_ + base64 of at least 16 bytes")

// newWebhook parses a whsec_ secret, refusing keys too short to be secret.
func newWebhook(secret string) (*standardwebhooks.Webhook, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) < MinSecretBytes {
		return nil, ErrWeakSecret
	}
	return standardwebhooks.NewWebhookRaw(key)
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

// Sign returns the webhook-signature header value for one message attempt:
// one "v1,<base64 HMAC-SHA256>" per secret, space-separated, as Standard
// Webhooks allows during a secret rotation. Secrets are whsec_ values.
func Sign(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", errors.New("sign: no signing secret")
	}
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		wh, err := newWebhook(s)
		if err != nil {
			return "", fmt.Errorf("sign: secret %d: %w", i, err)
		}
		sig, err := wh.Sign(msgID, ts, body)
		if err != nil {
			return "", fmt.Errorf("sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a received message against secret (a whsec_ value): the
// webhook-id, webhook-timestamp and webhook-signature headers, the body,
// and a timestamp within five minutes of now (which bounds replays; keep
// the webhook-id of recent messages to drop duplicates). Any one matching
// signature suffices, so receivers keep working through a rotation. Errors
// wrap ErrNoMatchingSignature, ErrMessageTooOld, ErrMessageTooNew,
// ErrRequiredHeaders, ErrInvalidHeaders or ErrWeakSecret.
func Verify(secret string, headers http.Header, body []byte) error {
	wh, err := newWebhook(secret)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return wh.Verify(body, headers)
}
