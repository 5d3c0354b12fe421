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

package webhookserver

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Object names are derived from what the backend sends, so the same
// message always writes the same objects and a replay finds them.

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// ResourceName is the LabResource name for a resource id: the id itself
// when it is a DNS label (as "25f377ac" is), else "r-" and 16 hex digits of
// its SHA-256.
func ResourceName(id string) string {
	if len(validation.IsDNS1123Label(id)) == 0 {
		return id
	}
	return "r-" + shortHash(id, 16)
}

// InterfaceName is the LabInterface name for the interface called name on
// the LabResource resourceName: "<resourceName>-<name as a DNS label>", as
// in "25f377ac-server-web-application". A name that leaves no letters or
// digits, or a result over 63 characters (it is also a label value), ends
// in 8 hex digits of a hash instead.
func InterfaceName(resourceName, name string) string {
	slug := strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(name), "-"), "-")
	n := resourceName + "-" + slug
	if slug != "" && len(n) <= validation.DNS1123LabelMaxLength {
		return n
	}
	prefix := strings.TrimRight(n[:min(len(n), validation.DNS1123LabelMaxLength-9)], "-")
	return prefix + "-" + shortHash(resourceName+"/"+name, 8)
}

// CredentialSecretName is the Secret holding an interface's credentials.
func CredentialSecretName(interfaceName string) string {
	return interfaceName + "-credentials"
}
