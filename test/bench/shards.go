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
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/recorder"
	"github.com/labhook/labhook/test/internal/stack"
)

// shardOrganisations is how many organisations the shards benchmark
// spreads its changes over, one shard each when sharded.
const shardOrganisations = 3

// oneShard is the shard of the one manager that serves every organisation
// of the shards benchmark.
const oneShard = "all"

// shards measures the outgoing benchmark spread over three organisations,
// delivered by one manager (--shard=all, all three) against three shards
// (one organisation each),
// on the same API server, in alternating rounds (one, three, three, one)
// so drift on a shared machine hits both sides. For each round it reads the
// CPU time of kube-apiserver and of the managers from /proc/<pid>/stat, so
// it can say what bounds the figure: when the API server's CPU per change
// does not fall with more managers, more managers cannot deliver more on
// this control plane.
func shards(ctx context.Context, b *bench) ([]result, error) {
	res := result{name: "shards", unit: "changes/s", target: 1, value: math.NaN(), baseline: math.NaN()}
	all := func() []result { return []result{res} }
	apiPID, err := apiServerPID(b.cl.Config.Host)
	if err != nil {
		return all(), err
	}
	secret, err := wire.GenerateSecret()
	if err != nil {
		return all(), err
	}
	rec, err := recorder.Start(secret)
	if err != nil {
		return all(), err
	}
	defer rec.Close()

	// Organisations, their configs and resources, with no manager running.
	var namespaces []string
	var lrs []*labhookv1alpha1.LabResource // interleaved across organisations
	perOrg := make([][]*labhookv1alpha1.LabResource, shardOrganisations)
	for i := range shardOrganisations {
		ns := fmt.Sprintf("bench-shards-%d", i+1)
		namespaces = append(namespaces, ns)
		if err := b.cl.Namespace(ctx, ns); err != nil {
			return all(), err
		}
		if err := b.cl.WebhookConfig(ctx, ns, "bench", rec.URL, secret); err != nil {
			return all(), err
		}
		if perOrg[i], err = createResources(ctx, b, ns, b.changes); err != nil {
			return all(), err
		}
	}
	for j := range b.changes {
		for i := range shardOrganisations {
			lrs = append(lrs, perOrg[i][j])
		}
	}
	ids := make([]string, len(lrs))
	for i, lr := range lrs {
		ids[i] = lr.Spec.ID
	}
	defer func() {
		for _, ns := range namespaces {
			releaseNamespace(ctx, b.cl.Client, ns)
		}
	}()

	var one, three shardRound
	for round, sharded := range []bool{false, true, true, false} {
		r, err := shardsRound(ctx, b, rec, apiPID, namespaces, lrs, ids, sharded, round)
		if err != nil {
			res.note = err.Error()
			return all(), nil
		}
		if sharded {
			three.add(r)
		} else {
			one.add(r)
		}
	}
	res.value, res.baseline = three.rate(), one.rate()
	cores := float64(runtime.NumCPU())
	res.note = fmt.Sprintf("%d changes over %d organisations per round, %d clients, rounds 1-3-3-1; "+
		"1 manager: %s; 3 shards: %s; on %.0f cores the API server alone could take at most %.0f changes/s at 1 manager's CPU per change",
		len(lrs), shardOrganisations, b.concurrency, one, three, cores, cores*1000/one.apiMS())
	return all(), nil
}

// shardRound sums what one side measured over its rounds.
type shardRound struct {
	changes        int
	elapsed        time.Duration
	apiCPU, mgrCPU time.Duration
	// writes (labhook's, besides the changes) and labhook.io watch events
	// sent to every watcher, in total.
	writes, watchEvts float64
}

func (s *shardRound) add(o shardRound) {
	s.changes += o.changes
	s.elapsed += o.elapsed
	s.apiCPU += o.apiCPU
	s.mgrCPU += o.mgrCPU
	s.writes += o.writes
	s.watchEvts += o.watchEvts
}

func (s shardRound) rate() float64 { return float64(s.changes) / s.elapsed.Seconds() }

// apiMS is the API server's CPU per change, in milliseconds.
func (s shardRound) apiMS() float64 {
	return float64(s.apiCPU) / float64(time.Millisecond) / float64(s.changes)
}

func (s shardRound) String() string {
	n := float64(s.changes)
	return fmt.Sprintf("%.1f changes/s, API server CPU %.2f ms/change (busy %.2f cores), managers' CPU %.2f ms/change, "+
		"%.2f labhook writes and %.2f labhook.io watch events per change",
		s.rate(), s.apiMS(), s.apiCPU.Seconds()/s.elapsed.Seconds(), float64(s.mgrCPU)/float64(time.Millisecond)/n,
		s.writes/n, s.watchEvts/n)
}

