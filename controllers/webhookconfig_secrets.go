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

// SigningSecrets returns the whsec_ secrets to sign a message for whc with,
// current first. The previous secret of a rotation follows while its grace
// period (status.rotation.previousExpiresAt) lasts. For a user-provided
// secretRef, a previousSecret key is honoured for as long as the user keeps
// it, which is how they rotate a Secret they own.
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
	if _, err := wire.Sign(secrets, "probe", now, nil); err != nil {
		return nil, fmt.Errorf("signing secret %s: not whsec_ + base64: %w", s.Name, ErrSecretUnusable)
	}
	return secrets, nil
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
