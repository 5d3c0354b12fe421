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

package wirefield_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/wirefield"
)

// api/wire has its own small equivalents of apimachinery's checks and
// errors (it is a module customers vendor, without Kubernetes imports).
// These tests hold them to apimachinery's answers on tables of inputs.

const header = `"source_message_id":"x","type":"RESOURCE","action":"CREATED","timestamp":"2020-10-05T08:39:09Z"`

func parse(t *testing.T, data string) wire.FieldErrors {
	t.Helper()
	_, errs, err := wire.ParseIncoming([]byte(`{`+header+`,"data":`+data+`}`), wire.ParseOptions{Regions: []string{"us-east-1"}})
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return errs
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// problemsAt are the details of the problems reported at field.
func problemsAt(errs wire.FieldErrors, field string) []string {
	var out []string
	for _, e := range errs {
		if e.Field == field {
			out = append(out, e.Detail)
		}
	}
	return out
}

func TestHostNamesAsApimachinery(t *testing.T) {
	long := strings.Repeat("abcdefghi.", 25)
	for _, dns := range []string{
		"labs.example.com", "5108e970-labs.mycompany.com", "a", "0.1", "Labs.Example.COM", "xn--bcher-kva.example",
		"-a", "a-", "a..b", ".a", "a.", "a_b.com", "a b", "a/b", "*.example.com", "é.example.com",
		long + "abc", long + "abcd", strings.Repeat("a", 64) + ".com",
	} {
		errs := parse(t, `{"resources":[{"id":"r","type":"VM","status":"READY","config":{"network_interface":{"dns":`+quote(dns)+`}}}]}`)
		got := problemsAt(errs, "data.resources[0].config.network_interface.dns")
		invalid := false
		for _, d := range got {
			invalid = invalid || d == "must be a host name such as labs.example.com"
		}
		if want := len(validation.IsDNS1123Subdomain(strings.ToLower(dns))) > 0; invalid != want {
			t.Errorf("dns %q: refused = %v, apimachinery refuses = %v (%v)", dns, invalid, want, errs)
		}
	}
}

func TestSecretKeysAsApimachinery(t *testing.T) {
	for _, k := range []string{
		"key", "KEY_NAME", "key.name", "key-name", ".key", "a..b", "a b", ".", "..", "..key", "key/x", "clé", "tab\tkey",
		strings.Repeat("k", 253),
	} {
		errs := parse(t, `{"interfaces":[{"name":"n","type":"TERMINAL","region":"us-east-1","resource_id":"r","config":{"authentication":{"type":"keypair","data":{"key":"k",`+quote(k)+`:"v"}}}}]}`)
		var want []string
		if msgs := validation.IsConfigMapKey(k); len(msgs) > 0 {
			want = []string{"must be a Secret key: " + strings.Join(msgs, "; ")}
		}
		got := problemsAt(errs, "data.interfaces[0].config.authentication.data."+k)
		if k == "key" {
			got, want = nil, nil
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("key %q: wire says %q, apimachinery %q", k, got, want)
		}
	}
}

// TestErrorsReadAsApimachinery: every kind of problem reads the same from
// wire as from apimachinery's field.Error built from it.
func TestErrorsReadAsApimachinery(t *testing.T) {
	bodies := []string{
		`{}`,
		`{"resources":[{"id":"a","type":"VMX","status":"READY","config":{"network_interface":{"public_ip":"x"},"network_interfaces":[]}},{"id":"a","type":"URL","status":"READY"}]}`,
		`{"resources":[{"id":` + quote(strings.Repeat("i", 300)) + `,"type":"VM","status":"READY","":1}],"interfaces":[{"name":"n","type":"WEB_PAGE","region":"eu-west-1","resource_id":"r","config":{"port":70000,"authentication":{"type":"keypair","data":{}}}}]}`,
		`{"resources":[` + strings.Repeat(`{"id":"x"},`, 100) + `{"id":"y"}]}`,
		`{"resources":[1,null,[]],"interfaces":{}}`,
	}
	kinds := map[wire.ErrorType]bool{}
	for _, b := range bodies {
		errs := parse(t, b)
		list := wirefield.ErrorList(errs)
		if len(list) != len(errs) {
			t.Fatalf("%d errors became %d", len(errs), len(list))
		}
		for i, e := range errs {
			kinds[e.Type] = true
			if e.Error() != list[i].Error() || e.ErrorBody() != list[i].ErrorBody() || e.Type.String() != list[i].Type.String() {
				t.Errorf("wire:         %s\napimachinery: %s", e.Error(), list[i].Error())
			}
		}
	}
	for _, k := range []wire.ErrorType{wire.ErrorTypeRequired, wire.ErrorTypeDuplicate, wire.ErrorTypeInvalid, wire.ErrorTypeNotSupported,
		wire.ErrorTypeForbidden, wire.ErrorTypeTooLong, wire.ErrorTypeTooMany} {
		if !kinds[k] {
			t.Errorf("no body of the table gives a %s problem", k)
		}
	}
	if wirefield.ErrorList(nil) != nil {
		t.Error("no problem is not an empty list")
	}
}

// TestSeedExampleCopy: api/wire's tests read their own copy of the seed
// example (a module reads no file outside itself); it is the sample's.
func TestSeedExampleCopy(t *testing.T) {
	sample, err := os.ReadFile("../../config/samples/incoming/seed-example.json")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile("../../api/wire/testdata/seed-example.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sample, cp) {
		t.Error("api/wire/testdata/seed-example.json differs from config/samples/incoming/seed-example.json: copy it again")
	}
}
