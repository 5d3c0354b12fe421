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

package sharding

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Transport is a rest.Config WrapTransport for the cache's HTTP client. It
// drops the items of JSON list responses, and the events of JSON watch
// responses, whose namespace o does not serve, before anything decodes
// them: every manager watches every organisation's objects, and decoding
// another shard's object into Go types costs far more than reading its
// namespace. Wrap it inside any other filter of the responses, so they see
// only what is left. Other encodings pass unchanged; the informers check
// them after decoding.
func (o *Organisations) Transport(rt http.RoundTripper) http.RoundTripper {
	return &scopedTransport{orgs: o, rt: rt}
}

type scopedTransport struct {
	orgs *Organisations
	rt   http.RoundTripper
}

func (t *scopedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, err
	}
	if w := req.URL.Query().Get("watch"); w == "true" || w == "1" {
		resp.Body = &scopedWatchBody{orgs: t.orgs, body: resp.Body, dec: json.NewDecoder(bufio.NewReader(resp.Body))}
		resp.ContentLength = -1
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = t.orgs.filterListJSON(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// namespaced is the part of an object the filter reads.
type namespaced struct {
	Metadata struct {
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// filterListJSON drops the items of a list whose namespace is not served.
// It returns body unchanged when it keeps every item, or is no list. It
// decodes only each item's namespace and splices the kept items' bytes, so
// a list of thousands of objects is never copied item by item, and not at
// all when nothing is dropped.
func (o *Organisations) filterListJSON(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return body
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return body
		}
		if key != "items" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return body
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return body
		}
		open := dec.InputOffset() // just after '['
		var kept [][]byte
		dropped := false
		for dec.More() {
			from := dec.InputOffset()
			var n namespaced
			if dec.Decode(&n) != nil {
				return body
			}
			if n.Metadata.Namespace != "" && !o.keep(n.Metadata.Namespace) {
				dropped = true
				continue
			}
			// From the end of the previous item: a comma and white space.
			item := bytes.TrimLeft(body[from:dec.InputOffset()], ", \t\r\n")
			kept = append(kept, item)
		}
		if t, err := dec.Token(); err != nil || t != json.Delim(']') {
			return body
		}
		if !dropped {
			return body
		}
		closing := dec.InputOffset() - 1 // the ']'
		out := make([]byte, 0, len(body))
		out = append(out, body[:open]...)
		out = append(out, bytes.Join(kept, []byte(","))...)
		return append(out, body[closing:]...)
	}
	return body
}

// scopedWatchBody passes on the watch events of served namespaces.
type scopedWatchBody struct {
	orgs *Organisations
	body io.ReadCloser
	dec  *json.Decoder
	buf  bytes.Buffer
	err  error
}

// watchEvent is the part of a watch event the filter reads.
type watchEvent struct {
	Type   string     `json:"type"`
	Object namespaced `json:"object"`
}

func (w *scopedWatchBody) Read(p []byte) (int, error) {
	for w.buf.Len() == 0 {
		if w.err != nil {
			return 0, w.err
		}
		var raw json.RawMessage
		if err := w.dec.Decode(&raw); err != nil {
			w.err = err
			if errors.Is(err, io.EOF) {
				w.err = io.EOF
			}
			continue
		}
		var ev watchEvent
		if json.Unmarshal(raw, &ev) == nil && (ev.Type == "ADDED" || ev.Type == "MODIFIED" || ev.Type == "DELETED") &&
			ev.Object.Metadata.Namespace != "" && !w.orgs.keep(ev.Object.Metadata.Namespace) {
			continue
		}
		w.buf.Write(raw)
		w.buf.WriteByte('\n')
	}
	return w.buf.Read(p)
}

func (w *scopedWatchBody) Close() error { return w.body.Close() }
