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

// ResourceType is the kind of a lab resource: VM or URL.
// +kubebuilder:validation:Enum=VM;URL
type ResourceType string

const (
	// ResourceTypeVM is a virtual machine.
	ResourceTypeVM ResourceType = "VM"
	// ResourceTypeURL is a public web page.
	ResourceTypeURL ResourceType = "URL"
)

// ResourcePhase is a resource status as the customer's backend reports it.
// +kubebuilder:validation:Enum=STARTING;PREPARING;READY;STOPPING;STOPPED;DELETING;DELETED;ERROR
type ResourcePhase string

// Resource phases, verbatim as the customer's backend sends them.
const (
	PhaseStarting  ResourcePhase = "STARTING"
	PhasePreparing ResourcePhase = "PREPARING"
	PhaseReady     ResourcePhase = "READY"
	PhaseStopping  ResourcePhase = "STOPPING"
	PhaseStopped   ResourcePhase = "STOPPED"
	PhaseDeleting  ResourcePhase = "DELETING"
	PhaseDeleted   ResourcePhase = "DELETED"
	PhaseError     ResourcePhase = "ERROR"
)

// NetworkInterface is one network interface of a VM.
type NetworkInterface struct {
	// publicIP is the address attendees' interfaces connect to when no dns is set.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="publicIP must be an IPv4 or IPv6 address"
	// +optional
	PublicIP string `json:"publicIP,omitempty"`

	// privateIP is the address inside the lab network.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="privateIP must be an IPv4 or IPv6 address"
	// +optional
	PrivateIP string `json:"privateIP,omitempty"`

	// dns is the host name of the interface; preferred over publicIP for endpoints.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$')",message="dns must be a host name such as labs.example.com"
	// +optional
	DNS string `json:"dns,omitempty"`
}

// LabResourceConfig is the configuration of a resource. VMs use
// networkInterfaces, URLs use address.
type LabResourceConfig struct {
	// networkInterfaces of a VM, at most 16. An incoming message's single
	// network_interface object becomes a one-element list. Only a VM has
	// them: a URL resource with networkInterfaces is refused.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	NetworkInterfaces []NetworkInterface `json:"networkInterfaces,omitempty"`

	// address of a URL resource, for example https://my.webpage.com:3131.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="address must be an absolute http:// or https:// URL"
	// +optional
	Address string `json:"address,omitempty"`

	// extra holds configuration keys labhook does not know, kept as JSON: at
	// most 64 keys, and at most 16 KiB in all (checked by the
	// labhook-config-extra-size ValidatingAdmissionPolicy, which the Helm
	// chart and the kustomize install both include). An object over either
	// limit is refused.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	Extra *apiextensionsv1.JSON `json:"extra,omitempty"`
}

