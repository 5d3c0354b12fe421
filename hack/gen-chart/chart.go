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
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// The kustomize trees the chart is made from.
const (
	defaultLayout    = "config/default"
	standaloneLayout = "config/overlays/standalone-webhookserver"
	// shardedLayout is config/default with config/components/sharding: the
	// objects it adds render once per name in manager.shards.
	shardedLayout  = "config/overlays/sharded"
	monitoringTree = "config/prometheus"
	// configNamespace is where config/default puts everything; the chart
	// puts it in the release's namespace instead.
	configNamespace = "labhook-system"
)

// defaultChartVersion is the chart's version until a release sets it.
const defaultChartVersion = "0.1.0"

// object is one Kubernetes object as kustomize printed it.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}
func (o object) key() string { return o.kind() + "/" + o.name() }

// build runs `kustomize build dir` and splits the output into objects.
func build(o options, dir string) ([]object, error) {
	cmd := exec.Command(o.kustomize, "build", filepath.Join(o.root, dir))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w: %s", dir, err, stderr.String())
	}
	var objs []object
	for _, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(out), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var obj object
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// generate returns the chart's files by name.
func generate(o options) (map[string][]byte, error) {
	def, err := build(o, defaultLayout)
	if err != nil {
		return nil, err
	}
	standalone, err := build(o, standaloneLayout)
	if err != nil {
		return nil, err
	}
	sharded, err := build(o, shardedLayout)
	if err != nil {
		return nil, err
	}
	monitoring, err := build(o, monitoringTree)
	if err != nil {
		return nil, err
	}
	d, err := readDefaults(def, standalone)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	if err := addLayouts(files, def, standalone); err != nil {
		return nil, err
	}
	if err := addShards(files, def, sharded); err != nil {
		return nil, err
	}
	if err := addMonitoring(files, monitoring); err != nil {
		return nil, err
	}
	if err := addStatic(files, o.version, d); err != nil {
		return nil, err
	}
	return files, nil
}

// Conditions that choose between the two layouts.
const (
	ifStandalone = "{{- if .Values.webhookserver.standalone }}"
	ifSidecar    = "{{- if not .Values.webhookserver.standalone }}"
)

// addLayouts templates config/default and the standalone overlay: objects
// the same in both always render, the others under webhookserver.standalone.
// The Namespace is left out: Helm installs into the release's namespace,
// which its owner creates and labels (see the chart's README).
func addLayouts(files map[string][]byte, def, standalone []object) error {
	byKey := func(objs []object) map[string]object {
		m := map[string]object{}
		for _, o := range objs {
			m[o.key()] = o
		}
		return m
	}
	d, s := byKey(def), byKey(standalone)
	keys := map[string]bool{}
	for k := range d {
		keys[k] = true
	}
	for k := range s {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		do, inDefault := d[k]
		so, inStandalone := s[k]
		ref := do
		if !inDefault {
			ref = so
		}
		switch ref.kind() {
		case "Namespace":
			continue
		case "CustomResourceDefinition":
			t, err := templatize(ref)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			files[filepath.Join("templates", "crds", ref.name()+".yaml")] = wrap("{{- if .Values.crds.install }}", t)
			continue
		}
		var body []byte
		switch {
		case inDefault && inStandalone && reflect.DeepEqual(do, so):
			t, err := templatize(do)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			body = append([]byte(generatedNote), t...)
		case inDefault && inStandalone:
			td, err := templatize(do)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			ts, err := templatize(so)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			body = []byte(generatedNote + ifStandalone + "\n" + string(ts) + "{{- else }}\n" + string(td) + "{{- end }}\n")
		case inDefault:
			t, err := templatize(do)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			body = wrap(ifSidecar, t)
		default:
			t, err := templatize(so)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			body = wrap(ifStandalone, t)
		}
		files[filepath.Join("templates", fileName(ref))] = body
	}
	return nil
}

// The shard the sharding component's Deployment serves; the chart puts
// each name of manager.shards in its place.
const (
	exampleShard      = "a"
	shardDeployPrefix = "labhook-manager-shard-"
)

// addShards templates what the sharding component adds to config/default
// (the Deployment of one shard) once per name in manager.shards. Inside
// the range, $shard is the name and . is the chart's root again.
func addShards(files map[string][]byte, def, sharded []object) error {
	inDefault := map[string]bool{}
	for _, o := range def {
		inDefault[o.key()] = true
	}
	for _, o := range sharded {
		if inDefault[o.key()] {
			continue
		}
		if o.kind() != "Deployment" || o.name() != shardDeployPrefix+exampleShard {
			return fmt.Errorf("%s: %s adds it, and the chart has no shard value for it; teach hack/gen-chart", o.key(), shardedLayout)
		}
		t, err := templatize(o)
		if err != nil {
			return fmt.Errorf("%s: %w", o.key(), err)
		}
		files[filepath.Join("templates", "manager-shard-deployment.yaml")] = []byte(generatedNote +
			"{{- range $shard := .Values.manager.shards }}\n---\n{{- with $ }}\n" + string(t) + "{{- end }}\n{{- end }}\n")
	}
	return nil
}

// addMonitoring templates config/prometheus, each kind under its value.
func addMonitoring(files map[string][]byte, objs []object) error {
	for _, o := range objs {
		var cond string
		switch o.kind() {
		case "Service", "ServiceMonitor":
			cond = "{{- if .Values.monitoring.serviceMonitor }}"
		case "PrometheusRule":
			cond = "{{- if .Values.monitoring.prometheusRule }}"
		case "ConfigMap":
			cond = "{{- if .Values.monitoring.dashboard }}"
		default:
			return fmt.Errorf("%s: %s in %s has no monitoring value; add one to hack/gen-chart", o.key(), o.kind(), monitoringTree)
		}
		t, err := templatize(o)
		if err != nil {
			return fmt.Errorf("%s: %w", o.key(), err)
		}
		files[filepath.Join("templates", "monitoring", fileName(o))] = wrap(cond, t)
	}
	return nil
}

const generatedNote = "{{- /* Generated by hack/gen-chart from config/: edit config/ or the generator, then run make helm. */ -}}\n"

func wrap(cond string, body []byte) []byte {
	return []byte(generatedNote + cond + "\n" + string(body) + "{{- end }}\n")
}

func fileName(o object) string {
	return strings.TrimPrefix(o.name(), "labhook-") + "-" + strings.ToLower(o.kind()) + ".yaml"
}
