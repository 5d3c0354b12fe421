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

// Package echo is the contract between the webhookserver and the
// controllers that keeps a backend's own changes from being sent back to it.
// The webhookserver stamps what it applies with the source message and a
// hash of the spec it wrote; a controller that finds the same hash on the
// current spec knows the change came from the backend.
package echo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// SpecHash is the hex SHA-256 of spec's JSON form. encoding/json sorts map
// keys and follows struct order, so equal specs hash equally.
func SpecHash(spec any) string {
	b, err := json.Marshal(spec)
	if err != nil {
		// Specs are plain API structs; they always marshal.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Mark returns the annotations the webhookserver sets on an object it
// applies from source message id, sent at timestamp, with spec.
func Mark(sourceMessageID, timestamp string, spec any) map[string]string {
	return map[string]string{
		labhookv1alpha1.AnnotationSourceMessageID: sourceMessageID,
		labhookv1alpha1.AnnotationSourceTimestamp: timestamp,
		labhookv1alpha1.AnnotationSourceSpecHash:  SpecHash(spec),
	}
}

// IsEcho reports whether obj's current spec is exactly what the
// webhookserver last applied, so a message about it would echo the backend.
func IsEcho(obj metav1.Object, spec any) bool {
	h, ok := obj.GetAnnotations()[labhookv1alpha1.AnnotationSourceSpecHash]
	return ok && h != "" && h == SpecHash(spec)
}

// DeleteWindow is how closely a deletion must follow the webhookserver's
// mark to count as the backend's own. The webhookserver deletes a moment
// after marking and takes the mark off when the delete fails; the window
// covers clock skew between its node and the API server's.
const DeleteWindow = time.Minute

// DeleteMark returns the annotations the webhookserver sets on an object
// just before it deletes it for source message id, at time at.
func DeleteMark(sourceMessageID string, at time.Time) map[string]string {
	return map[string]string{
		labhookv1alpha1.AnnotationSourceDeleted:   sourceMessageID,
		labhookv1alpha1.AnnotationSourceDeletedAt: at.UTC().Format(time.RFC3339Nano),
	}
}

// IsEchoDelete reports whether obj is being deleted on a backend's
// request: it carries the webhookserver's deletion mark and its deletion
// began within DeleteWindow of the time in the mark. A mark left by a
// delete that failed cannot hide a later deletion by someone else. A mark
// without a time (set by hand, or by a webhookserver before marks had one)
// is honoured as it is.
func IsEchoDelete(obj metav1.Object) bool {
	ann := obj.GetAnnotations()
	deleted := obj.GetDeletionTimestamp()
	if deleted == nil || ann[labhookv1alpha1.AnnotationSourceDeleted] == "" {
		return false
	}
	marked, ok := ann[labhookv1alpha1.AnnotationSourceDeletedAt]
	if !ok {
		return true
	}
	at, err := time.Parse(time.RFC3339Nano, marked)
	if err != nil {
		return false
	}
	d := deleted.Sub(at)
	return d > -DeleteWindow && d < DeleteWindow
}
