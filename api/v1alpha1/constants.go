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

// Condition types. Every kind carries Ready; the others appear where useful.
const (
	// ConditionReady is the kstatus summary condition of every labhook kind.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is working towards the desired state.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when progress needs a change by a person.
	ConditionStalled = "Stalled"
	// ConditionDefaultConflict is True on a WebhookConfig that claims to be the
	// namespace default while an older one already is.
	ConditionDefaultConflict = "DefaultConflict"
	// ConditionBacklogged is True on a WebhookConfig whose Pending backlog is
	// past --backlog-warning.
	ConditionBacklogged = "Backlogged"
	// ConditionSecretRotation reports the last signing-secret rotation of a
	// WebhookConfig: True while the previous secret still signs (grace
	// period), False when a rotation request was refused. Absent otherwise.
	ConditionSecretRotation = "SecretRotation"
)

// Condition reasons.
const (
	ReasonSucceeded       = "Succeeded"
	ReasonTestPending     = "TestPending"
	ReasonTestSucceeded   = "TestSucceeded"
	ReasonHTTPStatus      = "HTTPStatus"
	ReasonTimeout         = "Timeout"
	ReasonTLSError        = "TLSError"
	ReasonDNSError        = "DNSError"
	ReasonConnectionError = "ConnectionError"
	ReasonRefusedByPolicy = "RefusedByPolicy"
	ReasonDeactivated     = "Deactivated"
	ReasonSecretError     = "SecretError"
	// ReasonSecretNotOptedIn: authorizationSecretRef names a Secret that is
	// not labelled labhook.io/webhook-authorization: "true".
	ReasonSecretNotOptedIn    = "SecretNotOptedIn"
	ReasonDefaultConflict     = "DefaultConflict"
	ReasonNoDefaultConflict   = "NoConflict"
	ReasonDeliveryFailing     = "DeliveryFailing"
	ReasonBacklogged          = "BacklogPastWarning"
	ReasonBacklogOK           = "BacklogBelowWarning"
	ReasonPhase               = "Phase"
	ReasonResourceNotFound    = "ResourceNotFound"
	ReasonResourceNotReady    = "ResourceNotReady"
	ReasonIncompatibleType    = "IncompatibleResourceType"
	ReasonAuthSecretNotFound  = "AuthSecretNotFound"
	ReasonNoUsableConfig      = "NoUsableWebhookConfig"
	ReasonWebhookConfigFilter = "FilteredByEventTypes"
	ReasonWaitingForEarlier   = "WaitingForEarlierMessage"
	ReasonRetrying            = "Retrying"
	ReasonDelivered           = "Delivered"
	ReasonExhausted           = "RetriesExhausted"
	ReasonRotationGrace       = "PreviousSecretInGrace"
	ReasonRotationRefused     = "RotationRefused"
	// ReasonEndpointGone: the receiver answered 410 Gone; nothing more is
	// sent to it until its url changes or it is re-tested.
	ReasonEndpointGone = "EndpointGone"
	// ReasonSignatureSchemeChanged: spec.signature changed, so the generated
	// signing Secret got a key of the new scheme; the old key still signs
	// for the rotation grace period.
	ReasonSignatureSchemeChanged = "SignatureSchemeChanged"
)

// Event reasons that are not also condition reasons.
const (
	// ReasonSecretGenerated: the WebhookConfig controller created the
	// <name>-signing Secret.
	ReasonSecretGenerated = "SecretGenerated"
	// ReasonSecretRotated: the generated signing Secret was rotated on
	// request; the previous key still signs for the grace period.
	ReasonSecretRotated = "SecretRotated"
	// ReasonMessageNameTaken: an OutgoingMessage that is not the lab
	// object's own holds the name of its message; another name is tried.
	ReasonMessageNameTaken = "MessageNameTaken"
)

// Defaults of WebhookConfig spec fields. The CRD is the source: its
// +kubebuilder:default markers (which cannot name a constant) set them on
// every object the API server stores. Code falls back to these only for an
// object that lacks the field (written before the default existed);
// controllers' TestCRDDefaultsMatchConstants fails when the two disagree.
const (
	DefaultTimeoutSeconds   = 15
	DefaultRetryMaxAttempts = 8
	DefaultRetryMaxAge      = "24h"
	DefaultSignature        = SignatureHMACSHA256
)

// Annotations a person or a tool sets to ask for an action. Any new value
// triggers the action once; the handled value is recorded in status.
const (
	AnnotationTestRequestedAt         = "labhook.io/test-requested-at"
	AnnotationRotateSecretRequestedAt = "labhook.io/rotate-secret-requested-at"
	AnnotationRedeliverRequestedAt    = "labhook.io/redeliver-requested-at"
)

// AnnotationCreatedAt is set by labhook's producers on an OutgoingMessage to
// the producer's clock at creation (RFC 3339 with nanoseconds). It orders
// messages created within the same second, since creationTimestamp has
// second precision. Messages without it order by creationTimestamp, then name.
const AnnotationCreatedAt = "labhook.io/created-at"

// What labhook's producers put on an OutgoingMessage they create for a
// LabResource or LabInterface (a message whose first attempt failed, that
// found no usable WebhookConfig, or that waits behind an earlier one), so it
// is recognisably that object's own and maps back to it.
const (
	// LabelLabObjectUID is the UID of the LabResource or LabInterface the
	// message is about. A message with this name but without this label
	// (or with another UID) is not the producer's, whoever created it.
	LabelLabObjectUID = "labhook.io/lab-object-uid"
	// AnnotationLabObject is "<Kind>/<name>" of that object.
	AnnotationLabObject = "labhook.io/lab-object"
	// AnnotationTimestamp is the message's wire timestamp when it was sent
	// before its OutgoingMessage existed. The body renders it instead of
	// creationTimestamp, so every retry sends the first attempt's bytes.
	AnnotationTimestamp = "labhook.io/timestamp"
)

