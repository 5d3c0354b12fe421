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

// Command bench runs SPEC §7's benchmarks. Each one measures labhook and a
// plain client-go baseline in the same run, against the same local
// kube-apiserver, so the printed ratio survives a noisy machine. It ends
// with one line per benchmark:
//
//	BENCH <name> value=<x> baseline=<y> unit=<u> ratio=<value/baseline> target=<t>
//
// Run it with `make bench` (which sets KUBEBUILDER_ASSETS).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/labhook/labhook/test/internal/cluster"
	"github.com/labhook/labhook/test/internal/process"
)

// result is one BENCH line.
type result struct {
	name, unit      string
	value, baseline float64
	target          float64
	// ratioOfTarget: memory benchmarks compare value to the target, not to
	// a measured baseline.
	note string
}

func (r result) line() string {
	ratio := r.value / r.baseline
	return fmt.Sprintf("BENCH %s value=%s baseline=%s unit=%s ratio=%s target=%s",
		r.name, num(r.value), num(r.baseline), r.unit, num(ratio), num(r.target))
}

func num(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "NaN"
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

// bench is what every benchmark gets.
type bench struct {
	root, tmp   string
	cl          *cluster.Cluster
	concurrency int
	duration    time.Duration
	changes     int
	objects     int
	binaries    map[string]string // cmd name -> path
	standIn     bool              // a WebhookConfig was marked valid by the benchmark
	managerArgs []string          // extra manager flags, for experiments
}

func (b *bench) logPath(name string) string { return filepath.Join(b.tmp, name+".log") }

func logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	b := &bench{binaries: map[string]string{}}
	only := flag.String("only", "outgoing,incoming,shards,memory", "Comma-separated benchmarks to run, in this order.")
	flag.IntVar(&b.concurrency, "concurrency", 8, "Concurrent clients for the throughput benchmarks.")
	flag.DurationVar(&b.duration, "duration", 15*time.Second, "How long each side of the incoming benchmark runs.")
	flag.IntVar(&b.changes, "changes", 500, "LabResource spec changes in the outgoing benchmark.")
	flag.IntVar(&b.objects, "objects", 10000, "LabResources, LabInterfaces and OutgoingMessages each in the memory benchmark.")
	flag.Func("manager-arg", "An extra manager flag for experiments, e.g. --max-retained-messages=100000 (repeatable).", func(v string) error {
		b.managerArgs = append(b.managerArgs, v)
		return nil
	})
	keep := flag.Bool("keep", false, "Keep the temporary directory (logs, kubeconfig).")
	flag.Func("binary", "name=path: measure a prebuilt binary instead of building cmd/<name>, e.g. manager=/tmp/manager (repeatable).", func(v string) error {
		name, path, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("want name=path, got %q", v)
		}
		b.binaries[name] = path
		return nil
	})
	flag.Parse()
	// envtest logs through controller-runtime; the benchmark's own lines are
	// what matters here, the children's logs go to their files.
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, b, strings.Split(*only, ","), *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, b *bench, which []string, keep bool) error {
	start := time.Now()
	var err error
	if b.root, err = cluster.RepoRoot(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "labhook-bench-"); err != nil {
		return err
	}
	if keep {
		logf("logs and kubeconfig in %s", b.tmp)
	} else {
		defer os.RemoveAll(b.tmp)
	}
	for _, name := range []string{"manager", "webhookserver"} {
		if p, ok := b.binaries[name]; ok {
			logf("using prebuilt %s: %s", name, p)
			continue
		}
		logf("building cmd/%s", name)
		p, err := process.Build(ctx, b.root, b.tmp, name)
		if err != nil {
			return err
		}
		b.binaries[name] = p
	}
	logf("starting the control plane")
	if b.cl, err = cluster.Start(b.tmp); err != nil {
		return err
	}
	defer b.cl.Stop()

	benches := map[string]func(context.Context, *bench) ([]result, error){
		"outgoing": outgoing, "incoming": incoming, "memory": memory, "outgoing-floor": outgoingFloor, "shards": shards,
	}
	var results []result
	for _, name := range which {
		f, ok := benches[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("unknown benchmark %q", name)
		}
		logf("benchmark %s", name)
		rs, err := f(ctx, b)
		if err != nil {
			logf("benchmark %s failed: %v", name, err)
		}
		results = append(results, rs...)
	}
	logf("all benchmarks done in %s", time.Since(start).Round(time.Second))
	for _, r := range results {
		if r.note != "" {
			fmt.Printf("# %s: %s\n", r.name, r.note)
		}
	}
	for _, r := range results {
		fmt.Println(r.line())
	}
	return nil
}

// latencies summarises a set of durations.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func (l latencies) String() string {
	return fmt.Sprintf("p50=%s p99=%s n=%d", l.quantile(0.5).Round(100*time.Microsecond), l.quantile(0.99).Round(100*time.Microsecond), len(l))
}
