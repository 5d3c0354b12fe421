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
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// authenticate checks "Authorization: Bearer ORG_ID:API_KEY" against the
// API-key Secrets of namespace ORG_ID. It returns the organisation, or ""
// for every kind of failure alike: no header, an unknown organisation, a
// wrong key. Keys are compared as SHA-256 digests in constant time, so
// neither a key's content nor its length leaks through timing. Failed
// attempts are throttled per organisation name and per client address
// (--auth-failure-rate): past the budget, wait says how long until the
// next attempt is heard, and the key is not even compared.
func (s *Server) authenticate(ctx context.Context, r *http.Request) (org string, wait time.Duration, err error) {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", 0, nil
	}
	org, key, ok := strings.Cut(strings.TrimSpace(cred), ":")
	if !ok || key == "" || len(validation.IsDNS1123Label(org)) > 0 {
		return "", 0, nil
	}
	failures := s.limits.authFailureLimiters(org, clientIP(r))
	if wait, throttled := authThrottled(failures); throttled {
		return "", wait, nil
	}
	var secrets corev1.SecretList
	if err := s.client.List(ctx, &secrets, client.InNamespace(org),
		client.MatchingLabels{labhookv1alpha1.LabelAPIKey: "true"}); err != nil {
		return "", 0, err
	}
	sum := sha256.Sum256([]byte(key))
	match := 0
	for _, sec := range secrets.Items {
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
	}
	if match != 1 {
		authFailed(failures)
		return "", 0, nil
	}
	return org, 0, nil
}
