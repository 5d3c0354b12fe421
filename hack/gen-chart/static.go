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
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// defaults are the values config/ sets, which become values.yaml's.
type defaults struct {
	ImageRepository, ImageTag          string
	ManagerReplicas, WebhookReplicas   int
	ManagerResources, WebhookResources string
}

// readDefaults reads the image, replicas and resources config/ sets.
func readDefaults(def, standalone []object) (defaults, error) {
	var d defaults
	mgr := findObject(def, "Deployment/labhook-manager")
	ws := findObject(standalone, "Deployment/labhook-webhookserver")
	if mgr == nil || ws == nil {
		return d, fmt.Errorf("%s has no Deployment labhook-manager, or %s no Deployment labhook-webhookserver", defaultLayout, standaloneLayout)
	}
	d.ManagerReplicas, d.WebhookReplicas = replicas(mgr), replicas(ws)
	mc, sidecar := container(mgr, managerContainer), container(mgr, webhookserverContainer)
	wc := container(ws, webhookserverContainer)
	if mc == nil || sidecar == nil || wc == nil {
		return d, fmt.Errorf("the manager, webhookserver sidecar or standalone webhookserver container is missing")
	}
	image, _ := mc["image"].(string)
	repo, tag, ok := strings.Cut(image, ":")
	if !ok || strings.Contains(tag, "/") {
		return d, fmt.Errorf("the manager's image %q has no tag", image)
	}
	d.ImageRepository, d.ImageTag = repo, tag
	if !reflect.DeepEqual(sidecar["resources"], wc["resources"]) {
		return d, fmt.Errorf("the webhookserver's resources differ between %s and %s; the chart has one value for both", defaultLayout, standaloneLayout)
	}
	var err error
	if d.ManagerResources, err = indentYAML(mc["resources"], "    "); err != nil {
		return d, err
	}
	if d.WebhookResources, err = indentYAML(wc["resources"], "    "); err != nil {
		return d, err
	}
	return d, nil
}

func findObject(objs []object, key string) object {
	for _, o := range objs {
		if o.key() == key {
			return o
		}
	}
	return nil
}

func replicas(deploy object) int {
	f, _ := deploy["spec"].(map[string]any)["replicas"].(float64)
	return int(f)
}

func container(deploy object, name string) map[string]any {
	pod := deploy["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	for _, c := range pod["containers"].([]any) {
		if c := c.(map[string]any); c["name"] == name {
			return c
		}
	}
	return nil
}

// indentYAML renders v as a YAML block nested under a key, indented by ind.
func indentYAML(v any, ind string) (string, error) {
	if v == nil {
		return " {}", nil
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return "\n" + ind + strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n"+ind), nil
}

// addStatic adds the files that are not made from config/'s objects.
func addStatic(files map[string][]byte, version string, d defaults) error {
	data := map[string]any{"Version": version, "D": d, "TLSDir": tlsDir}
	for name, text := range map[string]string{
		"Chart.yaml":             chartYAML,
		"values.yaml":            valuesYAML,
		"README.md":              chartREADME,
		".helmignore":            helmignore,
		"templates/_helpers.tpl": helpersTPL,
		"templates/NOTES.txt":    notesTXT,
	} {
		t, err := template.New(name).Delims("[[", "]]").Parse(text)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files[name] = b.Bytes()
	}
	schema, err := json.MarshalIndent(valuesSchema(), "", "  ")
	if err != nil {
		return err
	}
	files["values.schema.json"] = append(schema, '\n')
	return nil
}