// shardsRound starts one manager, or three shards, changes every resource
// once from b.concurrency clients and times the deliveries, then stops
// the managers.
func shardsRound(ctx context.Context, b *bench, rec *recorder.Recorder, apiPID int, namespaces []string,
	lrs []*labhookv1alpha1.LabResource, ids []string, sharded bool, round int) (shardRound, error) {
	var r shardRound
	side := "1 manager"
	if sharded {
		side = fmt.Sprintf("%d shards", len(namespaces))
	}
	// The one manager serves the three organisations as one shard, so both
	// sides leave out the same other namespaces (make bench's memory run
	// leaves 30,000 objects behind).
	for i, ns := range namespaces {
		shard := oneShard
		if sharded {
			shard = fmt.Sprintf("shard-%d", i+1)
		}
		if err := setShardLabel(ctx, b.cl.Client, ns, shard); err != nil {
			return r, err
		}
	}
	var mgrs []*process.Process
	defer func() {
		for _, m := range mgrs {
			m.Stop(15 * time.Second)
		}
	}()
	for i := range len(namespaces) {
		if !sharded && i > 0 {
			break
		}
		args := append([]string(nil), b.managerArgs...)
		name := fmt.Sprintf("manager-shards-round%d", round)
		shard := oneShard
		if sharded {
			shard = fmt.Sprintf("shard-%d", i+1)
			name += "-" + shard
		}
		args = append(args, "--shard="+shard)
		m, err := stack.Manager(b.binaries["manager"], b.cl.Kubeconfig, b.logPath(name), args...)
		if err != nil {
			return r, err
		}
		mgrs = append(mgrs, m)
	}
	// Each manager has listed what it watches and started its workers:
	// the state the earlier rounds left says nothing about the new ones.
	for _, m := range mgrs {
		for _, c := range []string{"webhookconfig", "labresource", "labinterface", "outgoingmessage"} {
			if err := m.WaitForLine(`"msg":"Starting workers","controller":"`+c+`"`, 120*time.Second); err != nil {
				return r, err
			}
		}
	}
	for _, ns := range namespaces {
		if err := waitValid(ctx, b, ns, "bench"); err != nil {
			return r, err
		}
	}
	if round == 0 && !rec.WaitFor(120*time.Second, func() bool { return countFor(rec, ids, wire.StatusCreated, time.Time{}) >= len(ids) }) {
		return r, fmt.Errorf("only %d of %d RESOURCE CREATED messages arrived within 120s", countFor(rec, ids, wire.StatusCreated, time.Time{}), len(ids))
	}
	for _, ns := range namespaces {
		if err := waitRecorded(ctx, b, ns, len(lrs)/len(namespaces), 60*time.Second); err != nil {
			return r, err
		}
	}

	logf("shards round %d, %s: %d changes over %d organisations, %d clients", round+1, side, len(lrs), len(namespaces), b.concurrency)
	apiBefore, mgrBefore := cpuTime(apiPID), managersCPU(mgrs)
	before := b.apiRequests(ctx)
	start := time.Now()
	l := runLoad(ctx, b.concurrency, 0, len(lrs), func(ctx context.Context, seq int) error {
		return patchName(ctx, b.cl.Client, lrs[seq-1], fmt.Sprintf("round-%d", round))
	})
	if l.firstErr != nil {
		logf("shards round %d: first error: %v", round+1, l.firstErr)
	}
	if !rec.WaitFor(120*time.Second, func() bool { return countFor(rec, ids, wire.StatusUpdated, start) >= l.ok }) {
		return r, fmt.Errorf("round %d (%s): only %d of %d RESOURCE UPDATED messages arrived within 120s",
			round+1, side, countFor(rec, ids, wire.StatusUpdated, start), l.ok)
	}
	r.changes = l.ok
	r.elapsed = lastArrival(rec, ids, wire.StatusUpdated, start).Sub(start)
	// Each delivery is recorded in status after the POST: count that too.
	for _, ns := range namespaces {
		if err := waitRecorded(ctx, b, ns, len(lrs)/len(namespaces), 60*time.Second); err != nil {
			return r, err
		}
	}
	r.apiCPU, r.mgrCPU = cpuTime(apiPID)-apiBefore, managersCPU(mgrs)-mgrBefore
	after := b.apiRequests(ctx)
	perChange, _ := writes(before, after, l.ok)
	r.writes = (perChange - 1) * float64(l.ok) // besides the change itself
	r.watchEvts = watchEvents(before, after, l.ok) * float64(l.ok)
	logf("shards round %d, %s: %s (watch events per change by resource: %s)", round+1, side, r, watchEventsByResource(before, after, l.ok))
	return r, nil
}

// setShardLabel labels a namespace for shard.
func setShardLabel(ctx context.Context, c client.Client, ns, shard string) error {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, labhookv1alpha1.LabelShard, shard)
	return c.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch("application/merge-patch+json", []byte(patch)))
}

// watchEvents is the labhook.io watch events the API server sent, to every
// watcher, per operation between before and after.
func watchEvents(before, after apiCounts, n int) float64 {
	total := 0.0
	for k, v := range after {
		if strings.HasPrefix(k, watchEventPrefix) {
			total += v - before[k]
		}
	}
	return total / float64(n)
}

// watchEventsByResource is watchEvents per labhook.io resource.
func watchEventsByResource(before, after apiCounts, n int) string {
	var parts []string
	for k, v := range after {
		if res, ok := strings.CutPrefix(k, watchEventPrefix); ok && v > before[k] {
			parts = append(parts, fmt.Sprintf("%s %.2f", res, (v-before[k])/float64(n)))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func managersCPU(ps []*process.Process) time.Duration {
	var d time.Duration
	for _, p := range ps {
		d += cpuTime(p.PID())
	}
	return d
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the CPU time (user + system) pid has used, from
// /proc/<pid>/stat; 0 if it cannot be read.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may hold spaces: the fields start after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// apiServerPID finds the kube-apiserver serving host (https://127.0.0.1:port)
// among this user's processes: other API servers may run on the machine.
func apiServerPID(host string) (int, error) {
	u, err := url.Parse(host)
	if err != nil {
		return 0, err
	}
	port := u.Port()
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" {
			continue
		}
		for _, a := range args[1:] {
			if a == "--secure-port="+port {
				return strconv.Atoi(filepath.Base(filepath.Dir(m)))
			}
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with --secure-port=%s", port)
}
