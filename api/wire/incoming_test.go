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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

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
	f.Add([]byte(`{"source_message_id":"x","type":"RESOURCE","action":"CREATED","timestamp":"2020-10-05T08:39:09Z","data":{"resources":[{"id":"a","type":"VM","status":"READY","config":{"k":{"a":[1,{"b":"\u0041"}]},"l":"0123456789"}}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		opts := wire.ParseOptions{Regions: []string{"us-east-1"}}
		m, errs, err := wire.ParseIncoming(body, opts)
		// Streaming: the same body read a byte at a time decodes alike.
		sm, serrs, serr := wire.DecodeIncoming(iotest.OneByteReader(bytes.NewReader(body)), opts)
		// (The text of a syntax error may depend on where reads end.)
		if !reflect.DeepEqual(m, sm) || fmt.Sprint(errs) != fmt.Sprint(serrs) || errors.Is(err, wire.ErrMalformed) != errors.Is(serr, wire.ErrMalformed) || (err == nil) != (serr == nil) {
			t.Fatalf("read whole: %v %v %v\nread a byte at a time: %v %v %v", m, errs, err, sm, serrs, serr)
		}
		// A small config.extra budget refuses, never keeps, what is over it.
		if small, _, _ := wire.ParseIncoming(body, wire.ParseOptions{Regions: opts.Regions, MaxConfigExtraBytes: 16}); small != nil {
			for _, r := range small.Resources {
				if r.Config != nil && len(r.Config.Extra) > 0 {
					if b, _ := json.Marshal(r.Config.Extra); len(b) > 6*16 {
						t.Fatalf("kept %d bytes of config.extra with a budget of 16: %s", len(b), b)
					}
				}
			}
		}
		if len(errs) > wire.MaxProblems+1 {
			t.Fatalf("%d problems reported", len(errs))
		}
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

// endless is a body of prefix, then items (fmt.Sprintf(item, i) for i = 0,
// 1, ...) until it has n bytes, then suffix, produced as it is read: it is
// never whole in memory.
type endless struct {
	prefix, item, suffix string
	n                    int
	i                    int
	pending              []byte
	state                int // 0 prefix, 1 items, 2 suffix, 3 done
	sent                 int
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.pending) == 0 {
			switch e.state {
			case 0:
				e.pending, e.state = []byte(e.prefix), 1
			case 1:
				if e.sent >= e.n {
					e.state = 2
					continue
				}
				e.pending = []byte(e.item)
				if strings.Contains(e.item, "%d") {
					e.pending = fmt.Appendf(nil, e.item, e.i)
				}
				e.i++
			case 2:
				e.pending, e.state = []byte(e.suffix), 3
			default:
				if n == 0 {
					return 0, io.EOF
				}
				return n, nil
			}
		}
		c := copy(p[n:], e.pending)
		e.pending = e.pending[c:]
		n += c
		e.sent += c
	}
	return n, nil
}

// peakHeap runs f and returns how far the live heap grew above where it
// started, sampled every millisecond.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
		}
	}()
	f()
	close(done)
	return peak.Load()
}

func TestDecodeIncomingBoundsMemoryWhileStreaming(t *testing.T) {
	// Lists and objects stream: a body far over any --max-body-bytes keeps
	// the heap flat. One string is one token, as large as the body allows:
	// a 1 MiB body (the default --max-body-bytes) holds it a few times.
	const head = `{"source_message_id":"x","type":"RESOURCE","action":"CREATED","timestamp":"2020-10-05T08:39:09Z","data":`
	for _, c := range []struct {
		name, prefix, item, suffix, field string
		size                              int
		bound                             uint64
		problems                          int
	}{
		{"a list of zeros", head + `{"resources":[0`, `,0`, `]}}`, "data.resources", 32 << 20, 12 << 20, 1},
		{"unknown fields", head + `{"resources":[{"id":"a"`, `,"k%d":[1,2,{"x":"y"}]`, `}]}}`, "data.resources[0].k0", 32 << 20, 12 << 20, wire.MaxProblems + 1},
		{"a large config.extra", head + `{"resources":[{"id":"a","type":"VM","status":"READY","config":{"blob":[0`, `,0`, `]}}]}}`, "data.resources[0].config", 32 << 20, 12 << 20, 1},
		{"many config keys", head + `{"resources":[{"id":"a","type":"VM","status":"READY","config":{"k":0`, `,"k%d":0`, `}}]}}`, "data.resources[0].config", 32 << 20, 12 << 20, 1},
		{"a list in a plain field", head + `{"resources":[{"id":[0`, `,0`, `],"type":"VM","status":"READY"}]}}`, "data.resources[0].id", 32 << 20, 12 << 20, 1},
		{"a long name", head + `{"resources":[{"id":"a","type":"VM","status":"READY","name":"`, `xxxxxxxx`, `"}]}}`, "data.resources[0].name", 1 << 20, 8 << 20, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := &endless{prefix: c.prefix, item: c.item, suffix: c.suffix, n: c.size}
			var errs field.ErrorList
			var err error
			peak := peakHeap(func() { _, errs, err = wire.DecodeIncoming(body, wire.ParseOptions{}) })
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range errs {
				found = found || e.Field == c.field
			}
			if !found {
				t.Errorf("no problem names %s: %v", c.field, errs)
			}
			if len(errs) != c.problems {
				t.Errorf("%d problems reported, want %d: %v", len(errs), c.problems, errs)
			}
			t.Logf("%d MiB body (%d bytes read): heap grew by at most %.1f MiB; %d problems", c.size>>20, body.sent, float64(peak)/(1<<20), len(errs))
			if peak > c.bound {
				t.Errorf("decoding a %d MiB body grew the heap by %d MiB, over %d MiB; it must stay bounded by the limits", c.size>>20, peak>>20, c.bound>>20)
			}
		})
	}
}

func TestDecodeIncomingLimits(t *testing.T) {
	msg := func(data string) string {
		return `{"source_message_id":"x","type":"RESOURCE","action":"CREATED","timestamp":"2020-10-05T08:39:09Z","data":` + data + `}`
	}
	deep := strings.Repeat(`{"a":`, wire.MaxDepth+2) + `1` + strings.Repeat(`}`, wire.MaxDepth+2)
	for _, c := range []struct {
		name, body, field, detail string
		opts                      wire.ParseOptions
	}{
		{name: "101 resources", body: msg(`{"resources":[` + strings.TrimSuffix(strings.Repeat(`{"id":"a"},`, 101), ",") + `]}`), field: "data.resources", detail: "101"},
		{name: "a string over the limit", body: msg(`{"resources":[{"id":"` + strings.Repeat("a", wire.MaxStringLength+1) + `","type":"VM","status":"READY"}]}`), field: "data.resources[0].id"},
		{name: "config.extra over the default budget", body: msg(`{"resources":[{"id":"a","type":"VM","status":"READY","config":{"blob":"` + strings.Repeat("b", wire.DefaultMaxConfigExtraBytes) + `"}}]}`), field: "data.resources[0].config", detail: "config.extra"},
		{name: "config.extra over a set budget", body: msg(`{"interfaces":[{"name":"n","type":"WEB_PAGE","region":"us-east-1","resource_id":"a","config":{"a":"0123456789","b":"0123456789"}}]}`), field: "data.interfaces[0].config", detail: "20 bytes", opts: wire.ParseOptions{MaxConfigExtraBytes: 20}},
		{name: "config.extra nested too deep", body: msg(`{"resources":[{"id":"a","type":"VM","status":"READY","config":{"n":` + deep + `}}]}`), field: "data.resources[0].config.n", detail: "nested"},
		{name: "too many credential keys", body: msg(`{"interfaces":[{"name":"n","type":"TERMINAL","region":"us-east-1","resource_id":"a","config":{"authentication":{"type":"keypair","data":{` + credentialKeys(wire.MaxCredentialKeys+1) + `}}}}]}`), field: "data.interfaces[0].config.authentication.data"},
		{name: "an unknown field with a huge name", body: msg(`{"resources":[{"id":"a","` + strings.Repeat("k", 10000) + `":1}]}`), field: "data.resources[0]." + strings.Repeat("k", 64) + "..."},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs, err := wire.ParseIncoming([]byte(c.body), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range errs {
				if e.Field == c.field && strings.Contains(e.Error(), c.detail) {
					if len(e.Error()) > 1000 {
						t.Errorf("an error of %d bytes: %.200s", len(e.Error()), e.Error())
					}
					return
				}
			}
			t.Errorf("no problem names %s (%q): %v", c.field, c.detail, errs)
		})
	}
}

func TestParseIncomingReportsAtMostMaxProblems(t *testing.T) {
	body := `{"source_message_id":"x","type":"RESOURCE","action":"CREATED","timestamp":"2020-10-05T08:39:09Z","data":{"resources":[` +
		strings.TrimSuffix(strings.Repeat(`{"id":"a","type":"VMX","status":"NOPE"},`, 100), ",") + `]}}`
	_, errs, err := wire.ParseIncoming([]byte(body), wire.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != wire.MaxProblems+1 || !strings.Contains(errs[wire.MaxProblems].Error(), "more than") {
		t.Fatalf("got %d problems, want %d and a last one saying there are more: %v", len(errs), wire.MaxProblems+1, errs[len(errs)-1])
	}
}

func TestDecodeIncomingReadErrorIsNotMalformed(t *testing.T) {
	boom := errors.New("connection reset")
	_, _, err := wire.DecodeIncoming(io.MultiReader(strings.NewReader(`{"source_message_id":`), iotest.ErrReader(boom)), wire.ParseOptions{})
	if !errors.Is(err, boom) || errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("err = %v, want the read error, not ErrMalformed", err)
	}
}

func credentialKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	return b.String()
}

func TestParseIncomingRefusesDuplicateFields(t *testing.T) {
	body := `{"source_message_id":"x","source_message_id":"y","type":"RESOURCE","action":"DELETED","timestamp":"2020-10-05T08:39:09Z","data":{"resources":[{"id":"a","id":"b"}]}}`
	_, errs, err := wire.ParseIncoming([]byte(body), wire.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range errs {
		got[e.Field] = e.Type == field.ErrorTypeDuplicate
	}
	if !got["source_message_id"] || !got["data.resources[0].id"] || len(errs) != 2 {
		t.Fatalf("want duplicates at source_message_id and data.resources[0].id: %v", errs)
	}
}
