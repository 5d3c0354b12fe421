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
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MessageType is the type of entity an outgoing message is about (seed 001,
// plus the extensions INTERFACE and WEBHOOK_CONFIG).
// +kubebuilder:validation:Enum=CLASS;EVENT;EVENT_WORKSPACE;ONDEMAND_COURSE;ONDEMAND_ENROLLMENT;RESOURCE;INTERFACE;WEBHOOK_CONFIG
type MessageType string

// MessagePhase is the delivery state of an OutgoingMessage.
// +kubebuilder:validation:Enum=Pending;Delivered;Failed
type MessagePhase string

const (
	// MessagePending: not delivered yet; waiting for its turn, a usable
	// config, or the next attempt.
	MessagePending MessagePhase = "Pending"
	// MessageDelivered: a receiver answered 2xx.
	MessageDelivered MessagePhase = "Delivered"
	// MessageFailed: retries are exhausted; set the redeliver annotation to try again.
	MessageFailed MessagePhase = "Failed"
)

// OutgoingMessageSpec is one message to a customer backend. It is immutable:
// every retry sends the same bytes.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new OutgoingMessage instead"
// +kubebuilder:validation:XValidation:rule="self.type != 'CLASS' || self.status in ['CREATED', 'UPDATED', 'DELETED']",message="status must be CREATED, UPDATED or DELETED for type CLASS"
// +kubebuilder:validation:XValidation:rule="self.type != 'EVENT' || self.status in ['STARTED', 'ENDED', 'EXTENDED']",message="status must be STARTED, ENDED or EXTENDED for type EVENT"
// +kubebuilder:validation:XValidation:rule="self.type != 'EVENT_WORKSPACE' || self.status in ['CREATED', 'REMOVED', 'REINSTATED', 'DELETED']",message="status must be CREATED, REMOVED, REINSTATED or DELETED for type EVENT_WORKSPACE"
// +kubebuilder:validation:XValidation:rule="self.type != 'ONDEMAND_COURSE' || self.status in ['CREATED', 'UPDATED', 'DELETED', 'STATUS_CHANGE']",message="status must be CREATED, UPDATED, DELETED or STATUS_CHANGE for type ONDEMAND_COURSE"
// +kubebuilder:validation:XValidation:rule="self.type != 'ONDEMAND_ENROLLMENT' || self.status in ['CREATED', 'STARTED', 'FINISHED', 'EXPIRED', 'STOPPED', 'RESUMED']",message="status must be CREATED, STARTED, FINISHED, EXPIRED, STOPPED or RESUMED for type ONDEMAND_ENROLLMENT"
// +kubebuilder:validation:XValidation:rule="self.type != 'RESOURCE' || self.status in ['RESTARTED', 'REPLACED', 'CREATED', 'UPDATED', 'DELETED']",message="status must be RESTARTED, REPLACED, CREATED, UPDATED or DELETED for type RESOURCE"
// +kubebuilder:validation:XValidation:rule="self.type != 'INTERFACE' || self.status in ['CREATED', 'UPDATED', 'DELETED']",message="status must be CREATED, UPDATED or DELETED for type INTERFACE"
// +kubebuilder:validation:XValidation:rule="self.type != 'WEBHOOK_CONFIG' || self.status in ['TEST']",message="status must be TEST for type WEBHOOK_CONFIG"
type OutgoingMessageSpec struct {
	// type of entity the message is about, for example EVENT or RESOURCE.
	// +required
	Type MessageType `json:"type"`

	// status of the entity; it must be one of the statuses the catalogue
	// lists for type, for example STARTED for EVENT.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	Status string `json:"status"`

	// entityIDs the message is about; one message can batch several entities.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	// +required
	EntityIDs []string `json:"entityIDs"`

	// context is any additional JSON object the message carries, sent as is:
	// at most 64 keys, and at most 64 KiB in all when the
	// labhook-message-context-size admission policy of config/default is
	// installed.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	Context *apiextensionsv1.JSON `json:"context,omitempty"`

	// webhookConfigRef names the WebhookConfig to deliver to. Empty: the
	// namespace's default config.
	// +optional
	WebhookConfigRef *LocalObjectReference `json:"webhookConfigRef,omitempty"`
}

// DeliveryAttempt is one POST of a message.
type DeliveryAttempt struct {
	// time the attempt started.
	Time metav1.Time `json:"time"`

	// httpStatus answered by the receiver; 0 when no answer arrived.
	// +optional
	HTTPStatus int32 `json:"httpStatus,omitempty"`

	// duration of the attempt, as a Go duration such as 120ms.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	Duration metav1.Duration `json:"duration,omitempty"`

	// error says why the attempt failed; empty on success.
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	Error string `json:"error,omitempty"`
}

// OutgoingMessageStatus is the delivery state of an OutgoingMessage.
type OutgoingMessageStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase is Pending, Delivered or Failed.
	// +optional
	Phase MessagePhase `json:"phase,omitempty"`

	// target is the WebhookConfig the message is (or was) delivered to.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Target string `json:"target,omitempty"`

	// attempts counts the POSTs made since the message was created or last
	// redelivered.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// lastAttempt is the most recent POST.
	// +optional
	LastAttempt *DeliveryAttempt `json:"lastAttempt,omitempty"`

	// history holds the most recent attempts, newest last (at most 20).
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	History []DeliveryAttempt `json:"history,omitempty"`

	// nextAttemptTime is when the next attempt is due.
	// +optional
	NextAttemptTime *metav1.Time `json:"nextAttemptTime,omitempty"`

	// deliveredTime is when a receiver accepted the message.
	// +optional
	DeliveredTime *metav1.Time `json:"deliveredTime,omitempty"`

	// lastHandledRedeliverRequest is the last value of the
	// labhook.io/redeliver-requested-at annotation that was acted upon; a
	// value longer than 253 characters is recorded as "sha256:" and its hex
	// digest.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	LastHandledRedeliverRequest string `json:"lastHandledRedeliverRequest,omitempty"`

	// replies records the incoming messages that answered this one (their
	// source_message_id is this message's id).
	// +optional
	Replies *Replies `json:"replies,omitempty"`

	// conditions: Ready is True once Delivered; its reason says why a
	// Pending message waits.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Replies counts the incoming messages that answered an outgoing message.
type Replies struct {
	// count of incoming messages accepted with this message's id as their
	// source_message_id. A retry of the same POST is not counted again,
	// whichever webhookserver replica answers it.
	// +kubebuilder:validation:Minimum=0
	Count int32 `json:"count"`

	// lastTime is the timestamp of the last reply (its timestamp field, to
	// the second): with lastAction it tells a retry of that reply, which is
	// not counted again, from a new one.
	// +optional
	LastTime *metav1.Time `json:"lastTime,omitempty"`

	// lastAction is the action of the last reply: CREATED, UPDATED or DELETED.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	LastAction string `json:"lastAction,omitempty"`

	// objects the last reply wrote (at most 20 are listed).
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	// +optional
	Objects []ObjectReference `json:"objects,omitempty"`
}

// OutgoingMessage is the durable outbox: one signed message to a customer
// backend, delivered at least once with retries. Its name is the message_id;
// its creation time is the message timestamp.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=om,categories=labhook
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.spec.status`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.target`
// +kubebuilder:printcolumn:name="Replies",type=integer,JSONPath=`.status.replies.count`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OutgoingMessage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the message; immutable.
	// +required
	Spec OutgoingMessageSpec `json:"spec"`

	// status is its delivery state.
	// +optional
	Status OutgoingMessageStatus `json:"status,omitempty"`
}

// OutgoingMessageList contains a list of OutgoingMessage.
// +kubebuilder:object:root=true
type OutgoingMessageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OutgoingMessage `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OutgoingMessage{}, &OutgoingMessageList{})
}
