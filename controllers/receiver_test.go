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

package controllers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labhook/labhook/api/wire"
)

// delivery is one POST a receiver got.
type delivery struct {
	at     time.Time
	msg    wire.OutgoingMessage // the body decoded; zero when it is not a message
	body   []byte
	header http.Header
}

// receiver is the one fake customer backend of the controller tests: a real
// HTTP server on 127.0.0.1. It records every request; test messages of the
// WebhookConfig controller are answered with status, other messages by
// respond (from the message and how often its id was seen before, 0 the
// first time) or, without respond, with status too. hold makes requests
// wait, so a test can look at the cluster while one is in flight.
type receiver struct {
	*httptest.Server
	status atomic.Int32

	mu      sync.Mutex
	all     []delivery     // every request, test messages included
	seen    map[string]int // arrivals per message id, test messages not counted
	respond func(m wire.OutgoingMessage, seen int, w http.ResponseWriter)
	gate    chan struct{} // non-nil: requests wait until it is closed
}

// newReceiver answers everything 204 No Content until told otherwise.
func newReceiver() *receiver {
	return newHookReceiver(http.StatusNoContent)
}

// newHookReceiver answers everything with status until told otherwise.
func newHookReceiver(status int) *receiver {
	rc := &receiver{seen: map[string]int{}}
	rc.status.Store(int32(status))
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m wire.OutgoingMessage
		_ = json.Unmarshal(body, &m)
		isTest := m.Type == wire.TypeWebhookConfig
		rc.mu.Lock()
		n := rc.seen[m.MessageID]
		if !isTest {
			rc.seen[m.MessageID]++
		}
		respond, gate := rc.respond, rc.gate
		rc.all = append(rc.all, delivery{at: time.Now(), msg: m, body: body, header: r.Header.Clone()})
		rc.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
			}
		}
		if respond != nil && !isTest {
			respond(m, n, w)
			return
		}
		w.WriteHeader(int(rc.status.Load()))
	}))
	DeferCleanup(rc.Close)
	return rc
}

// setRespond makes f answer every message but the tests; nil: status does.
func (rc *receiver) setRespond(f func(m wire.OutgoingMessage, seen int, w http.ResponseWriter)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.respond = f
}

// hold makes requests wait until the returned release is called (at the
// end of the test at the latest).
func (rc *receiver) hold() (release func()) {
	gate := make(chan struct{})
	rc.mu.Lock()
	rc.gate = gate
	rc.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			rc.mu.Lock()
			rc.gate = nil
			rc.mu.Unlock()
			close(gate)
		})
	}
	DeferCleanup(release)
	return release
}

// deliveries are the requests that were not test messages.
func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []delivery
	for _, d := range rc.all {
		if d.msg.Type != wire.TypeWebhookConfig {
			out = append(out, d)
		}
	}
	return out
}

func (rc *receiver) ids() []string {
	var out []string
	for _, d := range rc.deliveries() {
		out = append(out, d.msg.MessageID)
	}
	return out
}

// distinctIDs are the message ids that arrived, each once, in order of
// first arrival: delivery is at least once, so a count of arrivals is not
// a count of messages.
func (rc *receiver) distinctIDs() []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range rc.ids() {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// count is the number of requests, test messages included.
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.all)
}

// last is the last request.
func (rc *receiver) last() delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	Expect(rc.all).NotTo(BeEmpty())
	return rc.all[len(rc.all)-1]
}

// byID returns the last request with webhook-id id, or false.
func (rc *receiver) byID(id string) (delivery, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.all) - 1; i >= 0; i-- {
		if rc.all[i].header.Get(wire.HeaderWebhookID) == id {
			return rc.all[i], true
		}
	}
	return delivery{}, false
}
