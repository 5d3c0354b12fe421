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

package main

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Placeholders: the object is changed in memory to hold them, marshalled,
// and then each is replaced by template text. An inline placeholder stands
// for a value; a line placeholder (a map key, or a list item) is replaced
// with its whole line by a block indented like it. Map keys are marshalled
// in order, and a line placeholder's key sorts last, so it is never the
// first key of a list item (whose line starts with "- ").
const (
	inlinePrefix = "HELMX_"
	linePrefix   = "zzhelm_"
)

// inline are the values that replace inline placeholders.
var inline = map[string]string{
	"NAMESPACE":              "{{ .Release.Namespace }}",
	"IMAGE":                  `{{ include "labhook.image" . }}`,
	"MANAGER_REPLICAS":       "{{ .Values.manager.replicas }}",
	"WEBHOOKSERVER_REPLICAS": "{{ .Values.webhookserver.replicas }}",
	"SHARD":                  "{{ $shard }}",
}

// lines are the blocks that replace line placeholders, given the
// placeholder's indentation.
var lines = map[string]func(ind string) string{
	"LABELS": func(ind string) string {
		return fmt.Sprintf(`{{- include "labhook.labels" . | nindent %d }}`, len(ind))
	},
	"CRD_KEEP": func(ind string) string {
		return "{{- if .Values.crds.keep }}\n" + ind + "helm.sh/resource-policy: keep\n{{- end }}"
	},
	"PULL_POLICY": func(ind string) string {
		return "{{- with .Values.image.pullPolicy }}\n" + ind + "imagePullPolicy: {{ . }}\n{{- end }}"
	},
	"MANAGER_ARGS": func(ind string) string {
		return fmt.Sprintf(`{{- with include "labhook.managerArgs" . }}{{ . | nindent %d }}{{ end }}`, len(ind))
	},
	"WEBHOOKSERVER_ARGS": func(ind string) string {
		return fmt.Sprintf(`{{- with include "labhook.webhookserverArgs" . }}{{ . | nindent %d }}{{ end }}`, len(ind))
	},
	"MANAGER_RESOURCES": func(ind string) string {
		return fmt.Sprintf("{{- with .Values.manager.resources }}\n%sresources: {{- toYaml . | nindent %d }}\n{{- end }}", ind, len(ind)+2)
	},
	"WEBHOOKSERVER_RESOURCES": func(ind string) string {
		return fmt.Sprintf("{{- with .Values.webhookserver.resources }}\n%sresources: {{- toYaml . | nindent %d }}\n{{- end }}", ind, len(ind)+2)
	},
	"TLS_MOUNT": func(ind string) string {
		return "{{- if .Values.webhookserver.tls.secretName }}\n" +
			ind + "volumeMounts:\n" +
			ind + "- name: tls\n" +
			ind + "  mountPath: " + tlsDir + "\n" +
			ind + "  readOnly: true\n" +
			"{{- end }}"
	},
	"TLS_VOLUME": func(ind string) string {
		return "{{- with .Values.webhookserver.tls.secretName }}\n" +
			ind + "volumes:\n" +
			ind + "- name: tls\n" +
			ind + "  secret:\n" +
			ind + "    secretName: {{ . }}\n" +
			"{{- end }}"
	},
	"TLS_PROBE_SCHEME": func(ind string) string {
		return "{{- if .Values.webhookserver.tls.secretName }}\n" + ind + "scheme: HTTPS\n{{- end }}"
	},
	"POD_SCHEDULING": func(ind string) string {
		var b strings.Builder
		for _, k := range []string{"imagePullSecrets", "nodeSelector", "tolerations", "affinity"} {
			fmt.Fprintf(&b, "{{- with .Values.%s }}\n%s%s: {{- toYaml . | nindent %d }}\n{{- end }}\n", k, ind, k, len(ind)+2)
		}
		return strings.TrimSuffix(b.String(), "\n")
	},
}

// tlsDir is where the webhookserver's TLS Secret is mounted.
const tlsDir = "/etc/labhook/tls"

// Container names in config/manager and the overlay.
const (
	managerContainer       = "manager"
	webhookserverContainer = "webhookserver"
)

// templatize turns one object into template text.
func templatize(obj object) ([]byte, error) {
	obj = deepCopy(obj)
	replaceStrings(obj, configNamespace, inlinePrefix+"NAMESPACE")
	meta := obj["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
	}
	labels[linePrefix+"LABELS"] = ""
	meta["labels"] = labels
	switch obj.kind() {
	case "CustomResourceDefinition":
		ann, _ := meta["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
		}
		ann[linePrefix+"CRD_KEEP"] = ""
		meta["annotations"] = ann
	case "Deployment":
		if err := templatizeDeployment(obj); err != nil {
			return nil, err
		}
	}
	b, err := yaml.Marshal(map[string]any(obj))
	if err != nil {
		return nil, err
	}
	t, err := fill(escape(string(b)))
	if err != nil {
		return nil, err
	}
	return []byte(t), nil
}

