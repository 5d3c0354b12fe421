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
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// load is the outcome of running one operation from concurrent workers.
type load struct {
	ok, failed int
	elapsed    time.Duration
	lat        latencies
	firstErr   error
}

func (l load) rate() float64 { return float64(l.ok) / l.elapsed.Seconds() }

// add sums another run of the same side into l.
func (l *load) add(o load) {
	l.ok += o.ok
	l.failed += o.failed
	l.elapsed += o.elapsed
	l.lat = append(l.lat, o.lat...)
	if l.firstErr == nil {
		l.firstErr = o.firstErr
	}
}

// runLoad calls op from c workers, each with a fresh sequence number, until
// d has passed (d > 0) or n operations were issued (n > 0).
func runLoad(ctx context.Context, c int, d time.Duration, n int, op func(ctx context.Context, seq int) error) load {
	var (
		seq  atomic.Int64
		mu   sync.Mutex
		res  load
		wg   sync.WaitGroup
		stop = time.Now().Add(d)
	)
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat latencies
			var ok, failed int
			var firstErr error
			for ctx.Err() == nil {
				if d > 0 && time.Now().After(stop) {
					break
				}
				i := int(seq.Add(1))
				if n > 0 && i > n {
					break
				}
				t := time.Now()
				if err := op(ctx, i); err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.lat = append(res.lat, lat...)
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}
