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
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/stack"
)

const mib = 1 << 20

// memory measures the manager's resident memory once it has reconciled
// N LabResources, N LabInterfaces and N OutgoingMessages, and the
// webhookserver's idle resident memory with the same objects in the
// cluster. The LabResources and LabInterfaces carry the webhookserver's echo
// marker (as if a backend had created them), so the manager writes their
// status but produces no new messages; the OutgoingMessages stay Pending
// because the namespace has no WebhookConfig. The "baseline" of these lines
// is the target, so ratio <= 1 meets it.
func memory(ctx context.Context, b *bench) ([]result, error) {
	mgrRes := result{name: "memory", unit: "MiB", target: 1, value: math.NaN(), baseline: 200}
	wsRes := result{name: "memory-webhookserver", unit: "MiB", target: 1, value: math.NaN(), baseline: 50}
	const ns = "bench-memory"
	if err := b.cl.Namespace(ctx, ns); err != nil {
		return []result{mgrRes, wsRes}, err
	}
	n := b.objects
	logf("memory: creating %d LabResources, %d LabInterfaces and %d OutgoingMessages", n, n, n)
	start := time.Now()
	l := runLoad(ctx, 4*b.concurrency, 0, 3*n, func(ctx context.Context, seq int) error {
		i := (seq - 1) / 3
		id := fmt.Sprintf("mem-%06d", i)
		switch seq % 3 {
		case 1:
			lr := &labhookv1alpha1.LabResource{
				ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: ns},
				Spec: labhookv1alpha1.LabResourceSpec{ID: id, Type: labhookv1alpha1.ResourceTypeVM, Name: "server",
					Config: &labhookv1alpha1.LabResourceConfig{NetworkInterfaces: []labhookv1alpha1.NetworkInterface{{PublicIP: "32.17.144.2", PrivateIP: "10.0.0.6", DNS: id + ".labs.example.com"}}}},
			}
			lr.Annotations = echo.Mark("bench-"+id, "2020-10-05T08:39:09+00:00", lr.Spec)
			return b.cl.Client.Create(ctx, lr)
		case 2:
			li := &labhookv1alpha1.LabInterface{
				ObjectMeta: metav1.ObjectMeta{Name: id + "-server", Namespace: ns},
				Spec: labhookv1alpha1.LabInterfaceSpec{Name: "Server", Type: labhookv1alpha1.InterfaceTerminal, Region: "us-east-1",
					ResourceRef: labhookv1alpha1.LocalObjectReference{Name: id}},
			}
			li.Annotations = echo.Mark("bench-"+id, "2020-10-05T08:39:09+00:00", li.Spec)
			return b.cl.Client.Create(ctx, li)
		default:
			om := &labhookv1alpha1.OutgoingMessage{
				ObjectMeta: metav1.ObjectMeta{Name: "mem-msg-" + id, Namespace: ns},
				Spec:       labhookv1alpha1.OutgoingMessageSpec{Type: wire.TypeEvent, Status: "STARTED", EntityIDs: []string{id}},
			}
			return b.cl.Client.Create(ctx, om)
		}
	})
	if l.firstErr != nil {
		return []result{mgrRes, wsRes}, fmt.Errorf("create objects: %w (%d failed)", l.firstErr, l.failed)
	}
	logf("memory: %d objects created in %s (%.0f/s)", l.ok, time.Since(start).Round(time.Millisecond), l.rate())

	if err := managerRSS(ctx, b, ns, n, &mgrRes); err != nil {
		mgrRes.note = err.Error()
	}
	if err := webhookserverRSS(b, &wsRes); err != nil {
		wsRes.note = err.Error()
	}
	mgrRes.target, wsRes.target = 1, 1
	return []result{mgrRes, wsRes}, nil
}

