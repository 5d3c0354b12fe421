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

package cmdutil

import (
	"os"
	"runtime/debug"
	"strconv"
)

// MemoryLimitEnv is the environment variable the manifests set, through
// the downward API, to the container's memory limit in bytes.
const MemoryLimitEnv = "LABHOOK_MEMORY_LIMIT"

// SetMemoryLimitFromEnv sets the Go runtime's soft memory limit to 85 % of
// the container's (MemoryLimitEnv), so the garbage collector works harder
// before the kernel's limit is near, unless GOMEMLIMIT says otherwise. It
// returns the limit set, or 0.
func SetMemoryLimitFromEnv() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, err := strconv.ParseInt(os.Getenv(MemoryLimitEnv), 10, 64)
	if err != nil || limit <= 0 {
		return 0
	}
	limit = limit / 100 * 85
	debug.SetMemoryLimit(limit)
	return limit
}

// SetGCPercentDefault sets the garbage collector's target percentage to
// percent unless GOGC says otherwise, and returns the one in effect. A
// process whose heap is mostly a long-lived cache (the manager's informers)
// spends little on collecting it more often and keeps far fewer dead bytes
// beside it; Prometheus lowers its default the same way.
func SetGCPercentDefault(percent int) int {
	if v := os.Getenv("GOGC"); v != "" {
		current := debug.SetGCPercent(100)
		debug.SetGCPercent(current)
		return current
	}
	debug.SetGCPercent(percent)
	return percent
}
