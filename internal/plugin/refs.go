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

package plugin

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// kindNames are the ways kubectl accepts to name a kind: short name,
// singular, plural, each optionally with the group.
type kindNames struct {
	kind  string
	names []string
}

var (
	webhookConfigNames   = kindNames{kind: "WebhookConfig", names: []string{"whc", "webhookconfig", "webhookconfigs"}}
	outgoingMessageNames = kindNames{kind: "OutgoingMessage", names: []string{"om", "outgoingmessage", "outgoingmessages"}}
)

// parseRef reads "whc/NAME" (or "webhookconfig/NAME",
// "webhookconfigs.labhook.io/NAME", or a bare NAME) for kind k.
func parseRef(arg string, k kindNames) (string, error) {
	typ, name, found := strings.Cut(arg, "/")
	if !found {
		typ, name = "", arg
	}
	if found {
		t := strings.TrimSuffix(strings.ToLower(typ), ".labhook.io")
		if !slices.Contains(k.names, t) {
			return "", fmt.Errorf("%q: expected %s/NAME (kind %s)", arg, k.names[0], k.kind)
		}
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("%q: %s name %q is invalid: %s", arg, k.kind, name, strings.Join(errs, "; "))
	}
	return name, nil
}
