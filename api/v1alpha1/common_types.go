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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LocalObjectReference names an object in the same namespace.
// +structType=atomic
type LocalObjectReference struct {
	// name of the referenced object, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret in the same namespace.
// +structType=atomic
type SecretKeyReference struct {
	// name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key in the Secret's data: letters, digits, '-', '_' and '.'.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// LastMessage is the newest message labhook sent, or owes, about a
// LabResource or LabInterface. On the happy path the message is POSTed
// directly and recorded only here; it becomes an OutgoingMessage only when
// its first attempt failed, no usable WebhookConfig existed, or an earlier
// message about the same entity was still Pending (see outgoingMessage).
type LastMessage struct {
	// id is the message_id (and webhook-id header) of the message. It is
	// derived from the object's UID, the change and the status, so a
	// resend after a crash carries the same id.
	// +kubebuilder:validation:MaxLength=253
	ID string `json:"id"`

	// type of the message: RESOURCE or INTERFACE.
	// +kubebuilder:validation:MaxLength=64
	Type string `json:"type"`

	// status of the message, for example CREATED, UPDATED or RESTARTED.
	// +kubebuilder:validation:MaxLength=64
	Status string `json:"status"`

	// phase is Delivered when a receiver accepted the message, Pending while
	// it waits or is retried (then outgoingMessage names the object that
	// holds it), Failed when its retries ran out.
	// +optional
	Phase MessagePhase `json:"phase,omitempty"`

	// time of the last attempt, or of the delivery.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// httpStatus the receiver answered to the last attempt; 0 when no
	// answer arrived or no attempt was made.
	// +optional
	HTTPStatus int32 `json:"httpStatus,omitempty"`

	// attempts made so far.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// outgoingMessage names the OutgoingMessage that holds this message when
	// it needed one; empty when it was delivered at the first attempt.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	OutgoingMessage string `json:"outgoingMessage,omitempty"`
}

// ObjectReference names an object of a kind in the same namespace.
type ObjectReference struct {
	// kind of the object, for example LabResource.
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`

	// name of the object.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}
