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

package webhookserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// caller is who sent a message: the organisation, and the WebhookConfig
// its API key names (the key Secret's labhook.io/webhook-config; "" for
// the organisation's default). Objects the message writes refer to that
// config in spec.webhookConfigRef.
type caller struct {
	org, config string
}

// keyConfigError is a right key whose Secret names its WebhookConfig in a
// way that cannot be used: a value that is not an object name, or the same
// key in several Secrets that name different configs. Only the
// organisation's administrator can fix it, so the message is refused (403)
// rather than written with a reference that can never resolve.
type keyConfigError struct {
	org     string
	secrets []string
	details []Detail
}

func (e *keyConfigError) Error() string {
	if len(e.secrets) > 1 {
		return fmt.Sprintf("the API key is in Secrets %s of organisation %s, which name different WebhookConfigs (annotation %s); keep one of them",
			strings.Join(e.secrets, ", "), e.org, labhookv1alpha1.AnnotationWebhookConfig)
	}
	return fmt.Sprintf("the API key's Secret %s in organisation %s names its WebhookConfig with an invalid annotation %s; fix or remove it",
		e.secrets[0], e.org, labhookv1alpha1.AnnotationWebhookConfig)
}

// authenticate checks "Authorization: Bearer ORG_ID:API_KEY" against the
// API-key Secrets of namespace ORG_ID. It returns the caller, with an empty
// org for every kind of failure alike: no header, an unknown organisation,
// a wrong key. Keys are compared as SHA-256 digests in constant time, so
// neither a key's content nor its length leaks through timing. Failed
// attempts are throttled per organisation name and per client address
// (--auth-failure-rate): past the budget, wait says how long until the
// next attempt is heard, and the key is not even compared. A right key
// whose Secret names its WebhookConfig unusably is a *keyConfigError.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (c caller, wait time.Duration, err error) {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return caller{}, 0, nil
	}
	org, key, ok := strings.Cut(strings.TrimSpace(cred), ":")
	if !ok || key == "" || len(validation.IsDNS1123Label(org)) > 0 {
		return caller{}, 0, nil
	}
	failures := s.limits.authFailureLimiters(org, clientIP(r))
	if wait, throttled := authThrottled(failures); throttled {
		return caller{}, wait, nil
	}
	var secrets corev1.SecretList
	if err := s.client.List(ctx, &secrets, client.InNamespace(org),
		client.MatchingLabels{labhookv1alpha1.LabelAPIKey: "true"}); err != nil {
		return caller{}, 0, err
	}
	sum := sha256.Sum256([]byte(key))
	var matched []*corev1.Secret
	for i := range secrets.Items {
		sec := &secrets.Items[i]
		match := 0
		if plain := sec.Data[labhookv1alpha1.SecretKeyAPIKey]; len(plain) > 0 {
			want := sha256.Sum256(plain)
			match |= subtle.ConstantTimeCompare(sum[:], want[:])
		}
		if h := sec.Data[labhookv1alpha1.SecretKeyAPIKeySHA256]; len(h) > 0 {
			want, err := hex.DecodeString(strings.TrimSpace(string(h)))
			if err == nil && len(want) == sha256.Size {
				match |= subtle.ConstantTimeCompare(sum[:], want)
			}
		}
		// Which Secret matched is only looked at once the digests were
		// compared; the answer tells a match apart anyway.
		if match == 1 {
			matched = append(matched, sec)
		}
	}
	if len(matched) == 0 {
		authFailed(failures)
		return caller{}, 0, nil
	}
	config, err := keyConfig(org, matched)
	return caller{org: org, config: config}, 0, err
}

// keyConfig is the WebhookConfig the Secrets holding the caller's key
// name: the value of their labhook.io/webhook-config annotation, "" when
// they name none. It must be a WebhookConfig's name (a DNS subdomain): it
// becomes a LocalObjectReference, so it can only ever name a config in the
// organisation's own namespace.
func keyConfig(org string, matched []*corev1.Secret) (string, error) {
	annotation := field.NewPath("metadata", "annotations").Key(labhookv1alpha1.AnnotationWebhookConfig)
	config := matched[0].Annotations[labhookv1alpha1.AnnotationWebhookConfig]
	var names []string
	differ := false
	for _, sec := range matched {
		names = append(names, sec.Name)
		if sec.Annotations[labhookv1alpha1.AnnotationWebhookConfig] != config {
			differ = true
		}
	}
	if differ {
		slices.Sort(names)
		return "", &keyConfigError{org: org, secrets: names}
	}
	if config == "" {
		return "", nil
	}
	if errs := apivalidation.NameIsDNSSubdomain(config, false); len(errs) > 0 {
		e := &keyConfigError{org: org, secrets: names[:1]}
		for _, msg := range errs {
			e.details = append(e.details, Detail{Field: "Secret " + names[0] + " " + annotation.String(),
				Message: field.Invalid(annotation, config, msg).ErrorBody()})
		}
		return "", e
	}
	return config, nil
}
