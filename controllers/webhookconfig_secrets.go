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

package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// ErrSecretUnusable is wrapped by SigningSecrets and AuthorizationValue when
// a Secret exists but lacks the key, or holds a value that cannot be used.
// A missing Secret is reported as the API's NotFound error instead, so
// callers can tell "wait for it" from "a person must fix it".
var ErrSecretUnusable = errors.New("secret unusable")

// ErrSecretNotOptedIn is wrapped by AuthorizationValue when the Secret that
// authorizationSecretRef names is not labelled
// labhook.io/webhook-authorization: "true". It also matches
// ErrSecretUnusable, so callers that handle that need nothing more.
var ErrSecretNotOptedIn = fmt.Errorf("%w: not labelled %s: \"true\"", ErrSecretUnusable, labhookv1alpha1.LabelWebhookAuthorization)

// signingSecretName is the Secret a WebhookConfig signs with: the one it
// references, else the one the controller generates for it.
func signingSecretName(whc *labhookv1alpha1.WebhookConfig) string {
	if whc.Spec.SecretRef != nil {
		return whc.Spec.SecretRef.Name
	}
	return whc.Name + "-signing"
}

// SigningSecrets returns the keys to sign a message for whc with, current
// first: whsec_ secrets (hmac-sha256) or whsk_ private keys (ed25519), as
// the signing Secret holds them; wire.Sign picks v1 or v1a per key. The
// previous key of a rotation (or of a switch of spec.signature) follows
// while its grace period (status.rotation.previousExpiresAt) lasts. For a
// user-provided secretRef, a previousSecret key is honoured for as long as
// the user keeps it, which is how they rotate a Secret they own.
//
// It signs with what the Secret holds even while spec.signature asks for
// the other scheme: the WebhookConfig reconciler replaces the key (and
// re-tests) moments later, and until then receivers expect the old one.
func SigningSecrets(ctx context.Context, c client.Reader, whc *labhookv1alpha1.WebhookConfig) ([]string, error) {
	return signingSecrets(ctx, c, whc, time.Now())
}

func signingSecrets(ctx context.Context, c client.Reader, whc *labhookv1alpha1.WebhookConfig, now time.Time) ([]string, error) {
	var s corev1.Secret
	name := signingSecretName(whc)
	if err := c.Get(ctx, types.NamespacedName{Namespace: whc.Namespace, Name: name}, &s); err != nil {
		return nil, fmt.Errorf("signing secret %s: %w", name, err)
	}
	return secretsFrom(&s, whc, now)
}

// secretsFrom picks the signing secrets out of an already loaded Secret.
func secretsFrom(s *corev1.Secret, whc *labhookv1alpha1.WebhookConfig, now time.Time) ([]string, error) {
	current := strings.TrimSpace(string(s.Data[labhookv1alpha1.SecretKeySigning]))
	if current == "" {
		return nil, fmt.Errorf("signing secret %s has no key %q: %w", s.Name, labhookv1alpha1.SecretKeySigning, ErrSecretUnusable)
	}
	secrets := []string{current}
	if prev := strings.TrimSpace(string(s.Data[labhookv1alpha1.SecretKeyPreviousSigning])); prev != "" && prev != current {
		userOwned := whc.Spec.SecretRef != nil
		inGrace := whc.Status.Rotation != nil && now.Before(whc.Status.Rotation.PreviousExpiresAt.Time)
		if userOwned || inGrace {
			secrets = append(secrets, prev)
		}
	}
	// Fail here, naming the Secret, rather than at send time without context.
	for _, k := range secrets {
		if wire.CheckSigningKey(k) != nil {
			return nil, fmt.Errorf("signing secret %s: not a whsec_ secret (whsec_ + base64 of at least %d bytes) "+
				"or a whsk_ Ed25519 private key (whsk_ + base64 of 32 bytes): %w", s.Name, wire.MinSecretBytes, ErrSecretUnusable)
		}
	}
	return secrets, nil
}

// signingScheme is the scheme whc asks for; unset means the CRD default.
func signingScheme(whc *labhookv1alpha1.WebhookConfig) labhookv1alpha1.SignatureScheme {
	if whc.Spec.Signature == "" {
		return labhookv1alpha1.DefaultSignature
	}
	return whc.Spec.Signature
}

