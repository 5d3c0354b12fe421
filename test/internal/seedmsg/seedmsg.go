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

// Package seedmsg produces seed 000's example incoming message
// (config/samples/incoming/seed-example.json: 4 resources, 5 interfaces, 2
// of them with credentials) with fresh ids, and the same content as plain
// Kubernetes objects, for a baseline that writes them without labhook.
package seedmsg

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/webhookserver"
)

// Path is the seed example, relative to the repository root.
const Path = "config/samples/incoming/seed-example.json"

// Example is the parsed seed message.
type Example struct {
	raw []byte
}

// Load reads the seed example from the repository.
func Load(root string) (*Example, error) {
	b, err := os.ReadFile(filepath.Join(root, Path))
	if err != nil {
		return nil, fmt.Errorf("seed example: %w", err)
	}
	var probe map[string]any
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("seed example %s: %w", Path, err)
	}
	return &Example{raw: b}, nil
}

// Message is one fresh copy of the example.
type Message struct {
	SourceMessageID string
	ResourceIDs     []string
	Body            []byte
	parsed          map[string]any
}

// Fresh returns the example with a new source_message_id and new resource
// ids (interfaces follow their resource). tag and seq make them unique; ids
// stay valid DNS labels so CR names equal ids.
func (e *Example) Fresh(tag string, seq int) Message {
	var m map[string]any
	_ = json.Unmarshal(e.raw, &m)
	m["source_message_id"] = fmt.Sprintf("%s-m%07d", tag, seq)
	data := m["data"].(map[string]any)
	rename := map[string]string{}
	var ids []string
	for i, r := range data["resources"].([]any) {
		res := r.(map[string]any)
		id := fmt.Sprintf("%s-%07d-%d", tag, seq, i)
		rename[res["id"].(string)] = id
		res["id"] = id
		ids = append(ids, id)
	}
	for _, f := range data["interfaces"].([]any) {
		itf := f.(map[string]any)
		itf["resource_id"] = rename[itf["resource_id"].(string)]
	}
	body, _ := json.Marshal(m)
	return Message{SourceMessageID: m["source_message_id"].(string), ResourceIDs: ids, Body: body, parsed: m}
}

// Objects is what the message means as Kubernetes objects.
type Objects struct {
	Secrets    []*corev1.Secret
	Resources  []*labhookv1alpha1.LabResource
	Phases     []labhookv1alpha1.ResourcePhase // status.phase of Resources[i]
	Interfaces []*labhookv1alpha1.LabInterface
}

// Objects converts the message into the 11 objects the webhookserver writes
// (2 credential Secrets, 4 LabResources, 5 LabInterfaces) plus 4 phases.
func (m Message) Objects(namespace string) Objects {
	var o Objects
	data := m.parsed["data"].(map[string]any)
	for _, r := range data["resources"].([]any) {
		res := r.(map[string]any)
		id := res["id"].(string)
		lr := &labhookv1alpha1.LabResource{
			ObjectMeta: metav1.ObjectMeta{Name: webhookserver.ResourceName(id), Namespace: namespace},
			Spec: labhookv1alpha1.LabResourceSpec{
				ID: id, Type: labhookv1alpha1.ResourceType(res["type"].(string)), Name: str(res["name"]),
				Config: &labhookv1alpha1.LabResourceConfig{},
			},
		}
		cfg, _ := res["config"].(map[string]any)
		if ni, ok := cfg["network_interface"].(map[string]any); ok {
			lr.Spec.Config.NetworkInterfaces = []labhookv1alpha1.NetworkInterface{{
				PublicIP: str(ni["public_ip"]), PrivateIP: str(ni["private_ip"]), DNS: str(ni["dns"]),
			}}
		}
		if a, ok := cfg["address"].(string); ok {
			lr.Spec.Config.Address = a
		}
		o.Resources = append(o.Resources, lr)
		o.Phases = append(o.Phases, labhookv1alpha1.ResourcePhase(str(res["status"])))
	}
	for _, f := range data["interfaces"].([]any) {
		itf := f.(map[string]any)
		name := webhookserver.InterfaceName(itf["resource_id"].(string), itf["name"].(string))
		resource := webhookserver.ResourceName(itf["resource_id"].(string))
		li := &labhookv1alpha1.LabInterface{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: labhookv1alpha1.LabInterfaceSpec{
				Name: itf["name"].(string), Type: labhookv1alpha1.InterfaceType(itf["type"].(string)),
				Region:      itf["region"].(string),
				ResourceRef: labhookv1alpha1.LocalObjectReference{Name: resource},
			},
		}
		if cfg, ok := itf["config"].(map[string]any); ok {
			li.Spec.Config = &labhookv1alpha1.LabInterfaceConfig{}
			// The seed sends DESKTOP's port as the string "3389".
			var port int32
			switch p := cfg["port"].(type) {
			case float64:
				port = int32(p)
			case string:
				n, _ := strconv.Atoi(p)
				port = int32(n)
			}
			if port != 0 {
				li.Spec.Config.Port = &port
			}
			if auth, ok := cfg["authentication"].(map[string]any); ok {
				sec := &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{
						Name: webhookserver.CredentialSecretName(name), Namespace: namespace,
						Labels: map[string]string{labhookv1alpha1.LabelLabInterface: name},
					},
					StringData: map[string]string{},
				}
				for k, v := range auth["data"].(map[string]any) {
					sec.StringData[k] = str(v)
				}
				o.Secrets = append(o.Secrets, sec)
				li.Spec.Config.Authentication = &labhookv1alpha1.InterfaceAuthentication{
					Type:      labhookv1alpha1.AuthenticationType(auth["type"].(string)),
					SecretRef: labhookv1alpha1.LocalObjectReference{Name: sec.Name},
				}
			}
		}
		o.Interfaces = append(o.Interfaces, li)
	}
	return o
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
