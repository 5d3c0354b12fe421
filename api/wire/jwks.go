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
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// JWKSPathPrefix is where the webhookserver serves an organisation's
// Ed25519 public keys: GET JWKSPathPrefix + ORG_ID, unauthenticated.
const JWKSPathPrefix = "/api/v1/webhooks/jwks/"

// JWK is one Ed25519 public key as a JSON Web Key (RFC 8037 section 2:
// key type OKP, curve Ed25519, x the base64url public key).
type JWK struct {
	// Kty is "OKP".
	Kty string `json:"kty"`
	// Crv is "Ed25519".
	Crv string `json:"crv"`
	// X is the 32-byte public key, base64url without padding.
	X string `json:"x"`
	// Kid is the key's RFC 7638 thumbprint (KeyID).
	Kid string `json:"kid,omitempty"`
	// Use is "sig".
	Use string `json:"use,omitempty"`
	// Alg is "EdDSA".
	Alg string `json:"alg,omitempty"`
}

// JWKS is a JSON Web Key Set (RFC 7517 section 5).
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// NewJWK returns the JWK of a whpk_ public key, with its thumbprint as kid.
func NewJWK(publicKey string) (JWK, error) {
	k, err := parseKey(publicKey)
	if err != nil || k.pub == nil {
		return JWK{}, ErrInvalidKey
	}
	x := base64.RawURLEncoding.EncodeToString(k.pub)
	return JWK{Kty: "OKP", Crv: "Ed25519", X: x, Kid: thumbprint(x), Use: "sig", Alg: "EdDSA"}, nil
}

// KeyID returns the RFC 7638 thumbprint of a whpk_ public key: the
// base64url SHA-256 of {"crv":"Ed25519","kty":"OKP","x":…}. It is the kid
// of the key in the webhookserver's JWKS.
func KeyID(publicKey string) (string, error) {
	j, err := NewJWK(publicKey)
	return j.Kid, err
}

func thumbprint(x string) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// PublicKey returns k as a whpk_ public key. It fails for a key that is
// not an Ed25519 signature key.
func (k JWK) PublicKey() (string, error) {
	if k.Kty != "OKP" || k.Crv != "Ed25519" {
		return "", fmt.Errorf("jwk %q: kty %q crv %q is not an Ed25519 key: %w", k.Kid, k.Kty, k.Crv, ErrInvalidKey)
	}
	if (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
		return "", fmt.Errorf("jwk %q: use %q alg %q is not for EdDSA signatures: %w", k.Kid, k.Use, k.Alg, ErrInvalidKey)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.X, "="))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return "", fmt.Errorf("jwk %q: x is not base64url of 32 bytes: %w", k.Kid, ErrInvalidKey)
	}
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// PublicKeys returns the whpk_ keys of every Ed25519 signature key in s.
// Keys of other types are skipped, as RFC 7517 asks of keys a reader does
// not understand; a malformed Ed25519 key is an error.
func (s JWKS) PublicKeys() ([]string, error) {
	var out []string
	for _, k := range s.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		pk, err := k.PublicKey()
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, nil
}
