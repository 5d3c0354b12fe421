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

package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The pool's gauges, in controller-runtime's registry so the manager's
// /metrics serves them. They have no labels: per-organisation figures are
// the controllers' (labhook_messages_owed).
var (
	queued = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_delivery_queued",
		Help: "Deliveries waiting in the pool for their turn (a config's concurrency, rate limit or Retry-After).",
	})
	inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_delivery_in_flight",
		Help: "Deliveries in flight.",
	})
)

func init() {
	metrics.Registry.MustRegister(queued, inFlight)
}
