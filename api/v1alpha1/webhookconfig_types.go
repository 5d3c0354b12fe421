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

// WebhookConfigState is the lifecycle state of a WebhookConfig.
// +kubebuilder:validation:Enum=new;valid;invalid;deactivated
type WebhookConfigState string

const (
	// StateNew: created or changed, and not tested yet.
	StateNew WebhookConfigState = "new"
	// StateValid: the last test passed; messages are delivered here.
	StateValid WebhookConfigState = "valid"
	// StateInvalid: the last test failed, or deliveries kept failing for --invalidate-after.
	StateInvalid WebhookConfigState = "invalid"
	// StateDeactivated: turned off by its owner through spec.deactivated.
	StateDeactivated WebhookConfigState = "deactivated"
)

// SignatureScheme is how labhook signs the messages it sends.
// +kubebuilder:validation:Enum=hmac-sha256;ed25519
type SignatureScheme string

const (
	// SignatureHMACSHA256 is Standard Webhooks "v1": HMAC-SHA256 with a
	// shared whsec_ secret.
	SignatureHMACSHA256 SignatureScheme = "hmac-sha256"
	// SignatureEd25519 is Standard Webhooks "v1a": an Ed25519 signature that
	// receivers verify with a public key (whpk_).
	SignatureEd25519 SignatureScheme = "ed25519"
)

// WebhookConfigSpec is where and how labhook delivers an organisation's messages.
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || !has(self.authorizationSecretRef) || self.secretRef.name != self.authorizationSecretRef.name",message="secretRef and authorizationSecretRef must name different Secrets"
type WebhookConfigSpec struct {
	// url of the customer's webhook receiver, for example
	// https://training.example.com/webhooks/events. Signed messages are POSTed
	// here. http:// URLs are refused by policy unless the manager runs with
	// --allow-http. Changing it sends a new test message.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="url must start with https:// or http://"
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != ''",message="url must be an absolute URL with a host, like https://example.com/webhooks"
	// +required
	URL string `json:"url"`

	// default marks this config as the organisation's default: it is used by
	// every LabResource, LabInterface and OutgoingMessage in the namespace that
	// names no webhookConfigRef. If several configs claim it, the oldest wins and
	// the others get the DefaultConflict condition.
	// +optional
	Default bool `json:"default,omitempty"`

	// deactivated turns the config off: its state becomes deactivated and
	// nothing is delivered to it. Setting it back to false makes the config new
	// again and re-tests it.
	// +optional
	Deactivated bool `json:"deactivated,omitempty"`

	// secretRef names an existing Secret whose key "secret" holds the signing
	// key: for hmac-sha256 a whsec_ secret (whsec_ followed by base64), for
	// ed25519 a whsk_ private key (whsk_ followed by the base64 of the
	// 32-byte Ed25519 private key); a key of the other scheme leaves the
	// config invalid. An optional key "previousSecret" (either scheme) also
	// signs while it is there, which is how you rotate a Secret you own.
	// When absent, labhook generates the Secret <name>-signing, owned by
	// this WebhookConfig. The signing key is never sent, logged or copied
	// into status; only signatures made with it (and, for ed25519, its
	// public key) leave labhook.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// authorizationSecretRef names a Secret key whose value is sent as
	// "Authorization: Bearer <value>" with every message, for example
	// "backend-user:backend-key". The Secret must be labelled
	// labhook.io/webhook-authorization: "true": labhook sends the value of no
	// other Secret, so naming one only a person who can label Secrets has
	// marked for this use. Otherwise the config is invalid (reason
	// SecretError) and nothing is sent.
	// +optional
	AuthorizationSecretRef *SecretKeyReference `json:"authorizationSecretRef,omitempty"`

	// signature chooses how messages are signed: hmac-sha256 (Standard
	// Webhooks v1, a shared whsec_ secret; the default) or ed25519 (Standard
	// Webhooks v1a: labhook generates a whsk_ private key into the signing
	// Secret and publishes its whpk_ public key in status.publicKey and in
	// the organisation's JWKS on the webhookserver). Changing it generates a
	// key of the new scheme and sends a new test message; the old key keeps
	// signing for the rotation grace period, so receivers can switch
	// without losing messages.
	// +kubebuilder:default=hmac-sha256
	// +optional
	Signature SignatureScheme `json:"signature,omitempty"`

	// maxRequestsPerSecond is the most requests per second labhook sends to
	// this receiver, tests and retries included. Unset: no rate limit.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxRequestsPerSecond *int32 `json:"maxRequestsPerSecond,omitempty"`

	// maxConcurrentRequests is the most requests labhook has in flight to
	// this receiver at once. Unset: the manager's
	// --max-concurrent-requests-per-config.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxConcurrentRequests *int32 `json:"maxConcurrentRequests,omitempty"`

	// eventTypes limits the message types delivered here (at most 16). Empty
	// means all types. Messages of other types go to no config unless one
	// names them.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +optional
	EventTypes []MessageType `json:"eventTypes,omitempty"`

	// timeoutSeconds bounds one delivery attempt, from connecting to the end
	// of the response headers.
	// +kubebuilder:default=15
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=60
	// +optional
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// retry bounds how long a message is retried before it is marked Failed.
	// +kubebuilder:default={}
	// +optional
	Retry RetryPolicy `json:"retry,omitempty"`
}

// RetryPolicy bounds the retries of one message. The schedule is: at once,
// 5s, 5m, 30m, 2h, 5h, 10h, 10h, with jitter, honouring Retry-After.
type RetryPolicy struct {
	// maxAttempts is how many attempts a message gets before it is Failed.
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// maxAge is how long after its first attempt a message may still be
	// retried, as a Go duration such as 24h, 90m or 1h30m (units ns, us, ms,
	// s, m, h; no days), from 1s to 720h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="maxAge must be between 1s and 720h"
	// +optional
	MaxAge string `json:"maxAge,omitempty"`
}

