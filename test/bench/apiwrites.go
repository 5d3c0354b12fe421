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
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// apiCounts is the API server's apiserver_request_total summed by
// "VERB resource[/subresource]", read from its /metrics. Diffing two
// snapshots shows how many requests each side of a benchmark made: the API
// server is the shared physical limit, so requests per operation is what
// bounds a ratio.
type apiCounts map[string]float64

func (b *bench) apiRequests(ctx context.Context) apiCounts {
	cs, err := kubernetes.NewForConfig(b.cl.Config)
	if err != nil {
		return nil
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil
	}
	out := apiCounts{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "process_cpu_seconds_total "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				out[cpuKey] = f
			}
			continue
		}
		if strings.HasPrefix(line, "apiserver_watch_events_total{") {
			end := strings.LastIndexByte(line, '}')
			labels := parseLabels(line[len("apiserver_watch_events_total{"):end])
			if v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64); err == nil && labels["group"] == "labhook.io" {
				out[watchEventPrefix+labels["resource"]] += v
			}
			continue
		}
		for _, m := range []string{"apiserver_request_duration_seconds_sum{", "apiserver_request_duration_seconds_count{"} {
			if strings.HasPrefix(line, m) {
				end := strings.LastIndexByte(line, '}')
				labels := parseLabels(line[len(m):end])
				v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
				if err != nil || labels["group"] != "labhook.io" {
					continue
				}
				key := strings.TrimSuffix(strings.TrimPrefix(m, "apiserver_request_duration_seconds_"), "{") + " " +
					labels["verb"] + " " + labels["resource"]
				if sub := labels["subresource"]; sub != "" {
					key += "/" + sub
				}
				out[durationPrefix+key] += v
			}
		}
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		labels := parseLabels(line[len("apiserver_request_total{"):end])
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil || labels["group"] == "coordination.k8s.io" || labels["resource"] == "" {
			continue
		}
		key := labels["verb"] + " " + labels["resource"]
		if s := labels["subresource"]; s != "" {
			key += "/" + s
		}
		out[key] += v
	}
	return out
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, `",`) {
		k, v, ok := strings.Cut(kv, `="`)
		if ok {
			m[k] = strings.TrimSuffix(v, `"`)
		}
	}
	return m
}

// accumulate adds the requests made between before and after into acc.
func accumulate(acc, before, after apiCounts) {
	for k, v := range after {
		acc[k] += v - before[k]
	}
}

// cpuKey holds the API server's process_cpu_seconds_total.
const cpuKey = "CPU apiserver"

// cpuPer is the API server's CPU time per operation between before and
// after, in milliseconds: what one operation costs the shared API server,
// whatever else runs on the machine.
func cpuPer(before, after apiCounts, n int) string {
	if before == nil || after == nil || n == 0 {
		return "n/a"
	}
	return fmt.Sprintf("API server CPU %.2f ms/op", (after[cpuKey]-before[cpuKey])/float64(n)*1000)
}

// durationPrefix keys the sums and counts of the API server's request
// durations for labhook.io resources ("DURATION sum PUT labresources/status").
const durationPrefix = "DURATION "

// latencies returns the API server's mean latency per labhook.io write
// between before and after.
func meanLatencies(before, after apiCounts) string {
	if before == nil || after == nil {
		return "n/a"
	}
	var parts []string
	for k, sum := range after {
		rest, ok := strings.CutPrefix(k, durationPrefix+"sum ")
		if !ok {
			continue
		}
		verb, _, _ := strings.Cut(rest, " ")
		if verb == "GET" || verb == "LIST" || verb == "WATCH" {
			continue
		}
		n := after[durationPrefix+"count "+rest] - before[durationPrefix+"count "+rest]
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%.1fms", strings.ReplaceAll(rest, " ", ":"), (sum-before[k])/n*1000))
		}
	}
	sort.Strings(parts)
	return "API server mean latency " + strings.Join(parts, " ")
}

// watchEventPrefix keys the watch events the API server sent for a
// labhook.io resource, to every watcher (apiserver_watch_events_total).
const watchEventPrefix = "WATCHEVENT "

// writesPer summarises the mutating requests made between before and after,
// per operation (n operations).
func writesPer(before, after apiCounts, n int) string {
	total, parts := writes(before, after, n)
	if parts == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f writes/op (%s)", total, strings.Join(parts, " "))
}

// writes returns the mutating requests per operation and their breakdown.
func writes(before, after apiCounts, n int) (float64, []string) {
	if before == nil || after == nil || n == 0 {
		return 0, nil
	}
	parts := []string{}
	total := 0.0
	for k, v := range after {
		d := v - before[k]
		verb, _, _ := strings.Cut(k, " ")
		if d <= 0 || verb == "GET" || verb == "LIST" || verb == "WATCH" || verb+" " == watchEventPrefix || verb+" " == durationPrefix || k == cpuKey {
			continue
		}
		total += d
		parts = append(parts, fmt.Sprintf("%s=%.2f", strings.ReplaceAll(k, " ", ":"), d/float64(n)))
	}
	sort.Strings(parts)
	return total / float64(n), parts
}

// watchEventsPer is the labhook.io watch events sent between before and
// after, per operation, in total and by resource.
func watchEventsPer(before, after apiCounts, n int) string {
	if before == nil || after == nil || n == 0 {
		return "n/a"
	}
	var parts []string
	total := 0.0
	for k, v := range after {
		if !strings.HasPrefix(k, watchEventPrefix) {
			continue
		}
		if d := v - before[k]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s=%.2f", strings.TrimPrefix(k, watchEventPrefix), d/float64(n)))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%.2f watch events/op (%s)", total/float64(n), strings.Join(parts, " "))
}
