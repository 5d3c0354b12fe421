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

package wire_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/labhook/labhook/api/wire"
)

func seedExample(t testing.TB) []byte {
	b, err := os.ReadFile("../../config/samples/incoming/seed-example.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIncomingSeedExample(t *testing.T) {
	m, errs, err := wire.ParseIncoming(seedExample(t), wire.ParseOptions{})
	if err != nil || len(errs) > 0 {
		t.Fatalf("seed example refused: %v %v", err, errs)
	}
	if m.SourceMessageID != "dfede374" || m.Action != wire.ActionCreated || m.Time.Unix() != 1601887149 {
		t.Fatalf("header fields: %+v", m)
	}
	if len(m.Resources) != 4 || len(m.Interfaces) != 5 {
		t.Fatalf("got %d resources and %d interfaces, want 4 and 5", len(m.Resources), len(m.Interfaces))
	}
	server := m.Resources[0]
	if n := server.Config.NetworkInterfaces; len(n) != 1 || n[0].DNS != "5108e970-labs.mycompany.com" || n[0].PublicIP != "32.17.144.2" {
		t.Fatalf("network_interface of the server: %+v", n)
	}
	if a := m.Resources[3].Config.Address; a != "https://my.webpage.com:3131" {
		t.Fatalf("address: %q", a)
	}
	client := m.Interfaces[3]
	if client.Config.Port == nil || *client.Config.Port != 3389 {
		t.Fatalf("port \"3389\" was not normalised to 3389: %+v", client.Config)
	}
	if a := client.Config.Authentication; a.Type != "generated_username_password" || a.Data["password"] != "PLACEHOLDER-NOT-A-REAL-PASSWORD" {
		t.Fatalf("authentication: type %q", a.Type)
	}
	if s := fmt.Sprintf("%v %+v %#v", client, client, client.Config.Authentication.Data); strings.Contains(s, "PLACEHOLDER") {
		t.Fatalf("credentials print: %s", s)
	}
}

func TestParseIncomingReportsEveryProblem(t *testing.T) {
	body := `{"source_message_id":"x","type":"RESOURCE","action":"CREATED","timestamp":"yesterday","extra":1,
	  "data":{"resources":[{"id":"a","type":"VMX","status":"READY","config":{"flavour":"large","address":"https://x"}},
	                       {"id":"a","type":"URL","status":"NOPE"}],
	          "interfaces":[{"name":"T","type":"TERMINAL","region":"Mars","resource_id":"a","config":{"port":70000,"authentication":{"type":"keypair","data":{"key":""}}}}]}}`
	_, errs, err := wire.ParseIncoming([]byte(body), wire.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"extra", "timestamp", "data.resources[0].type", "data.resources[1].id", "data.resources[1].status",
		"data.resources[1].config.address", "data.interfaces[0].region", "data.interfaces[0].config.port",
		"data.interfaces[0].config.authentication.data.key",
	}
	got := map[string]bool{}
	for _, e := range errs {
		got[e.Field] = true
	}
	for _, f := range want {
		if !got[f] {
			t.Errorf("no error names %s; got %v", f, errs)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	if strings.Contains(errs.ToAggregate().Error(), "large") {
		t.Errorf("an unknown config key is kept in extra, not refused: %v", errs)
	}
}

func TestParseIncomingMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `[]`, `"x"`, `{} {}`, `{source_message_id: "x"}`} {
		if _, _, err := wire.ParseIncoming([]byte(body), wire.ParseOptions{}); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%q: err = %v, want ErrMalformed", body, err)
		}
	}
}

// FuzzParseIncoming: decoding and validation never panic, and what they
// accept has every required field.
func FuzzParseIncoming(f *testing.F) {
	f.Add(seedExample(f))
	f.Add([]byte(`{"source_message_id":"x","type":"RESOURCE","action":"DELETED","timestamp":"2020-10-05T08:39:09Z","data":{"interfaces":[{"resource_id":"a","name":"b"}]}}`))
	f.Add([]byte(`{"data":{"resources":[{"config":{"network_interface":[{"public_ip":1}]}}],"interfaces":[{"config":{"port":"0x10"}}]}}`))
	f.Add([]byte(`{"data":{"resources":[null,1,"x"],"interfaces":{}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, errs, err := wire.ParseIncoming(body, wire.ParseOptions{Regions: []string{"us-east-1"}})
		if err != nil || len(errs) > 0 {
			if m != nil {
				t.Fatal("a message came back with errors")
			}
			for _, e := range errs {
				if e.Field == "<nil>" || e.ErrorBody() == "" {
					t.Fatalf("error without a field or a message: %#v", e)
				}
			}
			return
		}
		if m.SourceMessageID == "" || m.Type == "" || m.Action == "" || m.Time.IsZero() {
			t.Fatalf("accepted without a required field: %+v", m)
		}
		if len(m.Resources)+len(m.Interfaces) == 0 {
			t.Fatal("accepted an empty message")
		}
		for _, r := range m.Resources {
			if r.ID == "" || (m.Action != wire.ActionDeleted && (r.Type == "" || r.Status == "")) {
				t.Fatalf("accepted a resource without identity: %+v", r)
			}
		}
		for _, i := range m.Interfaces {
			if i.Name == "" || i.ResourceID == "" {
				t.Fatalf("accepted an interface without identity: %+v", i)
			}
			if i.Config != nil && i.Config.Port != nil && (*i.Config.Port < 1 || *i.Config.Port > 65535) {
				t.Fatalf("accepted port %d", *i.Config.Port)
			}
		}
	})
}
