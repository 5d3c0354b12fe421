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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// This file holds what the LabResource and LabInterface producers share:
// deterministic message names and the wire (snake_case) form of their specs
// that goes into a message's context.

// Trigger values that, with the object UID and the message status, name a
// message. UPDATED uses the generation, RESTARTED/REPLACED the requested time.
const (
	triggerCreated = "created"
	triggerDeleted = "deleted"
)

// messageName derives the OutgoingMessage name (= message_id) from the
// object UID, the trigger (generation or requested time) and the status. The
// same change always gives the same name, so a producer that crashes between
// sending (or creating) the message and recording it in status resends the
// same message_id, which receivers deduplicate on. The result is
// "<type>-<status>-" and 32 hex digits of SHA-256: a DNS subdomain of at
// most 63 characters.
func messageName(msgType, status string, uid, trigger string) string {
	sum := sha256.Sum256([]byte(uid + "/" + trigger + "/" + status))
	return strings.ToLower(strings.ReplaceAll(msgType, "_", "-")) + "-" +
		strings.ToLower(status) + "-" + hex.EncodeToString(sum[:16])
}

// newLabMessage is the message of kind about obj with status and trigger:
// its id (messageName), entity ids and canonical context. The caller fills
// in what recording it changes.
func newLabMessage(obj client.Object, kind, msgType, status, trigger, resourceID string, entityIDs []string,
	ref *labhookv1alpha1.LocalObjectReference, ctxValue messageContext) (*labMessage, error) {
	raw, err := json.Marshal(ctxValue)
	if err != nil {
		return nil, fmt.Errorf("render context: %w", err)
	}
	return &labMessage{
		kind: kind, id: messageName(msgType, status, string(obj.GetUID()), trigger),
		msgType: msgType, status: status, trigger: trigger, entityIDs: entityIDs, resourceID: resourceID,
		ref: ref.DeepCopy(), context: canonicalJSON(raw),
	}, nil
}

// canonicalJSON is raw as the API server returns it in an OutgoingMessage's
// context: keys sorted, whole numbers as integers. A message sent directly
// and later retried from its OutgoingMessage so carries identical bytes.
func canonicalJSON(raw []byte) []byte {
	var v any
	if err := utiljson.Unmarshal(raw, &v); err != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
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
