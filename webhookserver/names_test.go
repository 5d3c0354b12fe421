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

package webhookserver_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/labhook/labhook/webhookserver"
)

func TestNamesNeverCollide(t *testing.T) {
	type entity struct{ resource, iface string }
	entities := []entity{
		{"vm1", "Web App"}, {"vm1", "web-app"}, {"vm1", "WEB_APP"}, {"vm1", "web app"}, {"vm1", "Web-App!"},
		{"a", "b-c"}, {"a-b", "c"}, {"a", "b"}, {"a", "B"},
		{"Web App", "x"}, {"web-app", "x"}, {"WEB_APP", "x"},
		{strings.Repeat("a", 63), strings.Repeat("n", 200)}, {strings.Repeat("a", 63), strings.Repeat("n", 201)},
		{strings.Repeat("a", 64), "x"}, {strings.Repeat("a", 65), "x"}, {"!!!", "???"}, {"", ""},
	}
	resources := map[string]string{}
	interfaces := map[string]entity{}
	for _, e := range entities {
		rn := webhookserver.ResourceName(e.resource)
		if other, ok := resources[rn]; ok && other != e.resource {
			t.Errorf("resources %q and %q both map to %s", other, e.resource, rn)
		}
		resources[rn] = e.resource
		if msgs := validation.IsDNS1123Subdomain(rn); len(msgs) > 0 {
			t.Errorf("resource %q: name %q is not an object name: %v", e.resource, rn, msgs)
		}
		in := webhookserver.InterfaceName(e.resource, e.iface)
		if other, ok := interfaces[in]; ok && other != e {
			t.Errorf("interfaces %+v and %+v both map to %s", other, e, in)
		}
		interfaces[in] = e
		if msgs := validation.IsDNS1123Subdomain(webhookserver.CredentialSecretName(in)); len(msgs) > 0 {
			t.Errorf("%+v: Secret name is not an object name: %v", e, msgs)
		}
		if msgs := validation.IsValidLabelValue(in); len(msgs) > 0 {
			t.Errorf("%+v: interface name %q is not a label value: %v", e, in, msgs)
		}
	}
}

func TestNamesAreReadable(t *testing.T) {
	for id, want := range map[string]string{"25f377ac": "25f377ac", "web": "web", "a-b": "a-b"} {
		if got := webhookserver.ResourceName(id); got != want {
			t.Errorf("ResourceName(%q) = %q, want the id itself", id, got)
		}
	}
	for _, id := range []string{"Web App", "r-0123456789abcdef", "UPPER", strings.Repeat("a", 64), "a.b"} {
		got := webhookserver.ResourceName(id)
		if id == "r-0123456789abcdef" {
			if got != id {
				t.Errorf("%q is a DNS label and stays itself, got %q", id, got)
			}
			continue
		}
		// A hashed name has a dot, so it can never be an id used as is.
		if !strings.Contains(got, ".") || len(validation.IsDNS1123Label(got)) == 0 {
			t.Errorf("ResourceName(%q) = %q: a hashed name must not be a DNS label", id, got)
		}
	}
	if got := webhookserver.ResourceName("Web App"); !strings.HasPrefix(got, "web-app.") {
		t.Errorf("ResourceName(Web App) = %q, want it to start with web-app.", got)
	}
	if got := webhookserver.InterfaceName("25f377ac", "Server Web Application"); !strings.HasPrefix(got, "25f377ac-server-web-application.") || len(got) > 63 {
		t.Errorf("InterfaceName = %q", got)
	}
}
