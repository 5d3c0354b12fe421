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
	"math"
	"net/http"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/recorder"
)

// outgoingFloor is not part of make bench: it measures, with no manager,
// the outgoing baseline (3 writes per change) against a bare loop doing
// what labhook does per change in line (patch the spec, POST signed,
// update the status: 2 writes), in three alternating rounds, with the API
// server's CPU per change. Their ratio is the most the outgoing benchmark
// can show on this machine: `go run ./test/bench -only outgoing-floor`.
func outgoingFloor(ctx context.Context, b *bench) ([]result, error) {
	res := result{name: "outgoing-floor", unit: "changes/s", target: 1.3, value: math.NaN(), baseline: math.NaN()}
	secret, err := wire.GenerateSecret()
	if err != nil {
		return []result{res}, err
	}
	rec, err := recorder.Start(secret)
	if err != nil {
		return []result{res}, err
	}
	defer rec.Close()
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: b.concurrency * 2}}
	var bare, three load
	for round := range 6 {
		ns := fmt.Sprintf("bench-floor-%d", round)
		if err := b.cl.Namespace(ctx, ns); err != nil {
			return []result{res}, err
		}
		lrs, err := createResources(ctx, b, ns, b.changes)
		if err != nil {
			return []result{res}, err
		}
		before := b.apiRequests(ctx)
		side := "3-write baseline"
		op := func(ctx context.Context, seq int) error {
			return changeAndDeliverPlain(ctx, b.cl.Client, hc, rec.URL, secret, lrs[seq-1])
		}
		if round%2 == 1 {
			side = "bare 2-write loop"
			op = func(ctx context.Context, seq int) error {
				return changeAndRecordBare(ctx, b.cl.Client, hc, rec.URL, secret, lrs[seq-1])
			}
		}
		l := runLoad(ctx, b.concurrency, 0, b.changes, op)
		after := b.apiRequests(ctx)
		logf("outgoing-floor %s: %.1f changes/s; %s; %s", side, l.rate(), writesPer(before, after, l.ok), cpuPer(before, after, l.ok))
		if round%2 == 1 {
			bare.add(l)
		} else {
			three.add(l)
		}
		cleanupNamespace(ctx, b.cl.Client, ns)
	}
	res.value, res.baseline = bare.rate(), three.rate()
	res.note = "no manager: the bare 2-write loop against the 3-write baseline, three rounds each, alternating"
	return []result{res}, nil
}

// changeAndRecordBare is labhook's work per change done in line: patch
// the spec, POST the message signed, update the status.
func changeAndRecordBare(ctx context.Context, c client.Client, hc *http.Client, url, secret string, lr *labhookv1alpha1.LabResource) error {
	if err := patchName(ctx, c, lr, "floor"); err != nil {
		return err
	}
	id := fmt.Sprintf("resource-updated-%s-%d", lr.UID, lr.Generation)
	body, err := wire.OutgoingMessage{MessageID: id, Type: wire.TypeResource, Status: wire.StatusUpdated,
		EntityIDs: []string{lr.Spec.ID}, Timestamp: wire.FormatTimestamp(time.Now())}.Marshal()
	if err != nil {
		return err
	}
	now := time.Now()
	sig, err := wire.Sign([]string{secret}, id, now, body)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	lr.Status.ObservedGeneration = lr.Generation
	lr.Status.LastMessage = &labhookv1alpha1.LastMessage{ID: id, Type: wire.TypeResource, Status: wire.StatusUpdated,
		Phase: labhookv1alpha1.MessageDelivered, HTTPStatus: int32(resp.StatusCode), Attempts: 1}
	return c.Status().Update(ctx, lr)
}