// keyScheme is the scheme a signing key belongs to, by its prefix.
func keyScheme(key string) labhookv1alpha1.SignatureScheme {
	if wire.IsPrivateKey(key) {
		return labhookv1alpha1.SignatureEd25519
	}
	return labhookv1alpha1.SignatureHMACSHA256
}

// newSigningKey generates a key of scheme: a whsec_ secret, or a whsk_
// Ed25519 private key.
func newSigningKey(scheme labhookv1alpha1.SignatureScheme) (string, error) {
	if scheme == labhookv1alpha1.SignatureEd25519 {
		priv, _, err := wire.GenerateKeyPair()
		return priv, err
	}
	return wire.GenerateSecret()
}

// checkScheme refuses a current signing key of another scheme than
// spec.signature asks for. It matters for a Secret the user owns; the
// generated one is replaced instead.
func checkScheme(whc *labhookv1alpha1.WebhookConfig, secretName, current string) error {
	want, got := signingScheme(whc), keyScheme(current)
	if want == got {
		return nil
	}
	form := map[labhookv1alpha1.SignatureScheme]string{
		labhookv1alpha1.SignatureHMACSHA256: "a whsec_ secret",
		labhookv1alpha1.SignatureEd25519:    "a whsk_ Ed25519 private key",
	}
	return fmt.Errorf("spec.signature is %s but signing secret %s key %q holds %s; put %s there "+
		"(the old one may stay under %q while receivers switch): %w", want, secretName,
		labhookv1alpha1.SecretKeySigning, form[got], form[want], labhookv1alpha1.SecretKeyPreviousSigning, ErrSecretUnusable)
}

// publicKeys returns the whpk_ public keys of the current and previous
// signing keys, "" for a key that is not an Ed25519 private key.
func publicKeys(keys []string) (current, previous string) {
	if len(keys) > 0 {
		current, _ = wire.PublicKey(keys[0])
	}
	if len(keys) > 1 {
		previous, _ = wire.PublicKey(keys[1])
	}
	return current, previous
}

// AuthorizationValue returns the value to send as "Authorization: Bearer
// <value>" for whc, or "" when it has no authorizationSecretRef. Surrounding
// whitespace is trimmed: Secrets made with --from-file usually end in a
// newline, which is not a valid header character.
//
// The value is sent to a url that whoever edits the WebhookConfig chooses,
// so only a Secret labelled labhook.io/webhook-authorization: "true" is
// read: its metadata is checked first, and the data of any other Secret is
// never loaded (ErrSecretNotOptedIn).
func AuthorizationValue(ctx context.Context, c client.Reader, whc *labhookv1alpha1.WebhookConfig) (string, error) {
	ref := whc.Spec.AuthorizationSecretRef
	if ref == nil {
		return "", nil
	}
	key := types.NamespacedName{Namespace: whc.Namespace, Name: ref.Name}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.Get(ctx, key, m); err != nil {
		return "", fmt.Errorf("authorization secret %s: %w", ref.Name, err)
	}
	if err := authorizationOptedIn(m, whc.Namespace); err != nil {
		return "", err
	}
	var s corev1.Secret
	if err := c.Get(ctx, key, &s); err != nil {
		return "", fmt.Errorf("authorization secret %s: %w", ref.Name, err)
	}
	// The label is checked again on what was read, in case it was removed
	// between the two reads.
	if err := authorizationOptedIn(&s, whc.Namespace); err != nil {
		return "", err
	}
	return authorizationFrom(&s, ref.Key)
}

// authorizationOptedIn says whether o is labelled for use as an
// authorization Secret, and if not, how to opt it in.
func authorizationOptedIn(o metav1.Object, namespace string) error {
	if o.GetLabels()[labhookv1alpha1.LabelWebhookAuthorization] == "true" {
		return nil
	}
	return fmt.Errorf("authorization secret %s: %w; labhook sends only Secrets marked for this use "+
		"(kubectl -n %s label secret %s %s=true)", o.GetName(), ErrSecretNotOptedIn,
		namespace, o.GetName(), labhookv1alpha1.LabelWebhookAuthorization)
}

func authorizationFrom(s *corev1.Secret, key string) (string, error) {
	v := strings.TrimSpace(string(s.Data[key]))
	if v == "" {
		return "", fmt.Errorf("authorization secret %s has no key %q: %w", s.Name, key, ErrSecretUnusable)
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return "", fmt.Errorf("authorization secret %s key %q holds a line break or NUL: %w", s.Name, key, ErrSecretUnusable)
	}
	return v, nil
}
