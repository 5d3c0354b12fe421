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
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/recorder"
	"github.com/labhook/labhook/test/internal/stack"
)

// outgoing measures LabResource spec changes delivered per second by the
// manager to a loopback receiver, against a plain loop doing what an outbox
// of OutgoingMessages costs (patch the LabResource, create an
// OutgoingMessage, POST it signed, write its status: kept unchanged so
// figures compare across versions). The baseline runs before and after the
// manager, never beside it. It also prints labhook's API writes and watch
// events per change, the latency from spec change to POST at 10, 25, 50 and
// 100 changes/s, and the latency of one organisation at 50 changes/s while
// another's receiver takes 10 s per request.
func outgoing(ctx context.Context, b *bench) ([]result, error) {
	res := result{name: "outgoing", unit: "changes/s", target: 1.3, value: math.NaN(), baseline: math.NaN()}
	latency := result{name: "outgoing-latency-p99", unit: "ms", target: 1, value: math.NaN(), baseline: 100}
	fairness := result{name: "outgoing-fairness-p99", unit: "ms", target: 1, value: math.NaN(), baseline: 100}
	all := func() []result { return []result{res, latency, fairness} }
	secret, err := wire.GenerateSecret()
	if err != nil {
		return all(), err
	}
	rec, err := recorder.Start(secret)
	if err != nil {
		return all(), err
	}
	defer rec.Close()
	n := b.changes

	// Baseline, once before labhook and once after it (with the manager
	// stopped both times), so drift on a shared machine hits both sides.
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: b.concurrency * 2}}
	baseline := func(ns string) (float64, string, error) {
		if err := b.cl.Namespace(ctx, ns); err != nil {
			return 0, "", err
		}
		lrs, err := createResources(ctx, b, ns, n)
		if err != nil {
			return 0, "", err
		}
		logf("outgoing baseline: %d changes, %d clients", n, b.concurrency)
		before := b.apiRequests(ctx)
		l := runLoad(ctx, b.concurrency, 0, n, func(ctx context.Context, seq int) error {
			return changeAndDeliverPlain(ctx, b.cl.Client, hc, rec.URL, secret, lrs[seq-1])
		})
		writes := writesPer(before, b.apiRequests(ctx), l.ok)
		after := b.apiRequests(ctx)
		logf("outgoing baseline: %d changes (%d failed) in %s = %.1f changes/s; API %s; %s; %s", l.ok, l.failed, l.elapsed.Round(time.Millisecond), l.rate(), writes,
			meanLatencies(before, after), cpuPer(before, after, l.ok))
		if l.firstErr != nil {
			logf("outgoing baseline: first error: %v", l.firstErr)
		}
		cleanupNamespace(ctx, b.cl.Client, ns)
		return l.rate(), writes, nil
	}
	base1, baseWrites, err := baseline("bench-outgoing-baseline-1")
	if err != nil {
		return all(), err
	}
	res.baseline = base1

	// labhook.
	const ns = "bench-outgoing"
	if err := b.cl.Namespace(ctx, ns); err != nil {
		return all(), err
	}
	if err := b.cl.WebhookConfig(ctx, ns, "bench", rec.URL, secret); err != nil {
		return all(), err
	}
	maddr, err := process.FreeAddr()
	if err != nil {
		return all(), err
	}
	mgr, err := stack.Manager(b.binaries["manager"], b.cl.Kubeconfig, b.logPath("manager-outgoing"),
		append([]string{"--metrics-bind-address=" + maddr}, b.managerArgs...)...)
	if err != nil {
		res.note = err.Error()
		return all(), err
	}
	stopped := false
	defer func() {
		if !stopped {
			mgr.Stop(15 * time.Second)
		}
	}()
	if err := waitValid(ctx, b, ns, "bench"); err != nil {
		res.note = err.Error()
		return all(), nil
	}
	lrs, err := createResources(ctx, b, ns, n)
	if err != nil {
		return all(), err
	}
	ids := make([]string, n)
	for i, lr := range lrs {
		ids[i] = lr.Spec.ID
	}
	if !rec.WaitFor(90*time.Second, func() bool { return countFor(rec, ids, wire.StatusCreated, time.Time{}) >= n }) {
		res.note = fmt.Sprintf("only %d of %d RESOURCE CREATED messages arrived within 90s", countFor(rec, ids, wire.StatusCreated, time.Time{}), n)
		return all(), nil
	}
	// The manager records each delivery after it: let it finish, so the
	// measurement counts the changes' writes only.
	if err := waitRecorded(ctx, b, ns, n, 60*time.Second); err != nil {
		res.note = err.Error()
		return all(), nil
	}

	logf("outgoing labhook: %d changes, %d clients", n, b.concurrency)
	mgrCPU := processCPU("http://" + maddr + "/metrics")
	before := b.apiRequests(ctx)
	start := time.Now()
	lh := runLoad(ctx, b.concurrency, 0, n, func(ctx context.Context, seq int) error {
		return patchName(ctx, b.cl.Client, lrs[seq-1], "throughput")
	})
	if lh.firstErr != nil {
		logf("outgoing labhook: first error: %v", lh.firstErr)
	}
	if !rec.WaitFor(120*time.Second, func() bool { return countFor(rec, ids, wire.StatusUpdated, start) >= lh.ok }) {
		got := countFor(rec, ids, wire.StatusUpdated, start)
		res.note = fmt.Sprintf("only %d of %d RESOURCE UPDATED messages arrived within 120s", got, lh.ok)
		return all(), nil
	}
	elapsed := lastArrival(rec, ids, wire.StatusUpdated, start).Sub(start)
	res.value = float64(lh.ok) / elapsed.Seconds()
	time.Sleep(time.Second) // the status write that records a delivery follows the POST
	after := b.apiRequests(ctx)
	lhWrites := writesPer(before, after, lh.ok)
	perChange, _ := writes(before, after, lh.ok)
	events := watchEventsPer(before, after, lh.ok)
	events += fmt.Sprintf("; manager CPU %.2f ms/op", (processCPU("http://"+maddr+"/metrics")-mgrCPU)/float64(lh.ok)*1000)
	logf("outgoing labhook: %d changes written in %s, delivered in %s = %.1f changes/s; API %s; %s; %s; %s", lh.ok, lh.elapsed.Round(time.Millisecond),
		elapsed.Round(time.Millisecond), res.value, lhWrites, events, meanLatencies(before, after), cpuPer(before, after, lh.ok))

	// Latency at steady rates, from just before the spec change is written
	// to the receiver's arrival.
	var lats []string
	for _, rate := range []int{10, 25, 50, 100} {
		lat, missing := steadyLatency(ctx, b, rec, lrs, rate, 5*time.Second, fmt.Sprintf("latency-%d", rate))
		line := fmt.Sprintf("%d/s %s", rate, lat)
		if missing > 0 {
			line += fmt.Sprintf(" (%d not delivered within 60s)", missing)
		}
		lats = append(lats, line)
		if rate == 100 {
			latency.value = float64(lat.quantile(0.99)) / float64(time.Millisecond)
			latency.note = fmt.Sprintf("spec change to POST, p99 at 100 changes/s; all rates: %s", strings.Join(lats, "; "))
		}
	}

	// Fairness: another organisation whose receiver sleeps 10 s per request.
	fairness.value, fairness.note = outgoingFairness(ctx, b, rec, secret, lrs)

	_, dups := rec.Counts()
	if b.standIn {
		res.note += "WebhookConfig marked valid by the benchmark (no WebhookConfig controller in this tree); "
	}
	res.note += fmt.Sprintf("API labhook %s (%.2f besides the change itself, target <= 1.05), %s; baseline %s",
		lhWrites, perChange-1, events, baseWrites)

	mgr.Stop(15 * time.Second)
	stopped = true
	// Later benchmarks' managers must not deliver (to closed receivers)
	// what these resources would owe once deleted.
	for _, n := range []string{ns, "bench-outgoing-slow"} {
		releaseNamespace(ctx, b.cl.Client, n)
	}
	if base2, _, err := baseline("bench-outgoing-baseline-2"); err == nil {
		res.baseline = (base1 + base2) / 2
		res.note += fmt.Sprintf("; baseline before %.1f and after %.1f changes/s, averaged", base1, base2)
	}
	res.note += fmt.Sprintf("; duplicates %d, bad signatures %d; %d changes, concurrency %d", dups, rec.BadSignatures(), n, b.concurrency)
	return all(), nil
}

