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

package wire

import "testing"

// The cases below are what k8s.io/apimachinery's validation answers for
// the same inputs (internal/wirefield compares the two on a larger table
// from labhook's own module, where apimachinery may be imported).

func TestFieldPath(t *testing.T) {
	var root fieldPath
	for got, want := range map[fieldPath]string{
		root.Child("data"): "data",
		root.Child("data").Child("resources").Index(1):               "data.resources[1]",
		root.Child("data").Child("resources").Index(1).Child("type"): "data.resources[1].type",
		root.Child(""):               "[]",
		root.Child("data").Child(""): "data[]",
		root.Child("a.b"):            "a.b",
	} {
		if got.String() != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}
}

func TestIsDNSSubdomain(t *testing.T) {
	long := ""
	for len(long) < 250 {
		long += "abcdefghi."
	}
	for s, want := range map[string]bool{
		"labs.example.com": true, "a": true, "5108e970-labs.mycompany.com": true, "0.1": true,
		"": false, "-a": false, "a-": false, "a..b": false, ".a": false, "a_b.com": false, "Labs.example.com": false,
		"a b": false, long + "abc": true, long + "abcd": false,
	} {
		if got := isDNSSubdomain(s); got != want {
			t.Errorf("isDNSSubdomain(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSecretKeyProblems(t *testing.T) {
	format := "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
	long := make([]byte, 254)
	for i := range long {
		long[i] = 'k'
	}
	for k, want := range map[string][]string{
		"key": nil, "KEY_NAME": nil, "key.name": nil, "a..b": nil, ".key": nil,
		"":           {format},
		"a b":        {format},
		".":          {`must not be '.'`},
		"..":         {`must not be '..'`},
		"..key":      {`must not start with '..'`},
		string(long): {"must be no more than 253 characters"},
	} {
		got := secretKeyProblems(k)
		if len(got) != len(want) {
			t.Errorf("secretKeyProblems(%q) = %q, want %q", k, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("secretKeyProblems(%q) = %q, want %q", k, got, want)
			}
		}
	}
}

func TestFieldErrorBody(t *testing.T) {
	p := fieldPath("data").Child("x")
	for _, c := range []struct {
		err  *FieldError
		want string
	}{
		{requiredError(p, ""), "data.x: Required value"},
		{requiredError(p, "the credentials"), "data.x: Required value: the credentials"},
		{forbiddenError(p, "no"), "data.x: Forbidden: no"},
		{invalidError(p, "v", "bad"), `data.x: Invalid value: "v": bad`},
		{invalidError(p, int64(70000), inclusiveRange(1, 65535)), "data.x: Invalid value: 70000: must be between 1 and 65535, inclusive"},
		{invalidError(p, nil, "bad"), "data.x: Invalid value: null: bad"},
		{duplicateError(p, "a"), `data.x: Duplicate value: "a"`},
		{notSupportedError(p, "Z", []string{"VM", "URL"}), `data.x: Unsupported value: "Z": supported values: "VM", "URL"`},
		{tooLongError(p, 253), "data.x: Too long: may not be more than 253 bytes"},
		{tooLongError(p, 1), "data.x: Too long: may not be more than 1 byte"},
		{tooManyError(p, 101, 100), "data.x: Too many: 101: must have at most 100 items"},
		{tooManyError(p, 2, 1), "data.x: Too many: 2: must have at most 1 item"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
