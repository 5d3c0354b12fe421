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

// InterfaceType is how attendees reach a resource: TERMINAL, DESKTOP or
// WEB_PAGE.
// +kubebuilder:validation:Enum=TERMINAL;DESKTOP;WEB_PAGE
type InterfaceType string

const (
	// InterfaceTerminal is an SSH-based shell; needs a VM.
	InterfaceTerminal InterfaceType = "TERMINAL"
	// InterfaceDesktop is a Linux or Windows desktop over RDP; needs a VM.
	InterfaceDesktop InterfaceType = "DESKTOP"
	// InterfaceWebPage is an iframe to a web server on a VM or to a URL resource.
	InterfaceWebPage InterfaceType = "WEB_PAGE"
)

// AuthenticationType is how an interface logs in: keypair or
// generated_username_password.
// +kubebuilder:validation:Enum=keypair;generated_username_password
type AuthenticationType string

const (
	// AuthKeypair uses a private key stored under "key" in the Secret.
	AuthKeypair AuthenticationType = "keypair"
	// AuthGeneratedUsernamePassword uses "username" and "password" in the Secret.
	AuthGeneratedUsernamePassword AuthenticationType = "generated_username_password"
)

// InterfaceAuthentication says how to log in. The credentials themselves
// live only in the referenced Secret, never in the LabInterface.
type InterfaceAuthentication struct {
	// type is keypair or generated_username_password.
	// +required
	Type AuthenticationType `json:"type"`

	// secretRef names the Secret holding the credentials: key "key" for
	// keypair, keys "username" and "password" for generated_username_password.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// LabInterfaceConfig is the configuration of an interface.
type LabInterfaceConfig struct {
	// port on the resource. Defaults by type when absent: 22 for TERMINAL,
	// 3389 for DESKTOP, 80 for WEB_PAGE on a VM.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`

	// authentication for TERMINAL and DESKTOP interfaces.
	// +optional
	Authentication *InterfaceAuthentication `json:"authentication,omitempty"`

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

// LabInterfaceSpec is a way for attendees to reach a LabResource.
// +kubebuilder:validation:XValidation:rule="self.type != 'WEB_PAGE' || !has(self.config) || !has(self.config.authentication)",message="config.authentication is only allowed for TERMINAL and DESKTOP interfaces"
type LabInterfaceSpec struct {
	// name is shown to attendees, for example "Server".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// type is TERMINAL (SSH), DESKTOP (RDP) or WEB_PAGE (iframe). TERMINAL and
	// DESKTOP need a VM resource; WEB_PAGE works on a VM or a URL.
	// +required
	Type InterfaceType `json:"type"`

	// region from which labhook's platform connects, a cloud region code such
	// as us-east-1 or eu-north-1.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]{2,}(-[a-z]+)+-[0-9]+$')",message="region must be a cloud region code such as us-east-1 or eu-north-1"
	// +required
	Region string `json:"region"`

	// resourceRef names the LabResource, in the same namespace, that this
	// interface reaches; an incoming message's resource_id is resolved to
	// it. Immutable. While the LabResource does not exist, or is not a VM
	// for a TERMINAL or DESKTOP interface, the interface is not Ready
	// (reason ResourceNotFound or IncompatibleResourceType) and has no
	// endpoint.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="resourceRef is immutable"
	// +required
	ResourceRef LocalObjectReference `json:"resourceRef"`

	// config of the interface: port and authentication.
	// +optional
	Config *LabInterfaceConfig `json:"config,omitempty"`

	// webhookConfigRef names the WebhookConfig, in this namespace, that
	// receives this interface's messages. Empty: the namespace's default config.
	// The webhookserver sets it from the annotation labhook.io/webhook-config
	// of the API-key Secret that authenticated the message (and leaves it to
	// another field manager that owns it). A name that matches no usable
	// config does not lose messages: they wait, with the reason
	// NoUsableWebhookConfig, until the config exists and is valid.
	// +optional
	WebhookConfigRef *LocalObjectReference `json:"webhookConfigRef,omitempty"`
}

// LabInterfaceStatus is the observed state of a LabInterface.
type LabInterfaceStatus struct {
	// observedGeneration is the generation whose message has been produced.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// endpoint is where attendees connect: ssh://host:22, rdp://host:3389,
	// http(s)://host:port, or the URL resource's address. host is the
	// resource's dns, else its publicIP.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// resourceID is the spec.id of the referenced LabResource, kept so the
	// DELETED message can name it after the resource is gone.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ResourceID string `json:"resourceID,omitempty"`

	// lastMessage is the newest INTERFACE message sent (or owed) about this
	// interface: its id, outcome, and the OutgoingMessage that holds it when
	// one was needed. An incoming message whose source_message_id is this id
	// is recorded as a reply to it.
	// +optional
	LastMessage *LastMessage `json:"lastMessage,omitempty"`

	// conditions: Ready is True when the resource exists and is READY, the
	// types are compatible and the authentication Secret exists.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// LabInterface is a terminal, desktop or web page through which attendees
// reach a LabResource. It is owned by its LabResource.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=li,categories=labhook
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Resource",type=string,JSONPath=`.spec.resourceRef.name`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last message",type=string,JSONPath=`.status.lastMessage.status`
// +kubebuilder:printcolumn:name="Delivery",type=string,JSONPath=`.status.lastMessage.phase`
// +kubebuilder:printcolumn:name="Region",type=string,JSONPath=`.spec.region`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:selectablefield:JSONPath=`.status.lastMessage.id`
type LabInterface struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the interface as declared.
	// +required
	Spec LabInterfaceSpec `json:"spec"`

	// status is what labhook observed.
	// +optional
	Status LabInterfaceStatus `json:"status,omitempty"`
}

// LabInterfaceList contains a list of LabInterface.
// +kubebuilder:object:root=true
type LabInterfaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LabInterface `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LabInterface{}, &LabInterfaceList{})
}
