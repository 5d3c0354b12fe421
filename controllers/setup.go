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

// Package controllers holds labhook's reconcilers, one per kind:
// WebhookConfig (secret, test, state), LabResource and LabInterface (status,
// outgoing messages) and OutgoingMessage (delivery, retry, retention).
package controllers

import (
	"fmt"
	"net/netip"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/labhook/labhook/controllers/outbound"
)

// Options configures every reconciler. cmd/manager fills it from flags;
// tests shorten the schedules.
type Options struct {
	// Version goes into the User-Agent header: labhook/<version>.
	Version string
	// CallbackURL is the webhookserver's public incoming URL, sent as callback.
	CallbackURL string
	// AllowHTTP permits http:// receivers.
	AllowHTTP bool
	// AllowedTargetCIDRs are exempt from the SSRF guard.
	AllowedTargetCIDRs []netip.Prefix
	// MessageRetention is how long Delivered messages are kept.
	MessageRetention time.Duration
	// FailedRetention is how long Failed messages are kept.
	FailedRetention time.Duration
	// MaxRetainedMessages bounds Delivered messages kept per namespace.
	MaxRetainedMessages int
	// BacklogWarning is the Pending count past which a config is Backlogged.
	BacklogWarning int
	// InvalidateAfter turns a valid config invalid after this long of continuous failure.
	InvalidateAfter time.Duration
	// MaxConcurrentDeliveries bounds parallel deliveries.
	MaxConcurrentDeliveries int
	// RotationGracePeriod is how long a rotated-out signing secret still signs.
	RotationGracePeriod time.Duration
	// RetrySchedule is the delay before each retry; nil means DefaultRetrySchedule.
	RetrySchedule []time.Duration
	// TestBackoffMin and TestBackoffMax bound re-tests of invalid configs.
	TestBackoffMin, TestBackoffMax time.Duration
	// MonitorInterval is how often the outbox is counted for the pending and
	// failed gauges and the Backlogged condition.
	MonitorInterval time.Duration
}

// DefaultRetrySchedule is SPEC §2.4: at once, 5s, 5m, 30m, 2h, 5h, 10h, 10h.
var DefaultRetrySchedule = []time.Duration{
	0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// DefaultOptions are the manager's defaults.
func DefaultOptions() Options {
	return Options{
		Version:                 "dev",
		MessageRetention:        time.Hour,
		FailedRetention:         7 * 24 * time.Hour,
		MaxRetainedMessages:     1000,
		BacklogWarning:          10000,
		InvalidateAfter:         24 * time.Hour,
		MaxConcurrentDeliveries: 32,
		RotationGracePeriod:     24 * time.Hour,
		RetrySchedule:           DefaultRetrySchedule,
		TestBackoffMin:          time.Minute,
		TestBackoffMax:          time.Hour,
		MonitorInterval:         30 * time.Second,
	}
}

// Setup registers every reconciler, with its field indexers, on mgr.
func Setup(mgr ctrl.Manager, opts Options) error {
	// One outbound client for every sender (tests, deliveries), so the SSRF
	// policy is decided once and connections to a receiver are pooled.
	out := outbound.New(outbound.Options{
		AllowHTTP:    opts.AllowHTTP,
		AllowedCIDRs: opts.AllowedTargetCIDRs,
		UserAgent:    "labhook/" + opts.Version,
	})
	if err := (&WebhookConfigReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("labhook-webhookconfig"),
		Outbound: out, Options: opts,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("webhookconfig controller: %w", err)
	}
	if err := (&LabResourceReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up LabResource controller: %w", err)
	}
	if err := (&LabInterfaceReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up LabInterface controller: %w", err)
	}
	events := mgr.GetEventRecorder("labhook-outbox")
	if err := (&OutgoingMessageReconciler{Client: mgr.GetClient(), Opts: opts, Outbound: out, Recorder: events}).
		SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up OutgoingMessage controller: %w", err)
	}
	if err := mgr.Add(&outboxMonitor{client: mgr.GetClient(), recorder: events, warning: opts.BacklogWarning,
		interval: opts.MonitorInterval, maxRetained: opts.MaxRetainedMessages}); err != nil {
		return fmt.Errorf("add outbox monitor: %w", err)
	}
	return nil
}