// Annotations the WebhookConfig controller keeps on a generated signing
// Secret, so a rotation is recorded next to the secrets it changed: a crash
// between rotating the Secret and writing status never rotates twice.
const (
	// AnnotationRotatedForRequest is the rotate-secret-requested-at value
	// the last rotation answered.
	AnnotationRotatedForRequest = "labhook.io/rotated-for-request"
	// AnnotationRotatedAt is when the last rotation happened (RFC 3339).
	AnnotationRotatedAt = "labhook.io/rotated-at"
	// AnnotationPreviousSecretExpiresAt is when previousSecret stops signing (RFC 3339).
	AnnotationPreviousSecretExpiresAt = "labhook.io/previous-secret-expires-at"
)

// Annotations the webhookserver writes on what it applies from an incoming
// message. Controllers compare AnnotationSourceSpecHash with the hash of the
// current spec to suppress echoes: a change that came from the backend is
// not sent back to it.
const (
	AnnotationSourceMessageID = "labhook.io/source-message-id"
	AnnotationSourceTimestamp = "labhook.io/source-timestamp"
	AnnotationSourceSpecHash  = "labhook.io/source-spec-hash"
	// AnnotationSourceBodyHash is the hex SHA-256 of the message body, so a
	// replay of the same source message id is recognised, and the same id
	// with another body refused, after the webhookserver restarts.
	AnnotationSourceBodyHash = "labhook.io/source-body-hash"
	// AnnotationSourceAction is the action (CREATED, UPDATED, DELETED) of the
	// message an object reflects; with the id and the timestamp it tells a
	// new message from an ambiguous reuse of source_message_id.
	AnnotationSourceAction = "labhook.io/source-action"
	// AnnotationSourceOperation is what that message did to the object
	// (created, updated, unchanged, deleted), so a retry of the message is
	// answered as it was the first time, by any replica.
	AnnotationSourceOperation = "labhook.io/source-operation"
	// AnnotationSourceDeleted is set, to the source message id, on an object
	// the webhookserver is about to delete, so its DELETED message is not
	// echoed; AnnotationSourceDeletedAt is when (RFC 3339). Only a deletion
	// that follows the mark closely counts (internal/echo.IsEchoDelete).
	AnnotationSourceDeleted   = "labhook.io/source-deleted"
	AnnotationSourceDeletedAt = "labhook.io/source-deleted-at"
)

// AnnotationReplyTo is set by the webhookserver on every object an incoming
// message wrote when that message's source_message_id names a message
// labhook sent to the organisation: the value is that message_id.
const AnnotationReplyTo = "labhook.io/reply-to"

// AnnotationWebhookConfig on an API-key Secret names the WebhookConfig that
// objects written through that key refer to (spec.webhookConfigRef), so the
// messages about them go there (per-key configs).
const AnnotationWebhookConfig = "labhook.io/webhook-config"

// Labels.
const (
	// LabelState mirrors WebhookConfig status.state for label selectors.
	LabelState = "labhook.io/state"
	// LabelAPIKey marks a Secret in an organisation namespace as an incoming API key.
	LabelAPIKey = "labhook.io/api-key"
	// LabelWebhookConfig names the WebhookConfig a signing Secret belongs to.
	LabelWebhookConfig = "labhook.io/webhook-config"
	// LabelWebhookAuthorization marks a Secret that a WebhookConfig's
	// authorizationSecretRef may name. Without it a namespace editor could
	// send any Secret of the namespace to a url of their choice.
	LabelWebhookAuthorization = "labhook.io/webhook-authorization"
	// LabelLabInterface names the LabInterface a credential Secret belongs to.
	LabelLabInterface = "labhook.io/lab-interface"
	// LabelShard on an organisation's Namespace names the manager shard
	// that serves it: the manager started with --shard=<value>. A namespace
	// without it (or with an empty value) is served by the manager started
	// without --shard. Only cluster admins can label Namespaces, so an
	// organisation cannot choose or leave its shard.
	LabelShard = "labhook.io/shard"
)

// FinalizerOutgoingMessage holds a deleted LabResource or LabInterface until
// its DELETED message is delivered or recorded as an OutgoingMessage.
const FinalizerOutgoingMessage = "labhook.io/outgoing-message"

// Secret keys.
const (
	// SecretKeySigning is the key of a signing Secret that holds the current
	// signing key: a whsec_ secret (hmac-sha256) or a whsk_ Ed25519 private
	// key (ed25519).
	SecretKeySigning = "secret"
	// SecretKeyPreviousSigning holds the key replaced by the last rotation
	// or switch of spec.signature, still used to sign until
	// status.rotation.previousExpiresAt.
	SecretKeyPreviousSigning = "previousSecret"
	// SecretKeyAPIKey and SecretKeyAPIKeySHA256 hold an incoming API key, in
	// plain text or as the hex SHA-256 of it.
	SecretKeyAPIKey       = "apiKey"
	SecretKeyAPIKeySHA256 = "apiKeySHA256"
	// Interface credential keys, as in the incoming wire format.
	SecretKeyKey      = "key"
	SecretKeyUsername = "username"
	SecretKeyPassword = "password"
)

// FieldManagerWebhookServer is the server-side apply field manager of the webhookserver.
const FieldManagerWebhookServer = "labhook-webhookserver"
