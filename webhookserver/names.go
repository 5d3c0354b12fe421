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
	"encoding/base32"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Object names are derived from what the backend sends, so the same
// message always writes the same objects and a replay finds them. Different
// entities never share a name: a name is either an id used verbatim (a DNS
// label, which has no dot) or a readable prefix, a dot and 128 bits of a
// SHA-256 of the entity's exact identity. Finding two identities with one
// hash takes about 2^64 tries, finding one that matches a given name 2^128:
// far past what a tenant can grind. The writes check identity too (spec.id;
// spec.name and the resource), so a name alone never decides.

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// hashEncoding is base32 in lower case: a-z and 2-7, valid in every name.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// hashLength is the length of a 128-bit hash in hashEncoding.
const hashLength = 26

// identityHash is 128 bits of the SHA-256 of the parts of an identity,
// kept apart by NUL (which no part contains).
func identityHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hashEncoding.EncodeToString(sum[:16])
}

// slug is s in lower case with every run of other characters as one "-",
// at most n characters, never empty.
func slug(s string, n int) string {
	out := strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(out) > n {
		out = strings.TrimRight(out[:n], "-")
	}
	if out == "" {
		return "x"
	}
	return out
}

// ResourceName is the LabResource name for a resource id: the id itself
// when it is a DNS label (as "25f377ac" is); else a slug of it, a dot and
// its hash ("web-app.<26 characters>" for "Web App").
func ResourceName(id string) string {
	if len(validation.IsDNS1123Label(id)) == 0 {
		return id
	}
	return slug(id, 30) + "." + identityHash("resource", id)
}

// InterfaceName is the LabInterface name for the interface called name on
// the resource resourceID: a slug of "<resource name>-<name>", a dot and
// the hash of the resource id and the name, as in
// "25f377ac-server-web-application.<26 characters>". It is at most 63
// characters, so it is also a label value.
func InterfaceName(resourceID, name string) string {
	prefix := slug(ResourceName(resourceID)+"-"+name, validation.DNS1123LabelMaxLength-1-hashLength)
	return prefix + "." + identityHash("interface", resourceID, name)
}

// CredentialSecretName is the Secret holding an interface's credentials.
func CredentialSecretName(interfaceName string) string {
	return interfaceName + "-credentials"
}
