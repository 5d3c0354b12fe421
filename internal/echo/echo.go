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

// IsEchoDelete reports whether obj is being deleted on a backend's request.
func IsEchoDelete(obj metav1.Object) bool {
	return obj.GetAnnotations()[labhookv1alpha1.AnnotationSourceDeleted] != ""
}
