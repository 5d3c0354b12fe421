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

// Package tolerantwatch keeps one object that the manager cannot decode
// from stopping an informer for every other object of its kind.
//
// A typed informer decodes a whole list page, or a watch event, into Go
// types. One object whose stored JSON the Go types refuse (a time Go cannot
// parse, written while an older CRD version was installed, for example)
// fails the whole list; the informer retries forever and nothing of that
// kind is reconciled for any organisation. The CRDs refuse such objects at
// admission now, but objects stored earlier stay in etcd.
//
// Transport wraps the HTTP transport of the manager's cache. For list and
// watch responses of the configured API groups, it tries to decode every
// object into its Go type and treats one that does not decode as absent:
// dropped from lists, an added one dropped from watches, a modified one
// turned into a deletion (so the informer forgets the last good copy), each
// logged once and counted in labhook_undecodable_objects_total. The object
// is reconciled again once someone fixes or replaces it.
package tolerantwatch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// undecodable counts objects treated as absent, by kind.
var undecodable = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "labhook_undecodable_objects_total",
	Help: "Objects the manager's informers skipped because their stored JSON does not decode into labhook's Go types.",
}, []string{"kind"})

func init() { metrics.Registry.MustRegister(undecodable) }

// Filter decides which objects decode. Build it with New.
type Filter struct {
	scheme  *runtime.Scheme
	decoder runtime.Decoder
	groups  map[string]bool
	log     logr.Logger

	mu     sync.Mutex
	logged map[string]bool // uid/resourceVersion already reported
}

// New returns a Filter for objects of the given API groups (for example
// labhook.io), decoded with scheme.
func New(scheme *runtime.Scheme, groups ...string) *Filter {
	f := &Filter{
		scheme:  scheme,
		decoder: serializer.NewCodecFactory(scheme).UniversalDeserializer(),
		groups:  map[string]bool{},
		log:     ctrl.Log.WithName("tolerantwatch"),
		logged:  map[string]bool{},
	}
	for _, g := range groups {
		f.groups[g] = true
	}
	return f
}

// Transport is a rest.Config WrapTransport: set it on the configuration
// the cache's HTTP client is built from.
func (f *Filter) Transport(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{f: f, rt: rt}
}

type roundTripper struct {
	f  *Filter
	rt http.RoundTripper
}

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !t.f.applies(req) {
		return resp, err
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, nil
	}
	if w := req.URL.Query().Get("watch"); w == "true" || w == "1" {
		resp.Body = &watchBody{f: t.f, body: resp.Body, dec: json.NewDecoder(bufio.NewReader(resp.Body))}
		resp.ContentLength = -1
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = t.f.filterList(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// applies says whether req lists or watches a typed resource of one of the
// groups. Metadata-only requests (Accept ...;as=PartialObjectMetadata...)
// decode anything and are left alone.
func (f *Filter) applies(req *http.Request) bool {
	if strings.Contains(req.Header.Get("Accept"), "as=") {
		return false
	}
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
	return len(parts) >= 4 && parts[0] == "apis" && f.groups[parts[1]]
}

// head is the part of an object the filter reads to name and decode it.
type head struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string `json:"name"`
		Namespace       string `json:"namespace"`
		UID             string `json:"uid"`
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
}

// check returns the error decoding raw as kind gvk gives, or nil when it
// decodes, or when it is not a kind the scheme knows (not ours to judge).
func (f *Filter) check(raw []byte, gvk schema.GroupVersionKind) error {
	if !f.scheme.Recognizes(gvk) {
		return nil
	}
	into, err := f.scheme.New(gvk)
	if err != nil {
		return nil
	}
	_, _, err = f.decoder.Decode(raw, &gvk, into)
	return err
}

// report logs and counts an object treated as absent, once per version.
func (f *Filter) report(h head, gvk schema.GroupVersionKind, err error) {
	undecodable.WithLabelValues(gvk.Kind).Inc()
	key := h.Metadata.UID + "/" + h.Metadata.ResourceVersion
	f.mu.Lock()
	seen := f.logged[key]
	if !seen {
		if len(f.logged) >= 4096 {
			f.logged = map[string]bool{} // bounded; at worst an object is logged again
		}
		f.logged[key] = true
	}
	f.mu.Unlock()
	if !seen {
		f.log.Error(err, "ignoring an object labhook cannot decode until it is fixed or replaced; other objects are not affected",
			"kind", gvk.Kind, "namespace", h.Metadata.Namespace, "name", h.Metadata.Name,
			"resourceVersion", h.Metadata.ResourceVersion)
	}
}

// filterList drops the items of a list response that do not decode. It
// returns body unchanged when every item decodes (or body is no list).
func (f *Filter) filterList(body []byte) []byte {
	var list map[string]json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return body
	}
	var lh head
	var items []json.RawMessage
	if json.Unmarshal(body, &lh) != nil || !strings.HasSuffix(lh.Kind, "List") || json.Unmarshal(list["items"], &items) != nil {
		return body
	}
	gvk := schema.FromAPIVersionAndKind(lh.APIVersion, strings.TrimSuffix(lh.Kind, "List"))
	kept := items[:0:0]
	for _, item := range items {
		if err := f.check(item, gvk); err != nil {
			var h head
			_ = json.Unmarshal(item, &h)
			f.report(h, gvk, err)
			continue
		}
		kept = append(kept, item)
	}
	if len(kept) == len(items) {
		return body
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return body
	}
	list["items"] = b
	out, err := json.Marshal(list)
	if err != nil {
		return body
	}
	return out
}

// watchBody filters a watch stream event by event.
type watchBody struct {
	f    *Filter
	body io.ReadCloser
	dec  *json.Decoder
	buf  bytes.Buffer
	err  error
}

// event is one watch event.
type event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

func (w *watchBody) Read(p []byte) (int, error) {
	for w.buf.Len() == 0 {
		if w.err != nil {
			return 0, w.err
		}
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				w.err = io.EOF
			} else {
				w.err = err
			}
			continue
		}
		w.buf.Write(w.f.filterEvent(raw))
	}
	return w.buf.Read(p)
}

func (w *watchBody) Close() error { return w.body.Close() }

// filterEvent returns the event to pass on (raw itself, usually), a
// deletion carrying only the object's identity when a modified object does
// not decode, or nothing when an added one does not.
func (f *Filter) filterEvent(raw json.RawMessage) []byte {
	var ev event
	var h head
	if json.Unmarshal(raw, &ev) != nil || json.Unmarshal(ev.Object, &h) != nil {
		return append(raw, '\n')
	}
	if ev.Type != "ADDED" && ev.Type != "MODIFIED" && ev.Type != "DELETED" {
		return append(raw, '\n') // BOOKMARK, ERROR
	}
	gvk := schema.FromAPIVersionAndKind(h.APIVersion, h.Kind)
	err := f.check(ev.Object, gvk)
	if err == nil {
		return append(raw, '\n')
	}
	f.report(h, gvk, err)
	if ev.Type == "ADDED" {
		return nil
	}
	// The object decoded before (or never reached the informer): make the
	// informer forget it, with an object that is nothing but its identity.
	var m struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	_ = json.Unmarshal(ev.Object, &m)
	obj, _ := json.Marshal(map[string]any{"apiVersion": h.APIVersion, "kind": h.Kind, "metadata": m.Metadata})
	out, _ := json.Marshal(event{Type: "DELETED", Object: obj})
	return append(out, '\n')
}
