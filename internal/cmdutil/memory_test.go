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

package cmdutil_test

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/labhook/labhook/internal/cmdutil"
)

func TestSetMemoryLimitFromEnv(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, c := range []struct {
		name, limit, gomemlimit string
		want                    int64
	}{
		{"85 % of the container's limit", "268435456", "", 268435456 / 100 * 85},
		{"no limit", "", "", 0},
		{"not a number", "256Mi", "", 0},
		{"zero", "0", "", 0},
		{"GOMEMLIMIT wins", "268435456", "100MiB", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			t.Setenv(cmdutil.MemoryLimitEnv, c.limit)
			t.Setenv("GOMEMLIMIT", c.gomemlimit)
			if got := cmdutil.SetMemoryLimitFromEnv(); got != c.want {
				t.Fatalf("SetMemoryLimitFromEnv() = %d, want %d", got, c.want)
			}
			want := c.want
			if want == 0 {
				want = math.MaxInt64
			}
			if got := debug.SetMemoryLimit(-1); got != want {
				t.Fatalf("runtime memory limit %d, want %d", got, want)
			}
		})
	}
}

func TestSetGCPercentDefault(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := cmdutil.SetGCPercentDefault(50); got != 50 {
		t.Fatalf("without GOGC: %d, want 50", got)
	}
	if got := debug.SetGCPercent(50); got != 50 {
		t.Fatalf("runtime GC percent %d, want 50", got)
	}
	// GOGC is read by the runtime at start; SetGCPercentDefault leaves
	// whatever is in effect alone when it is set.
	debug.SetGCPercent(80)
	t.Setenv("GOGC", "80")
	if got := cmdutil.SetGCPercentDefault(50); got != 80 {
		t.Fatalf("with GOGC=80: %d, want 80", got)
	}
	if got := debug.SetGCPercent(80); got != 80 {
		t.Fatalf("runtime GC percent %d, want 80 (left alone)", got)
	}
}