// WebhookConfigTest is the outcome of the last test message.
type WebhookConfigTest struct {
	// time the test was sent.
	Time metav1.Time `json:"time"`

	// messageID of the test message (its webhook-id header).
	// +kubebuilder:validation:MaxLength=253
	MessageID string `json:"messageID"`

	// httpStatus answered by the receiver; 0 when no answer arrived.
	// +optional
	HTTPStatus int32 `json:"httpStatus,omitempty"`

	// duration of the request, as a Go duration such as 120ms.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	Duration metav1.Duration `json:"duration,omitempty"`

	// error says why the test failed; empty when it passed.
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	Error string `json:"error,omitempty"`
}

// DeliveryStats rolls up recent deliveries to this config. It is written
// when something changes (first failure, recovery), not on every delivery.
type DeliveryStats struct {
	// lastSuccessTime is when a message was last delivered here.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// lastFailureTime is when a delivery attempt last failed here.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// lastError is the error of the last failed attempt.
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	LastError string `json:"lastError,omitempty"`

	// consecutiveFailures counts failed attempts since the last success.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`

	// failingSince is the first failure after the last success. A valid config
	// failing for longer than --invalidate-after becomes invalid.
	// +optional
	FailingSince *metav1.Time `json:"failingSince,omitempty"`

	// pending is the number of Pending messages for this config, as last counted.
	// +optional
	Pending int32 `json:"pending,omitempty"`

	// owed is the number of LabResources and LabInterfaces that owe this
	// config a message they hold themselves (their status is behind their
	// spec) while it does not accept deliveries, as last counted.
	// +optional
	Owed int32 `json:"owed,omitempty"`
}

// SecretRotation describes the last signing-secret rotation.
type SecretRotation struct {
	// rotatedTime is when the current secret replaced the previous one.
	RotatedTime metav1.Time `json:"rotatedTime"`

	// previousExpiresAt is when the previous secret stops being sent. Until
	// then every message carries a signature with each secret.
	PreviousExpiresAt metav1.Time `json:"previousExpiresAt"`
}

// WebhookConfigStatus is the observed state of a WebhookConfig.
type WebhookConfigStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// state is new (created or changed, not tested yet), valid (the last
	// test passed; messages are delivered here), invalid (the last test
	// failed, or deliveries kept failing for the manager's
	// --invalidate-after; see the Ready condition's reason) or deactivated
	// (spec.deactivated). An organisation needs a valid config for its
	// messages to be delivered; they wait as Pending meanwhile.
	// +optional
	State WebhookConfigState `json:"state,omitempty"`

	// secretName is the Secret that holds the signing secret.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// publicKey is the whpk_ public key (whpk_ followed by the base64 of
	// the 32-byte Ed25519 public key) that verifies this config's v1a
	// signatures when it signs with ed25519; empty for hmac-sha256.
	// Receivers may read it from here, or fetch it from the webhookserver's
	// JWKS (GET /api/v1/webhooks/jwks/<namespace>).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	PublicKey string `json:"publicKey,omitempty"`

	// previousPublicKey is the public key of the Ed25519 key that a rotation
	// (or a switch of spec.signature) replaced, while it still signs: until
	// status.rotation.previousExpiresAt, or, for a Secret named by
	// spec.secretRef, while its key "previousSecret" holds a whsk_ key.
	// Empty otherwise.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	PreviousPublicKey string `json:"previousPublicKey,omitempty"`

	// testedFingerprint identifies the url, secret and authorization that the
	// last test used; a change of any of them sends a new test.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TestedFingerprint string `json:"testedFingerprint,omitempty"`

	// lastTest is the outcome of the last test message.
	// +optional
	LastTest *WebhookConfigTest `json:"lastTest,omitempty"`

	// nextTestTime is when an invalid config is tested again (backoff from 1m
	// doubling to 1h).
	// +optional
	NextTestTime *metav1.Time `json:"nextTestTime,omitempty"`

	// lastHandledTestRequest is the last value of the
	// labhook.io/test-requested-at annotation that was acted upon; a value
	// longer than 253 characters is recorded as "sha256:" and its hex digest.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	LastHandledTestRequest string `json:"lastHandledTestRequest,omitempty"`

	// lastHandledRotateRequest is the last value of the
	// labhook.io/rotate-secret-requested-at annotation that was acted upon; a
	// value longer than 253 characters is recorded as "sha256:" and its hex
	// digest.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	LastHandledRotateRequest string `json:"lastHandledRotateRequest,omitempty"`

	// rotation describes the last secret rotation, while its grace period lasts.
	// +optional
	Rotation *SecretRotation `json:"rotation,omitempty"`

	// deliveries rolls up recent delivery results.
	// +optional
	Deliveries *DeliveryStats `json:"deliveries,omitempty"`

	// conditions: Ready (the config is valid), Reconciling, Stalled,
	// DefaultConflict, Backlogged, SecretRotation.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WebhookConfig is a customer's webhook receiver: where an organisation's
// messages are POSTed, signed with a secret labhook generates. A namespace is
// an organisation; one WebhookConfig per namespace can be its default.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=whc,categories=labhook
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired receiver.
	// +required
	Spec WebhookConfigSpec `json:"spec"`

	// status is what labhook observed.
	// +optional
	Status WebhookConfigStatus `json:"status,omitempty"`
}

// WebhookConfigList contains a list of WebhookConfig.
// +kubebuilder:object:root=true
type WebhookConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WebhookConfig{}, &WebhookConfigList{})
}
