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

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/test/internal/seedmsg"
	"github.com/labhook/labhook/test/internal/stack"
)

const incomingPath = "/api/v1/webhooks/events/incoming"

// incoming measures seed messages per second through the webhookserver
// against the same 11 object writes plus 4 status writes done by a plain
// controller-runtime client at the same concurrency.
func incoming(ctx context.Context, b *bench) ([]result, error) {
	res := result{name: "incoming", unit: "msg/s", target: 0.8, value: math.NaN(), baseline: math.NaN()}
	ex, err := seedmsg.Load(b.root)
	if err != nil {
		return []result{res}, err
	}
	const ns = "bench-incoming"
	if err := b.cl.Namespace(ctx, ns); err != nil {
		return []result{res}, err
	}

	bin := b.binaries["webhookserver"]
	auth, err := b.cl.APIKey(ctx, ns, "bench-api-key-0123456789abcdef")
	if err != nil {
		return []result{res}, err
	}
	// One organisation's throughput: no rate limit and no per-organisation
	// share of the API (those bound one organisation among many, see
	// test/hostile), and no client-side throttling either.
	args := []string{"--rate-limit=1000000", "--kube-api-qps=5000", "--kube-api-burst=10000",
		"--org-api-qps=0", "--org-api-concurrency=0", "--max-concurrent-requests-per-org=0", "--max-inflight-bytes-per-org=0"}
	ws, wsURL, err := stack.WebhookServer(bin, b.cl.Kubeconfig, b.logPath("webhookserver-incoming"), args...)
	if err != nil {
		res.note = err.Error()
		return []result{res}, err
	}
	defer ws.Stop(10 * time.Second)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: b.concurrency * 2}}
	url := wsURL + incomingPath
	post := func(ctx context.Context, seq int) error {
		m := ex.Fresh("wh", seq)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Body))
		req.Header.Set("Authorization", "Bearer "+auth)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	}
	// Warm the webhookserver's caches and connections outside the timing.
	if w := runLoad(ctx, b.concurrency, 0, 2*b.concurrency, func(ctx context.Context, seq int) error { return post(ctx, 1_000_000+seq) }); w.firstErr != nil {
		res.note = fmt.Sprintf("webhookserver refuses the seed example: %v", w.firstErr)
		return []result{res}, nil
	}

	// The two sides take turns in short windows (baseline, labhook, five
	// times each), so drift on a busy machine and the API server's growing
	// store hit both alike. The webhookserver sits idle in the baseline's
	// windows.
	const rounds = 5
	window := b.duration / rounds
	var base, lh load
	baseAPI, lhAPI := apiCounts{}, apiCounts{}
	measure := func(side *load, api apiCounts, op func(ctx context.Context, seq int) error) {
		before := b.apiRequests(ctx)
		l := runLoad(ctx, b.concurrency, window, 0, op)
		accumulate(api, before, b.apiRequests(ctx))
		side.add(l)
	}
	logf("incoming: plain client and webhookserver in turns, %d clients, %d windows of %s each", b.concurrency, rounds, window)
	seq := 0
	for range rounds {
		measure(&base, baseAPI, func(ctx context.Context, i int) error {
			return writePlain(ctx, b.cl.Client, ex.Fresh("bl", seq*100000+i).Objects(ns))
		})
		measure(&lh, lhAPI, func(ctx context.Context, i int) error { return post(ctx, seq*100000+i) })
		seq++
	}
	res.baseline, res.value = base.rate(), lh.rate()
	baseWrites, lhWrites := writesPer(apiCounts{}, baseAPI, base.ok), writesPer(apiCounts{}, lhAPI, lh.ok)
	for _, side := range []struct {
		name   string
		l      load
		writes string
	}{{"baseline", base, baseWrites}, {"labhook", lh, lhWrites}} {
		logf("incoming %s: API %s", side.name, side.writes)
		logf("incoming %s: %d messages (%d failed) in %s = %.1f msg/s, latency %s", side.name, side.l.ok, side.l.failed, side.l.elapsed.Round(time.Millisecond), side.l.rate(), side.l.lat)
		if side.l.firstErr != nil {
			logf("incoming %s: first error: %v", side.name, side.l.firstErr)
		}
	}
	res.note = fmt.Sprintf("latency labhook %s; baseline %s; concurrency %d; %d alternating windows of %s; API labhook %s; baseline %s",
		lh.lat, base.lat, b.concurrency, rounds, window, lhWrites, baseWrites)

	// A message answered 200 must be fully written: check the last one.
	if err := checkWritten(ctx, b.cl.Client, ns, ex.Fresh("wh", 1)); err != nil {
		res.note += "; INCOMPLETE WRITE: " + err.Error()
	}
	cleanupNamespace(ctx, b.cl.Client, ns)
	return []result{res}, nil
}

// writePlain does, with a plain client, what the webhookserver must do for
// one message: credential Secrets, LabResources (spec, then status phase),
// then LabInterfaces.
func writePlain(ctx context.Context, c client.Client, o seedmsg.Objects) error {
	for _, s := range o.Secrets {
		if err := c.Create(ctx, s); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
	}
	for i, r := range o.Resources {
		if err := c.Create(ctx, r); err != nil {
			return fmt.Errorf("labresource: %w", err)
		}
		r.Status.Phase = o.Phases[i]
		if err := c.Status().Update(ctx, r); err != nil {
			return fmt.Errorf("labresource status: %w", err)
		}
	}
	for _, li := range o.Interfaces {
		if err := c.Create(ctx, li); err != nil {
			return fmt.Errorf("labinterface: %w", err)
		}
	}
	return nil
}

// checkWritten asserts that every LabResource of m exists with its phase and
// that the namespace holds as many interfaces as the message names for them.
func checkWritten(ctx context.Context, c client.Client, ns string, m seedmsg.Message) error {
	want := m.Objects(ns)
	for i, r := range want.Resources {
		var got labhookv1alpha1.LabResource
		if err := c.Get(ctx, client.ObjectKeyFromObject(r), &got); err != nil {
			return fmt.Errorf("resource %s: %w", r.Name, err)
		}
		if got.Status.Phase != want.Phases[i] {
			return fmt.Errorf("resource %s: phase %q, want %q", r.Name, got.Status.Phase, want.Phases[i])
		}
	}
	var lis labhookv1alpha1.LabInterfaceList
	if err := c.List(ctx, &lis, client.InNamespace(ns)); err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, id := range m.ResourceIDs {
		ids[id] = true
	}
	n := 0
	for _, li := range lis.Items {
		if ids[li.Spec.ResourceRef.Name] {
			n++
		}
	}
	if n != len(want.Interfaces) {
		return fmt.Errorf("%d interfaces for message %s, want %d", n, m.SourceMessageID, len(want.Interfaces))
	}
	return nil
}

// cleanupNamespace removes the benchmark's objects so later benchmarks'
// managers do not reconcile them.
func cleanupNamespace(ctx context.Context, c client.Client, ns string) {
	for _, obj := range []client.Object{&labhookv1alpha1.LabInterface{}, &labhookv1alpha1.LabResource{}, &labhookv1alpha1.OutgoingMessage{}, &corev1.Secret{}} {
		if err := c.DeleteAllOf(ctx, obj, client.InNamespace(ns)); err != nil {
			logf("cleanup %s: %v", ns, err)
		}
	}
}