// outgoingFairness measures organisation b's latency at 50 changes/s (the
// benchmark's organisation, on rec) while organisation a, on the same
// manager, has 200 resources whose receiver sleeps 10 s per request and
// keeps changing them at 20/s. It returns b's p99 in ms and a note.
func outgoingFairness(ctx context.Context, b *bench, rec *recorder.Recorder, secret string, lrs []*labhookv1alpha1.LabResource) (float64, string) {
	slow, err := startSleepingReceiver(10 * time.Second)
	if err != nil {
		return math.NaN(), err.Error()
	}
	defer slow.Close()
	const nsA = "bench-outgoing-slow"
	if err := b.cl.Namespace(ctx, nsA); err != nil {
		return math.NaN(), err.Error()
	}
	if err := b.cl.WebhookConfig(ctx, nsA, "slow", slow.URL(), secret); err != nil {
		return math.NaN(), err.Error()
	}
	if err := waitValid(ctx, b, nsA, "slow"); err != nil {
		return math.NaN(), err.Error()
	}
	slowLRs, err := createResources(ctx, b, nsA, 200)
	if err != nil {
		return math.NaN(), err.Error()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = patchName(ctx, b.cl.Client, slowLRs[i%len(slowLRs)], fmt.Sprintf("slow-%d", i))
			}
		}
	}()
	time.Sleep(2 * time.Second) // a's queue fills up
	lat, missing := steadyLatency(ctx, b, rec, lrs, 50, 5*time.Second, "fair")
	close(stop)
	<-done
	note := fmt.Sprintf("organisation b at 50 changes/s: %s, while organisation a (200 resources changed at 20/s) waits on a receiver "+
		"that answers in 10s: %d of its requests answered, %d in flight at most", lat, slow.answered(), slow.peak())
	if missing > 0 {
		note += fmt.Sprintf(" (%d of b's changes not delivered within 60s)", missing)
	}
	return float64(lat.quantile(0.99)) / float64(time.Millisecond), note
}