// templatizeDeployment puts the values into a Deployment: replicas, and
// per container image, pull policy, flags and resources; the
// webhookserver's TLS Secret and probe scheme; scheduling for the Pod.
func templatizeDeployment(obj object) error {
	spec := obj["spec"].(map[string]any)
	switch obj.name() {
	case "labhook-manager":
		spec["replicas"] = inlinePrefix + "MANAGER_REPLICAS"
	case "labhook-webhookserver":
		spec["replicas"] = inlinePrefix + "WEBHOOKSERVER_REPLICAS"
	case shardDeployPrefix + exampleShard:
		// A shard runs as many managers as the unsharded one.
		spec["replicas"] = inlinePrefix + "MANAGER_REPLICAS"
		templatizeShard(obj)
	default:
		return fmt.Errorf("no replicas value for Deployment %s: add one to hack/gen-chart", obj.name())
	}
	pod := spec["template"].(map[string]any)["spec"].(map[string]any)
	for _, k := range []string{"imagePullSecrets", "nodeSelector", "tolerations", "affinity"} {
		if _, ok := pod[k]; ok {
			return fmt.Errorf("config sets %s; the chart sets it from values: teach hack/gen-chart to merge them", k)
		}
	}
	pod[linePrefix+"POD_SCHEDULING"] = ""
	for _, c := range pod["containers"].([]any) {
		c := c.(map[string]any)
		c["image"] = inlinePrefix + "IMAGE"
		c[linePrefix+"PULL_POLICY"] = ""
		delete(c, "resources")
		args, _ := c["args"].([]any)
		switch c["name"] {
		case managerContainer:
			c["args"] = append(args, linePrefix+"MANAGER_ARGS")
			c[linePrefix+"MANAGER_RESOURCES"] = ""
		case webhookserverContainer:
			c["args"] = append(args, linePrefix+"WEBHOOKSERVER_ARGS")
			c[linePrefix+"WEBHOOKSERVER_RESOURCES"] = ""
			if _, ok := c["volumeMounts"]; ok {
				return fmt.Errorf("the webhookserver container has volumeMounts; teach hack/gen-chart to add the TLS mount to them")
			}
			c[linePrefix+"TLS_MOUNT"] = ""
			if _, ok := pod["volumes"]; ok {
				return fmt.Errorf("the webhookserver's Pod has volumes; teach hack/gen-chart to add the TLS volume to them")
			}
			pod[linePrefix+"TLS_VOLUME"] = ""
			for _, p := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
				if probe, ok := c[p].(map[string]any); ok {
					if get, ok := probe["httpGet"].(map[string]any); ok {
						get[linePrefix+"TLS_PROBE_SCHEME"] = ""
					}
				}
			}
		default:
			return fmt.Errorf("container %v of Deployment %s: the chart has no values for it", c["name"], obj.name())
		}
	}
	return nil
}

// templatizeShard puts the shard's name from the chart's range in place of
// the component's: in the Deployment's name, its labels, selector and Pod
// labels, and the --shard flag.
func templatizeShard(obj object) {
	obj["metadata"].(map[string]any)["name"] = shardDeployPrefix + inlinePrefix + "SHARD"
	spec := obj["spec"].(map[string]any)
	for _, labels := range []any{
		obj["metadata"].(map[string]any)["labels"],
		spec["selector"].(map[string]any)["matchLabels"],
		spec["template"].(map[string]any)["metadata"].(map[string]any)["labels"],
	} {
		if l, ok := labels.(map[string]any); ok && l[labhookv1alpha1.LabelShard] == exampleShard {
			l[labhookv1alpha1.LabelShard] = inlinePrefix + "SHARD"
		}
	}
	replaceStrings(spec, "--shard="+exampleShard, "--shard="+inlinePrefix+"SHARD")
}

// escape keeps text that looks like a template action (alert annotations'
// {{ $labels.namespace }}, the dashboard's {{result}}) as it is.
func escape(s string) string {
	return regexp.MustCompile(`\{\{|\}\}`).ReplaceAllStringFunc(s, func(m string) string {
		return `{{"` + m + `"}}`
	})
}

var placeholderRE = regexp.MustCompile(`(?m)^( *)(?:` + linePrefix + `([A-Z_]+): ""|- ` + linePrefix + `([A-Z_]+))$`)

// fill replaces the placeholders with template text.
func fill(s string) (string, error) {
	var missing []string
	s = placeholderRE.ReplaceAllStringFunc(s, func(line string) string {
		m := placeholderRE.FindStringSubmatch(line)
		name := m[2] + m[3]
		block, ok := lines[name]
		if !ok {
			missing = append(missing, name)
			return line
		}
		return block(m[1])
	})
	for k, v := range inline {
		s = strings.ReplaceAll(s, inlinePrefix+k, v)
	}
	if len(missing) > 0 || strings.Contains(s, inlinePrefix) || strings.Contains(s, linePrefix) {
		return "", fmt.Errorf("placeholders left in the template (no block for %v)", missing)
	}
	return s, nil
}

// replaceStrings replaces every string value equal to from with to.
func replaceStrings(v any, from, to string) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if s, ok := e.(string); ok && s == from {
				t[k] = to
			} else {
				replaceStrings(e, from, to)
			}
		}
	case object:
		replaceStrings(map[string]any(t), from, to)
	case []any:
		for i, e := range t {
			if s, ok := e.(string); ok && s == from {
				t[i] = to
			} else {
				replaceStrings(e, from, to)
			}
		}
	}
}

func deepCopy(o object) object {
	c, ok := runtime.DeepCopyJSONValue(map[string]any(o)).(map[string]any)
	if !ok {
		return o
	}
	return c
}