// LabResourceSpec is a lab machine or URL as the customer's backend sees it.
// +kubebuilder:validation:XValidation:rule="self.type != 'URL' || (has(self.config) && has(self.config.address))",message="config.address is required when type is URL"
// +kubebuilder:validation:XValidation:rule="self.type != 'URL' || !has(self.config) || !has(self.config.networkInterfaces)",message="config.networkInterfaces is only allowed when type is VM"
// +kubebuilder:validation:XValidation:rule="self.type != 'VM' || !has(self.config) || !has(self.config.address)",message="config.address is only allowed when type is URL"
// +kubebuilder:validation:XValidation:rule="has(self.restartRequestedAt) || !has(oldSelf.restartRequestedAt)",message="restartRequestedAt cannot be removed once set; set a new time to restart again"
// +kubebuilder:validation:XValidation:rule="has(self.replaceRequestedAt) || !has(oldSelf.replaceRequestedAt)",message="replaceRequestedAt cannot be removed once set; set a new time to replace again"
type LabResourceSpec struct {
	// id is the customer-defined identifier of the resource, as the
	// backend's messages name it (resource_id, data.resources[].id). It is
	// sent as entity_ids in outgoing messages. Required, 1 to 253
	// characters, and immutable: a changed id is refused.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="id is immutable"
	// +required
	ID string `json:"id"`

	// type is VM or URL.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable"
	// +required
	Type ResourceType `json:"type"`

	// name is the display and audit name of the resource, for example "server".
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`

	// config of the resource: networkInterfaces for a VM, address for a URL.
	// +optional
	Config *LabResourceConfig `json:"config,omitempty"`

	// webhookConfigRef names the WebhookConfig, in this namespace, that
	// receives this resource's messages. Empty: the namespace's default config.
	// The webhookserver sets it from the annotation labhook.io/webhook-config
	// of the API-key Secret that authenticated the message (and leaves it to
	// another field manager that owns it). A name that matches no usable
	// config does not lose messages: they wait, with the reason
	// NoUsableWebhookConfig, until the config exists and is valid.
	// +optional
	WebhookConfigRef *LocalObjectReference `json:"webhookConfigRef,omitempty"`

	// restartRequestedAt asks the backend to restart the resource: each new
	// value sends one RESOURCE RESTARTED message. An RFC 3339 time with an
	// upper-case T and Z or a numeric offset, such as 2026-11-25T06:00:00Z.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	RestartRequestedAt *metav1.Time `json:"restartRequestedAt,omitempty"`

	// replaceRequestedAt asks the backend to replace the resource: each new
	// value sends one RESOURCE REPLACED message. An RFC 3339 time with an
	// upper-case T and Z or a numeric offset, such as 2026-11-25T06:00:00Z.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
	// +optional
	ReplaceRequestedAt *metav1.Time `json:"replaceRequestedAt,omitempty"`
}

// LabResourceStatus is the observed state of a LabResource.
type LabResourceStatus struct {
	// observedGeneration is the generation whose message has been produced.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase is the resource status the customer's backend last reported
	// (STARTING, PREPARING, READY, STOPPING, STOPPED, DELETING, DELETED or
	// ERROR). The Ready condition is True only while it is READY.
	// +optional
	Phase ResourcePhase `json:"phase,omitempty"`

	// lastSourceMessageID is the incoming message that last changed this resource.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	LastSourceMessageID string `json:"lastSourceMessageID,omitempty"`

	// handledRestartRequestedAt is the restartRequestedAt value whose message exists.
	// +optional
	HandledRestartRequestedAt *metav1.Time `json:"handledRestartRequestedAt,omitempty"`

	// handledReplaceRequestedAt is the replaceRequestedAt value whose message exists.
	// +optional
	HandledReplaceRequestedAt *metav1.Time `json:"handledReplaceRequestedAt,omitempty"`

	// lastMessage is the newest RESOURCE message sent (or owed) about this
	// resource: its id, outcome, and the OutgoingMessage that holds it when
	// one was needed. An incoming message whose source_message_id is this id
	// is recorded as a reply to it.
	// +optional
	LastMessage *LastMessage `json:"lastMessage,omitempty"`

	// conditions: Ready is True when phase is READY.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LabResource is a lab VM or URL. Its spec changes become signed RESOURCE
// messages to the organisation's backend; its phase comes from the backend.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lr,categories=labhook
// +kubebuilder:printcolumn:name="ID",type=string,JSONPath=`.spec.id`,priority=1
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Display name",type=string,JSONPath=`.spec.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last message",type=string,JSONPath=`.status.lastMessage.status`
// +kubebuilder:printcolumn:name="Delivery",type=string,JSONPath=`.status.lastMessage.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:selectablefield:JSONPath=`.status.lastMessage.id`
type LabResource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the resource as declared.
	// +required
	Spec LabResourceSpec `json:"spec"`

	// status is what labhook and the backend observed.
	// +optional
	Status LabResourceStatus `json:"status,omitempty"`
}

// LabResourceList contains a list of LabResource.
// +kubebuilder:object:root=true
type LabResourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LabResource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LabResource{}, &LabResourceList{})
}
