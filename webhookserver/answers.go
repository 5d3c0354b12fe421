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
	"errors"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fieldConflictError is a server-side apply conflict with another field
// manager: only a person can settle who owns a field, so it is not retried.
type fieldConflictError struct {
	object  string
	message string
	causes  []metav1.StatusCause
}

func (e *fieldConflictError) Error() string { return e.object + ": " + e.message }

// asFieldConflict turns an apply conflict with another manager into a
// fieldConflictError, and leaves other errors alone.
func asFieldConflict(object string, err error) error {
	st, ok := apiStatus(err)
	if !ok || !apierrors.IsConflict(err) || st.Details == nil {
		return err
	}
	var causes []metav1.StatusCause
	for _, c := range st.Details.Causes {
		if c.Type == metav1.CauseTypeFieldManagerConflict {
			causes = append(causes, c)
		}
	}
	if len(causes) == 0 {
		return err
	}
	return &fieldConflictError{object: object, message: st.Message, causes: causes}
}

// apiStatus is the API server's answer inside err, if it is one.
func apiStatus(err error) (metav1.Status, bool) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return metav1.Status{}, false
	}
	return status.Status(), true
}

// answer is how a failed message is answered.
type answer struct {
	code       int
	text       string
	details    []Detail
	retryAfter bool
}

// classify turns a failure into an answer: 409 for what only a person can
// settle (an ambiguous reuse, another entity's object or Secret, a field
// another manager owns, an object being deleted), 422 for what cannot be,
// 403 for the organisation's quota or a namespace being deleted, 429 for
// the organisation's own API budget, and 503 (retry later) when the API
// server could not be reached or was overloaded.
func classify(org string, err error) answer {
	if e, ok := errors.AsType[*referenceError](err); ok {
		return answer{code: http.StatusUnprocessableEntity, text: e.Error(), details: details(e.errs)}
	}
	if e, ok := errors.AsType[*fieldConflictError](err); ok {
		det := make([]Detail, 0, len(e.causes))
		for _, c := range e.causes {
			det = append(det, Detail{Field: e.object + " " + c.Field, Message: c.Message})
		}
		return answer{code: http.StatusConflict, text: fmt.Sprintf("%s: fields this message sets are owned by another field manager: %s", e.object, e.message), details: det}
	}
	if e, ok := errors.AsType[*deletingError](err); ok {
		return answer{code: http.StatusConflict, text: e.Error(), retryAfter: true}
	}
	if e, ok := errors.AsType[*budgetError](err); ok {
		return answer{code: http.StatusTooManyRequests, text: e.Error(), retryAfter: true}
	}
	for _, target := range []any{new(*reuseError), new(*identityError), new(*foreignSecretError)} {
		if errors.As(err, target) {
			return answer{code: http.StatusConflict, text: err.Error()}
		}
	}
	st, ok := apiStatus(err)
	switch {
	case !ok && errors.Is(err, context.DeadlineExceeded):
		return answer{code: http.StatusServiceUnavailable, text: "the message could not be applied within --request-timeout; retry later (a retry converges)", retryAfter: true}
	case !ok:
		return answer{code: http.StatusServiceUnavailable, text: "the Kubernetes API server is unavailable; retry later", retryAfter: true}
	}
	switch {
	case apierrors.IsInvalid(err):
		var det []Detail
		if d := st.Details; d != nil {
			for _, c := range d.Causes {
				det = append(det, Detail{Field: d.Kind + " " + d.Name + " " + c.Field, Message: c.Message})
			}
		}
		return answer{code: http.StatusUnprocessableEntity, text: "the API server refused an object: " + err.Error(), details: det}
	case apierrors.IsForbidden(err) && strings.Contains(st.Message, "exceeded quota"):
		return answer{code: http.StatusForbidden, text: fmt.Sprintf("organisation %s is over its ResourceQuota; delete objects or ask for a larger quota: %s", org, st.Message)}
	case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return answer{code: http.StatusForbidden, text: fmt.Sprintf("organisation %s is being deleted: its namespace is terminating", org)}
	case apierrors.IsConflict(err), apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err),
		apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err):
		return answer{code: http.StatusServiceUnavailable, text: "the Kubernetes API server is busy; retry later: " + err.Error(), retryAfter: true}
	case apierrors.IsForbidden(err):
		return answer{code: http.StatusInternalServerError, text: "the webhookserver is not allowed to write this; check its RBAC: " + strings.TrimSpace(err.Error())}
	}
	return answer{code: http.StatusInternalServerError, text: err.Error()}
}