func managerRSS(ctx context.Context, b *bench, ns string, n int, res *result) error {
	bin := b.binaries["manager"]
	maddr, err := process.FreeAddr()
	if err != nil {
		return err
	}
	start := time.Now()
	mgr, err := stack.Manager(bin, b.cl.Kubeconfig, b.logPath("manager-memory"), append([]string{"--metrics-bind-address=" + maddr}, b.managerArgs...)...)
	if err != nil {
		return err
	}
	defer mgr.Stop(15 * time.Second)
	// Synced: the informers have listed everything and every work queue
	// (and the delivery pool) has drained, read from the manager's own
	// metrics so that polling does not load the API server. The figure is
	// only taken then; past 15 minutes the benchmark reports it undrained.
	var m managerMetrics
	idle := 0
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) && idle < 2 {
		time.Sleep(3 * time.Second)
		m = readManagerMetrics("http://" + maddr + "/metrics")
		rss, _, _ := process.RSS(mgr.PID())
		logf("memory: manager reconciles %v, queue depth %.0f; RSS %.1f MiB", m.reconciles, m.depth, float64(rss)/mib)
		if m.depth == 0 && len(m.reconciles) > 0 {
			idle++
		} else {
			idle = 0
		}
	}
	synced := time.Since(start)
	// Let the Go runtime settle, then take the largest of a few samples.
	var rss, peak int64
	for range 3 {
		time.Sleep(time.Second)
		r, p, err := process.RSS(mgr.PID())
		if err != nil {
			return fmt.Errorf("manager RSS: %w", err)
		}
		rss, peak = max(rss, r), max(peak, p)
	}
	lr, li, om := reconciled(ctx, b.cl.Client, ns)
	res.value = float64(rss) / mib
	res.note = fmt.Sprintf("manager VmRSS %.1f MiB (peak VmHWM %.1f MiB) %s after start, queues drained=%v; reconciled %d/%d resources, %d/%d interfaces, %d/%d messages (reconciles by controller %v)",
		res.value, float64(peak)/mib, synced.Round(time.Second), idle >= 2, lr, n, li, n, om, n, m.reconciles)
	return nil
}

// managerMetrics is what the memory benchmark reads from the manager.
type managerMetrics struct {
	reconciles map[string]float64 // controller -> reconciles
	depth      float64            // sum of work queue depths
}

func readManagerMetrics(url string) managerMetrics {
	m := managerMetrics{reconciles: map[string]float64{}}
	resp, err := http.Get(url)
	if err != nil {
		m.depth = -1
		return m
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		// name{labels} value, or name value for a metric without labels.
		name, labels, rest := line, map[string]string{}, ""
		if open := strings.IndexByte(line, '{'); open >= 0 {
			end := strings.LastIndexByte(line, '}')
			if end < open {
				continue
			}
			name, labels, rest = line[:open], parseLabels(line[open+1:end]), line[end+1:]
		} else if sp := strings.IndexByte(line, ' '); sp >= 0 {
			name, rest = line[:sp], line[sp:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		switch name {
		case "workqueue_depth", "labhook_delivery_queued":
			m.depth += v
		case "controller_runtime_reconcile_total":
			m.reconciles[labels["controller"]] += v
		}
	}
	return m
}

func webhookserverRSS(b *bench, res *result) error {
	bin := b.binaries["webhookserver"]
	ws, _, err := stack.WebhookServer(bin, b.cl.Kubeconfig, b.logPath("webhookserver-memory"))
	if err != nil {
		return err
	}
	defer ws.Stop(10 * time.Second)
	time.Sleep(3 * time.Second)
	rss, peak, err := process.RSS(ws.PID())
	if err != nil {
		return fmt.Errorf("webhookserver RSS: %w", err)
	}
	res.value = float64(rss) / mib
	res.note = fmt.Sprintf("webhookserver idle VmRSS %.1f MiB (peak %.1f MiB), ready, with the memory benchmark's objects in the cluster", res.value, float64(peak)/mib)
	return nil
}

// reconciled counts objects the manager has handled at least once. It lists
// every object, so it runs once, after the measurement.
func reconciled(ctx context.Context, c client.Client, ns string) (lr, li, om int) {
	var lrs labhookv1alpha1.LabResourceList
	if c.List(ctx, &lrs, client.InNamespace(ns)) == nil {
		for _, o := range lrs.Items {
			if o.Status.ObservedGeneration == o.Generation || len(o.Status.Conditions) > 0 {
				lr++
			}
		}
	}
	var lis labhookv1alpha1.LabInterfaceList
	if c.List(ctx, &lis, client.InNamespace(ns)) == nil {
		for _, o := range lis.Items {
			if o.Status.ObservedGeneration == o.Generation || len(o.Status.Conditions) > 0 {
				li++
			}
		}
	}
	var oms labhookv1alpha1.OutgoingMessageList
	if c.List(ctx, &oms, client.InNamespace(ns)) == nil {
		for _, o := range oms.Items {
			if o.Status.Phase != "" {
				om++
			}
		}
	}
	return lr, li, om
}