// sleepingReceiver answers every message after a delay (and WebhookConfig
// tests at once, so its config becomes valid): a customer's receiver that
// takes 10 s per request.
type sleepingReceiver struct {
	srv           *http.Server
	url           string
	mu            sync.Mutex
	inFlight, top int
	done          int
}

func startSleepingReceiver(delay time.Duration) (*sleepingReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &sleepingReceiver{url: "http://" + ln.Addr().String() + "/webhooks"}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var m wire.OutgoingMessage
		if json.Unmarshal(body, &m) == nil && m.Type != wire.TypeWebhookConfig {
			r.mu.Lock()
			r.inFlight++
			r.top = max(r.top, r.inFlight)
			r.mu.Unlock()
			select {
			case <-time.After(delay):
			case <-req.Context().Done():
			}
			r.mu.Lock()
			r.inFlight--
			r.done++
			r.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *sleepingReceiver) URL() string { return r.url }
func (r *sleepingReceiver) Close()      { _ = r.srv.Close() }

func (r *sleepingReceiver) answered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

func (r *sleepingReceiver) peak() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.top
}

// processCPU reads process_cpu_seconds_total from a Prometheus endpoint.
func processCPU(url string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return math.NaN()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "process_cpu_seconds_total "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return math.NaN()
}

// releaseNamespace deletes the LabResources of ns with no manager running:
// it removes their finalizers first.
func releaseNamespace(ctx context.Context, c client.Client, ns string) {
	var list labhookv1alpha1.LabResourceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	for i := range list.Items {
		lr := &list.Items[i]
		_ = c.Patch(ctx, lr, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
	}
	cleanupNamespace(ctx, c, ns)
}

// waitRecorded waits until the n LabResources of ns record the message of
// their generation (the manager is idle), polling the API once a second.
func waitRecorded(ctx context.Context, b *bench, ns string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var list labhookv1alpha1.LabResourceList
		if err := b.cl.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, lr := range list.Items {
			if lr.Status.ObservedGeneration == lr.Generation {
				done++
			}
		}
		if done >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d LabResources recorded their message within %s", done, n, timeout)
		}
		time.Sleep(time.Second)
	}
}

func waitValid(ctx context.Context, b *bench, ns, name string) error {
	standIn, err := b.cl.EnsureValid(ctx, ns, name, 10*time.Second)
	if standIn {
		logf("no WebhookConfig controller in this tree: the benchmark marked %s/%s valid itself", ns, name)
		b.standIn = true
	}
	return err
}

// createResources creates n VM LabResources from concurrent clients.
func createResources(ctx context.Context, b *bench, ns string, n int) ([]*labhookv1alpha1.LabResource, error) {
	lrs := make([]*labhookv1alpha1.LabResource, n)
	l := runLoad(ctx, b.concurrency, 0, n, func(ctx context.Context, seq int) error {
		id := fmt.Sprintf("%s-%06d", ns, seq)
		lr := &labhookv1alpha1.LabResource{
			ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: ns},
			Spec: labhookv1alpha1.LabResourceSpec{ID: id, Type: labhookv1alpha1.ResourceTypeVM, Name: "server",
				Config: &labhookv1alpha1.LabResourceConfig{NetworkInterfaces: []labhookv1alpha1.NetworkInterface{{PublicIP: "32.17.144.2", PrivateIP: "10.0.0.6"}}}},
		}
		lrs[seq-1] = lr
		return b.cl.Client.Create(ctx, lr)
	})
	if l.firstErr != nil {
		return nil, fmt.Errorf("create %d LabResources: %w", n, l.firstErr)
	}
	return lrs, nil
}

