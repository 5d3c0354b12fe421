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
// and the messages their changes owe, sent directly when they can) and
// OutgoingMessage (delivery, retry, retention), with the outbox that
// coordinates them in memory: each config's delivery health, the sends in
// flight, probes of failing configs, and the bound on lab OutgoingMessages.
// The delivery pool (subpackage delivery) runs every request.
package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/delivery"
	"github.com/labhook/labhook/controllers/outbound"
	"github.com/labhook/labhook/controllers/sharding"
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
	// MaxConcurrentDeliveries bounds requests in flight to receivers, all
	// organisations together.
	MaxConcurrentDeliveries int
	// MaxConcurrentDeliveriesPerOrganisation bounds one organisation's
	// requests in flight, whatever its number of configs.
	MaxConcurrentDeliveriesPerOrganisation int
	// MaxConcurrentRequestsPerConfig bounds requests in flight to one
	// config whose spec.maxConcurrentRequests is unset.
	MaxConcurrentRequestsPerConfig int
	// MaxPendingLabMessages bounds the Pending OutgoingMessages of lab
	// objects per config; beyond it, objects hold what they owe.
	MaxPendingLabMessages int
	// ProbeInterval is how often a failing config's oldest Pending message
	// is retried early.
	ProbeInterval time.Duration
	// RecordDeliveredMessages makes every lab message an OutgoingMessage,
	// even when it could be sent directly.
	RecordDeliveredMessages bool
	// RotationGracePeriod is how long a rotated-out signing secret still signs.
	RotationGracePeriod time.Duration
	// RetrySchedule is the delay before each retry; nil means DefaultRetrySchedule.
	RetrySchedule []time.Duration
	// TestBackoffMin and TestBackoffMax bound re-tests of invalid configs.
	TestBackoffMin, TestBackoffMax time.Duration
	// MonitorInterval is how often the outbox is counted for the pending,
	// failed and owed gauges, the Backlogged condition and deliveries.owed.
	MonitorInterval time.Duration
	// Organisations, when set, limits the reconcilers' uncached reads to
	// the organisations of this manager's shard (the manager's cache is
	// limited with Organisations.NewCache). Nil reads every namespace.
	Organisations *sharding.Organisations
}

// DefaultRetrySchedule is SPEC §2.4: at once, 5s, 5m, 30m, 2h, 5h, 10h, 10h.
var DefaultRetrySchedule = []time.Duration{
	0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// DefaultOptions are the manager's defaults.
func DefaultOptions() Options {
	return Options{
		Version:                                "dev",
		MessageRetention:                       time.Hour,
		FailedRetention:                        7 * 24 * time.Hour,
		MaxRetainedMessages:                    1000,
		BacklogWarning:                         10000,
		InvalidateAfter:                        24 * time.Hour,
		MaxConcurrentDeliveries:                256,
		MaxConcurrentDeliveriesPerOrganisation: 64,
		MaxConcurrentRequestsPerConfig:         32,
		MaxPendingLabMessages:                  1000,
		ProbeInterval:                          10 * time.Second,
		RotationGracePeriod:                    24 * time.Hour,
		RetrySchedule:                          DefaultRetrySchedule,
		TestBackoffMin:                         time.Minute,
		TestBackoffMax:                         time.Hour,
		MonitorInterval:                        30 * time.Second,
	}
}

// Setup registers every reconciler, with its field indexers, the delivery
// pool and the outbox's prober and monitor, on mgr.
func Setup(mgr ctrl.Manager, opts Options) error {
	// One outbound client for every sender (tests, deliveries), so the SSRF
	// policy is decided once and connections to a receiver are pooled.
	out := outbound.New(outbound.Options{
		AllowHTTP:    opts.AllowHTTP,
		AllowedCIDRs: opts.AllowedTargetCIDRs,
		UserAgent:    "labhook/" + opts.Version,
	})
	pool := delivery.New(out, delivery.Options{
		MaxInFlight:                opts.MaxConcurrentDeliveries,
		MaxInFlightPerOrganisation: opts.MaxConcurrentDeliveriesPerOrganisation,
		MaxInFlightPerConfig:       opts.MaxConcurrentRequestsPerConfig,
	})
	if err := mgr.Add(pool); err != nil {
		return fmt.Errorf("add delivery pool: %w", err)
	}
	events := mgr.GetEventRecorder("labhook-outbox")
	ob := newOutbox(mgr, opts, pool, events)
	apiReader := mgr.GetAPIReader()
	if opts.Organisations != nil {
		// A reconcile woken by a timer for an organisation that moved to
		// another shard reads NotFound, and does nothing.
		apiReader = opts.Organisations.Reader(apiReader)
		ob.reader = apiReader
	}
	if err := ob.labPending.watch(context.Background(), mgr); err != nil {
		return err
	}
	if err := (&WebhookConfigReconciler{
		Client: mgr.GetClient(), APIReader: apiReader, Recorder: mgr.GetEventRecorder("labhook-webhookconfig"),
		Outbound: out, Options: opts,
		Throttle: func(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) error {
			return pool.Wait(ctx, client.ObjectKeyFromObject(whc), limits(whc))
		},
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("webhookconfig controller: %w", err)
	}
	if err := (&LabResourceReconciler{Client: mgr.GetClient(), outbox: ob}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up LabResource controller: %w", err)
	}
	if err := (&LabInterfaceReconciler{Client: mgr.GetClient(), outbox: ob}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up LabInterface controller: %w", err)
	}
	if err := (&OutgoingMessageReconciler{Client: mgr.GetClient(), Opts: opts, Recorder: events, outbox: ob}).
		SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up OutgoingMessage controller: %w", err)
	}
	if err := mgr.Add(ob); err != nil {
		return fmt.Errorf("add outbox prober: %w", err)
	}
	if err := mgr.Add(&outboxMonitor{client: mgr.GetClient(), recorder: events, warning: opts.BacklogWarning,
		interval: opts.MonitorInterval, maxRetained: opts.MaxRetainedMessages, outbox: ob}); err != nil {
		return fmt.Errorf("add outbox monitor: %w", err)
	}
	return nil
}
