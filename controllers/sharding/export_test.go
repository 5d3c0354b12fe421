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

package sharding

import dto "github.com/prometheus/client_model/go"

// Relists returns labhook_shard_relists_total, for tests.
func Relists() float64 {
	var m dto.Metric
	if err := relists.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// StaleScopes returns how many of o's informers still have to list again.
func StaleScopes(o *Organisations) int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	n := 0
	for _, s := range o.scopes {
		s.mu.Lock()
		if s.stale {
			n++
		}
		s.mu.Unlock()
	}
	return n
}