// patchName changes spec.name with a merge patch (no resourceVersion, so
// the manager's concurrent status writes cannot make it conflict).
func patchName(ctx context.Context, c client.Client, lr *labhookv1alpha1.LabResource, name string) error {
	patch := []byte(fmt.Sprintf(`{"spec":{"name":%q}}`, name))
	return c.Patch(ctx, lr, client.RawPatch("application/merge-patch+json", patch))
}

// changeAndDeliverPlain is the baseline: what labhook does per change, done
// by hand with no controller, no queue and no cache.
func changeAndDeliverPlain(ctx context.Context, c client.Client, hc *http.Client, url, secret string, lr *labhookv1alpha1.LabResource) error {
	if err := patchName(ctx, c, lr, "throughput"); err != nil {
		return err
	}
	spec, _ := json.Marshal(lr.Spec)
	ctxJSON, _ := json.Marshal(map[string]any{"namespace": lr.Namespace, "name": lr.Name, "generation": lr.Generation, "spec": json.RawMessage(spec)})
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-updated", lr.Name, lr.Generation), Namespace: lr.Namespace},
		Spec:       labhookv1alpha1.OutgoingMessageSpec{Type: wire.TypeResource, Status: wire.StatusUpdated, EntityIDs: []string{lr.Spec.ID}},
	}
	if err := c.Create(ctx, om); err != nil {
		return err
	}
	body, err := wire.OutgoingMessage{
		MessageID: om.Name, Type: wire.TypeResource, Status: wire.StatusUpdated, EntityIDs: []string{lr.Spec.ID},
		Timestamp: wire.FormatTimestamp(om.CreationTimestamp.Time), Context: ctxJSON,
	}.Marshal()
	if err != nil {
		return err
	}
	now := time.Now()
	sig, err := wire.Sign([]string{secret}, om.Name, now, body)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("webhook-id", om.Name)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	om.Status.Phase = labhookv1alpha1.MessageDelivered
	om.Status.Attempts = 1
	om.Status.DeliveredTime = &metav1.Time{Time: time.Now()}
	return c.Status().Update(ctx, om)
}

// countFor counts arrivals of RESOURCE <status> for ids after since.
func countFor(rec *recorder.Recorder, ids []string, status string, since time.Time) int {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	seen := map[string]bool{}
	for _, a := range rec.Arrivals() {
		m := a.Message
		if m.Type == wire.TypeResource && m.Status == status && a.At.After(since) && len(m.EntityIDs) > 0 && want[m.EntityIDs[0]] {
			seen[m.MessageID] = true
		}
	}
	return len(seen)
}

func lastArrival(rec *recorder.Recorder, ids []string, status string, since time.Time) time.Time {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var last time.Time
	for _, a := range rec.Arrivals() {
		m := a.Message
		if m.Type == wire.TypeResource && m.Status == status && a.At.After(since) && len(m.EntityIDs) > 0 && want[m.EntityIDs[0]] && a.At.After(last) {
			last = a.At
		}
	}
	return last
}

// steadyLatency changes one LabResource's name to name every 1/rate
// seconds for d (at least 100 changes) and returns the latencies from each
// change to its message's arrival.
func steadyLatency(ctx context.Context, b *bench, rec *recorder.Recorder, lrs []*labhookv1alpha1.LabResource, rate int, d time.Duration, name string) (latencies, int) {
	count := min(max(int(d.Seconds())*rate, 100), len(lrs))
	logf("outgoing latency: %d changes at %d/s", count, rate)
	start := time.Now()
	sent := make(map[string]time.Time, count)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := 0; i < count; i++ {
		<-tick.C
		wg.Add(1)
		go func(lr *labhookv1alpha1.LabResource) {
			defer wg.Done()
			t := time.Now()
			if err := patchName(ctx, b.cl.Client, lr, name); err != nil {
				return
			}
			mu.Lock()
			sent[lr.Spec.ID] = t
			mu.Unlock()
		}(lrs[i])
	}
	tick.Stop()
	wg.Wait()
	ids := make([]string, 0, len(sent))
	for id := range sent {
		ids = append(ids, id)
	}
	rec.WaitFor(60*time.Second, func() bool { return countFor(rec, ids, wire.StatusUpdated, start) >= len(ids) })
	var lat latencies
	got := map[string]bool{}
	for _, a := range rec.Arrivals() {
		m := a.Message
		if m.Type != wire.TypeResource || m.Status != wire.StatusUpdated || !a.At.After(start) || len(m.EntityIDs) == 0 {
			continue
		}
		t, ok := sent[m.EntityIDs[0]]
		if !ok || got[m.EntityIDs[0]] {
			continue
		}
		got[m.EntityIDs[0]] = true
		lat = append(lat, a.At.Sub(t))
	}
	return lat, len(sent) - len(got)
}
