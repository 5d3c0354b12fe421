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

package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Delivery metrics (SPEC §5), in controller-runtime's registry so the
// manager's /metrics serves them. Labels are bounded: result is "success" or
// one of the outbound failure reasons (HTTPStatus, Timeout, TLSError,
// DNSError, ConnectionError, RefusedByPolicy, SecretError); via is one of
// the via* constants; namespace is one per organisation.
var (
	deliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "labhook_deliveries_total",
		Help: "Delivery attempts, by result and by path: direct (a lab object's message sent without an OutgoingMessage), outgoingmessage, or probe (an early retry of a failing config).",
	}, []string{"result", "via"})
	deliveryDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "labhook_delivery_duration_seconds",
		Help:    "Duration of one delivery attempt, from connecting to the response.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	messagesPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_messages_pending",
		Help: "OutgoingMessages in phase Pending, as last counted.",
	})
	messagesFailed = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_messages_failed",
		Help: "OutgoingMessages in phase Failed, as last counted.",
	})
	messagesOwed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "labhook_messages_owed",
		Help: "LabResources and LabInterfaces of an organisation that owe a message they hold themselves (not in flight), as last counted.",
	}, []string{"namespace"})
)

func init() {
	metrics.Registry.MustRegister(deliveriesTotal, deliveryDuration, messagesPending, messagesFailed, messagesOwed)
}

// resultSuccess is the result label of a delivered attempt.
const resultSuccess = "success"

// Values of the via label.
const (
	viaDirect          = "direct"
	viaOutgoingMessage = "outgoingmessage"
	viaProbe           = "probe"
)
