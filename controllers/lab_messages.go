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

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// This file holds what the LabResource and LabInterface producers share:
// deterministic message names, the wire (snake_case) form of their specs
// that goes into a message's context, and the create-if-absent step.

// Trigger values that, with the object UID and the message status, name a
// message. UPDATED uses the generation, RESTARTED/REPLACED the requested time.
const (
	triggerCreated = "created"
	triggerDeleted = "deleted"
)

// messageName derives the OutgoingMessage name (= message_id) from the
// object UID, the trigger (generation or requested time) and the status. The
// same change always gives the same name, so a producer that crashes between
// creating the message and recording it in status gets AlreadyExists on the
// retry instead of sending a duplicate. The result is "<type>-<status>-" and
// 32 hex digits of SHA-256: a DNS subdomain of at most 63 characters.
func messageName(msgType, status string, uid, trigger string) string {
	sum := sha256.Sum256([]byte(uid + "/" + trigger + "/" + status))
	return strings.ToLower(strings.ReplaceAll(msgType, "_", "-")) + "-" +
		strings.ToLower(status) + "-" + hex.EncodeToString(sum[:16])
}

// producedMessage is one message a producer wants to exist.
type producedMessage struct {
	status    string
	trigger   string
	entityIDs []string
	context   any
}

// ensureMessage creates the OutgoingMessage for m about obj unless it exists
// already, and returns its reference and whether it existed. AlreadyExists is
// success: the name is deterministic, so it can only be the same message. In
// a terminating namespace it returns nil and no error.
func ensureMessage(ctx context.Context, c client.Client, obj client.Object, msgType string,
	ref *labhookv1alpha1.LocalObjectReference, m producedMessage) (*labhookv1alpha1.LastMessage, bool, error) {
	raw, err := json.Marshal(m.context)
	if err != nil {
		return nil, false, fmt.Errorf("render context: %w", err)
	}
	name := messageName(msgType, m.status, string(obj.GetUID()), m.trigger)
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: obj.GetNamespace(),
			// created-at orders messages created within the same second
			// (creationTimestamp has second precision).
			Annotations: map[string]string{
				labhookv1alpha1.AnnotationCreatedAt: time.Now().UTC().Format(time.RFC3339Nano),
			},
		},
		Spec: labhookv1alpha1.OutgoingMessageSpec{
			Type:             labhookv1alpha1.MessageType(msgType),
			Status:           m.status,
			EntityIDs:        m.entityIDs,
			Context:          &apiextensionsv1.JSON{Raw: raw},
			WebhookConfigRef: ref.DeepCopy(),
		},
	}
	err = c.Create(ctx, om)
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		// The organisation is being deleted, and its outbox with it:
		// nothing could deliver the message, and holding the object
		// would hold the namespace deletion forever.
		return nil, false, nil
	case err != nil && !apierrors.IsAlreadyExists(err):
		return nil, false, fmt.Errorf("create OutgoingMessage %s: %w", name, err)
	}
	return &labhookv1alpha1.LastMessage{ID: name, Type: msgType, Status: m.status,
		Phase: labhookv1alpha1.MessagePending, OutgoingMessage: name}, err != nil, nil
}

// messageContext is the context of a RESOURCE or INTERFACE message: which
// object, at which generation, and its spec in wire form.
type messageContext struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	Spec       any    `json:"spec"`
}

// wireNetworkInterface is a NetworkInterface in seed 000's snake_case form.
type wireNetworkInterface struct {
	PublicIP  string `json:"public_ip,omitempty"`
	PrivateIP string `json:"private_ip,omitempty"`
	DNS       string `json:"dns,omitempty"`
}

// wireResource is a LabResourceSpec in seed 000's form. config is a map so
// that config.extra's unknown keys sit beside the known ones, as the backend
// sent them.
type wireResource struct {
	ID                 string         `json:"id"`
	Type               string         `json:"type"`
	Name               string         `json:"name,omitempty"`
	Config             map[string]any `json:"config,omitempty"`
	RestartRequestedAt string         `json:"restart_requested_at,omitempty"`
	ReplaceRequestedAt string         `json:"replace_requested_at,omitempty"`
}

// resourceWire renders a LabResource spec in wire form.
func resourceWire(spec labhookv1alpha1.LabResourceSpec) wireResource {
	w := wireResource{ID: spec.ID, Type: string(spec.Type), Name: spec.Name}
	if spec.RestartRequestedAt != nil {
		w.RestartRequestedAt = wire.FormatTimestamp(spec.RestartRequestedAt.Time)
	}
	if spec.ReplaceRequestedAt != nil {
		w.ReplaceRequestedAt = wire.FormatTimestamp(spec.ReplaceRequestedAt.Time)
	}
	if spec.Config == nil {
		return w
	}
	cfg := map[string]any{}
	if spec.Config.Extra != nil && len(spec.Config.Extra.Raw) > 0 {
		// Unknown keys first, so the known ones below win on a clash.
		_ = json.Unmarshal(spec.Config.Extra.Raw, &cfg)
	}
	if len(spec.Config.NetworkInterfaces) > 0 {
		nics := make([]wireNetworkInterface, 0, len(spec.Config.NetworkInterfaces))
		for _, n := range spec.Config.NetworkInterfaces {
			nics = append(nics, wireNetworkInterface{PublicIP: n.PublicIP, PrivateIP: n.PrivateIP, DNS: n.DNS})
		}
		cfg["network_interfaces"] = nics
	}
	if spec.Config.Address != "" {
		cfg["address"] = spec.Config.Address
	}
	if len(cfg) > 0 {
		w.Config = cfg
	}
	return w
}

// wireInterface is a LabInterfaceSpec in seed 000's form. It carries the
// authentication type only: credentials never leave their Secret.
type wireInterface struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Region     string         `json:"region"`
	ResourceID string         `json:"resource_id"`
	Config     map[string]any `json:"config,omitempty"`
}

type wireAuthentication struct {
	Type string `json:"type"`
}

// interfaceWire renders a LabInterface spec in wire form; resourceID is the
// spec.id of its LabResource. config.extra's unknown keys sit beside the
// known ones, as for resources.
func interfaceWire(spec labhookv1alpha1.LabInterfaceSpec, resourceID string) wireInterface {
	w := wireInterface{Name: spec.Name, Type: string(spec.Type), Region: spec.Region, ResourceID: resourceID}
	c := spec.Config
	if c == nil {
		return w
	}
	cfg := map[string]any{}
	if c.Extra != nil && len(c.Extra.Raw) > 0 {
		_ = json.Unmarshal(c.Extra.Raw, &cfg)
	}
	if c.Port != nil {
		cfg["port"] = *c.Port
	}
	if c.Authentication != nil {
		cfg["authentication"] = wireAuthentication{Type: string(c.Authentication.Type)}
	}
	if len(cfg) > 0 {
		w.Config = cfg
	}
	return w
}

// generationTrigger is the trigger of an UPDATED message.
func generationTrigger(gen int64) string {
	return "generation-" + strconv.FormatInt(gen, 10)
}

// timeTrigger is the trigger of a RESTARTED or REPLACED message.
func timeTrigger(t *metav1.Time) string {
	return t.UTC().Format(time.RFC3339)
}
