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
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// TestCRDDefaultsMatchConstants checks that the defaults the code falls
// back to are the ones the CRD sets: the +kubebuilder:default markers are
// the source, and a marker changed without its constant fails here.
func TestCRDDefaultsMatchConstants(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "labhook.io_webhookconfigs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	retry := spec.Properties["retry"]
	for _, c := range []struct {
		field string
		prop  apiextensionsv1.JSONSchemaProps
		want  any
	}{
		{"spec.timeoutSeconds", spec.Properties["timeoutSeconds"], labhookv1alpha1.DefaultTimeoutSeconds},
		{"spec.signature", spec.Properties["signature"], string(labhookv1alpha1.DefaultSignature)},
		{"spec.retry.maxAttempts", retry.Properties["maxAttempts"], labhookv1alpha1.DefaultRetryMaxAttempts},
		{"spec.retry.maxAge", retry.Properties["maxAge"], labhookv1alpha1.DefaultRetryMaxAge},
	} {
		if c.prop.Default == nil {
			t.Errorf("%s: the CRD sets no default", c.field)
			continue
		}
		want, err := json.Marshal(c.want)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(c.prop.Default.Raw); got != string(want) {
			t.Errorf("%s: the CRD defaults to %s, the code to %s", c.field, got, want)
		}
	}
}
