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
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/delivery"
	"github.com/labhook/labhook/controllers/outbound"
)

// configHealth is the manager's view of each WebhookConfig's receiver,
// kept from the outcome of every request sent to it (direct sends,
// OutgoingMessage attempts, probes):
//
//   - accepting: the last answer was 2xx (or nothing failed yet);
//   - failing since the first failed request after the last success;
//     lab objects then hold what they owe, and the prober retries one
//     message every ProbeInterval;
//   - paused until a Retry-After has passed (429 or 503);
//   - gone: the receiver answered 410; the config is made invalid with
//     reason EndpointGone and nothing more is sent until it is valid again.
//
// It lives in memory and is rebuilt from status.deliveries (failingSince)
// and the Ready condition after a restart. The WebhookConfig status is
// written on transitions only (rollup), never per delivery.
type configHealth struct {
	o *outbox

	mu    sync.Mutex
	byKey map[types.NamespacedName]*healthState
	// rollups remembers when the delivery stats of a WebhookConfig were last
	// written, so a burst of concurrent deliveries writes them once.
	rollups sync.Map // types.NamespacedName → rollupMark
}

type healthState struct {
	uid          types.UID // a config recreated under the same name starts afresh
	failingSince time.Time // zero: accepting
	pausedUntil  time.Time
	goneAt       time.Time // zero: not gone
	lastProbe    time.Time
	probeUID     types.UID // the object granted the next probe
	probeUntil   time.Time
	lastProbed   types.UID // the object probed last, skipped next time if another waits
}

type rollupMark struct {
	at time.Time
	ok bool
}

func newConfigHealth(o *outbox) *configHealth {
	return &configHealth{o: o, byKey: map[types.NamespacedName]*healthState{}}
}

// state returns whc's health, seeded from its status the first time. Call
// with h.mu held.
func (h *configHealth) state(whc *labhookv1alpha1.WebhookConfig) *healthState {
	key := client.ObjectKeyFromObject(whc)
	s := h.byKey[key]
	if s != nil && s.uid == whc.UID {
		if !s.goneAt.IsZero() && testedAfter(whc, s.goneAt) {
			// Re-tested (url changed, or a test was requested) since.
			*s = healthState{uid: whc.UID}
		}
		return s
	}
	s = &healthState{uid: whc.UID}
	if d := whc.Status.Deliveries; d != nil && d.FailingSince != nil && !testedAfter(whc, d.FailingSince.Time) {
		s.failingSince = d.FailingSince.Time
	}
	if isGone(whc) {
		s.goneAt = time.Now()
		if c := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil {
			s.goneAt = c.LastTransitionTime.Time
		}
	}
	h.byKey[key] = s
	return s
}

// testedAfter reports whether a test of whc passed after t.
func testedAfter(whc *labhookv1alpha1.WebhookConfig, t time.Time) bool {
	lt := whc.Status.LastTest
	return whc.Status.State == labhookv1alpha1.StateValid && lt != nil && lt.Error == "" && lt.Time.After(t)
}

// isGone reports whether whc was made invalid by a 410 Gone.
func isGone(whc *labhookv1alpha1.WebhookConfig) bool {
	c := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionReady)
	return whc.Status.State == labhookv1alpha1.StateInvalid && c != nil && c.Reason == labhookv1alpha1.ReasonEndpointGone
}

// accepting reports whether whc's receiver takes deliveries now: not
// failing, not paused, not gone.
func (h *configHealth) accepting(whc *labhookv1alpha1.WebhookConfig) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.state(whc)
	return s.failingSince.IsZero() && s.goneAt.IsZero() && !time.Now().Before(s.pausedUntil)
}

func (h *configHealth) gone(whc *labhookv1alpha1.WebhookConfig) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.state(whc).goneAt.IsZero()
}

// probeDue reports whether the failing whc should be probed now.
func (h *configHealth) probeDue(whc *labhookv1alpha1.WebhookConfig, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.state(whc)
	last := s.lastProbe
	if s.failingSince.After(last) {
		last = s.failingSince
	}
	return !s.failingSince.IsZero() && s.goneAt.IsZero() && !now.Before(s.pausedUntil) &&
		!now.Before(last.Add(h.o.opts.ProbeInterval)) && (s.probeUID == "" || !now.Before(s.probeUntil))
}

// grantProbe lets uid send once to the failing whc ahead of its schedule.
func (h *configHealth) grantProbe(whc *labhookv1alpha1.WebhookConfig, uid types.UID, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.state(whc)
	s.lastProbe, s.probeUID, s.probeUntil, s.lastProbed = now, uid, now.Add(h.o.opts.ProbeInterval), uid
}

// takeProbe consumes uid's probe grant, if it has one.
func (h *configHealth) takeProbe(whc *labhookv1alpha1.WebhookConfig, uid types.UID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.state(whc)
	if s.probeUID != uid || !time.Now().Before(s.probeUntil) {
		return false
	}
	s.probeUID = ""
	return true
}

// lastProbed is the object probed last, which the prober skips when another
// one waits, so one message its receiver rejects cannot keep the config
// failing.
func (h *configHealth) lastProbed(whc *labhookv1alpha1.WebhookConfig) types.UID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state(whc).lastProbed
}

// reset forgets failures once whc passed a test, and makes what is owed
// to it due.
func (h *configHealth) reset(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) {
	h.mu.Lock()
	h.byKey[client.ObjectKeyFromObject(whc)] = &healthState{uid: whc.UID}
	h.mu.Unlock()
	h.o.due(ctx, whc)
}

// observe records the outcome of one request to whc: metrics, health,
// delivery stats on the WebhookConfig, and, on a 410, its invalidation.
// When a failing config answers 2xx, everything owed to it becomes due.
func (h *configHealth) observe(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, out delivery.Outcome, via, msgID string) {
	if out.NotSent {
		return
	}
	res := out.Result
	deliveryDuration.Observe(res.Duration.Seconds())
	if res.OK() {
		deliveriesTotal.WithLabelValues(resultSuccess, via).Inc()
	} else {
		deliveriesTotal.WithLabelValues(res.Reason, via).Inc()
	}
	h.mu.Lock()
	s := h.state(whc)
	recovered, newlyGone := false, false
	switch {
	case res.OK():
		recovered = !s.failingSince.IsZero()
		s.failingSince = time.Time{}
	case res.HTTPStatus == http.StatusGone:
		newlyGone = s.goneAt.IsZero()
		s.goneAt = time.Now()
	default:
		if s.failingSince.IsZero() {
			s.failingSince = out.Start
		}
		if res.RetryAfter > 0 {
			if until := time.Now().Add(res.RetryAfter); until.After(s.pausedUntil) {
				s.pausedUntil = until
			}
		}
	}
	h.mu.Unlock()
	h.rollup(ctx, whc, res.OK(), out.Start, attemptError(res))
	if newlyGone {
		h.markGone(ctx, whc, msgID)
		h.o.due(ctx, whc)
	}
	if recovered {
		h.o.due(ctx, whc)
	}
}

// markGone makes whc invalid with reason EndpointGone, once, with a
// Warning event. The WebhookConfig controller does not re-test such a
// config on its own: only a new url or an explicit test request does.
func (h *configHealth) markGone(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, msgID string) {
	msg := fmt.Sprintf("the receiver answered 410 Gone to message %s: nothing more is sent to it until spec.url changes "+
		"or a test is requested (kubectl annotate --overwrite whc/%s %s=$(date +%%s))", msgID, whc.Name, labhookv1alpha1.AnnotationTestRequestedAt)
	var cur labhookv1alpha1.WebhookConfig
	if err := h.o.reader.Get(ctx, client.ObjectKeyFromObject(whc), &cur); err != nil || cur.UID != whc.UID {
		if client.IgnoreNotFound(err) != nil {
			log.FromContext(ctx).Info("could not mark a WebhookConfig gone", "webhookConfig", whc.Name, "error", err.Error())
		}
		return
	}
	changed, err := writeStatus(ctx, h.statusWriter(), &cur, func(w *labhookv1alpha1.WebhookConfig) bool {
		if isGone(w) {
			return false
		}
		w.Status.State = labhookv1alpha1.StateInvalid
		w.Status.NextTestTime = nil
		setCondition(w, labhookv1alpha1.ConditionReady, metav1.ConditionFalse, labhookv1alpha1.ReasonEndpointGone, msg)
		summarise(w)
		return true
	})
	if err != nil {
		log.FromContext(ctx).Info("could not mark a WebhookConfig gone", "webhookConfig", whc.Name, "error", err.Error())
		return
	}
	if changed {
		h.o.recorder.Eventf(whc, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonEndpointGone, "Deliver", "Invalid: %s", msg)
	}
}

// statusWriter writes WebhookConfig status for the outbox, retrying
// conflicts on a fresh read like the WebhookConfig reconciler does.
func (h *configHealth) statusWriter() statusWriter {
	return statusWriter{Client: h.o.client, Reader: h.o.reader}
}

// rollup records delivery health on the WebhookConfig on transitions only:
// the first success, the first failure after a success, recovery, and while
// failing at most every rollupInterval. A valid config failing for
// InvalidateAfter becomes invalid (Ready False, DeliveryFailing); its
// messages stay Pending until it is valid again.
func (h *configHealth) rollup(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, ok bool, at time.Time, errMsg string) {
	key := client.ObjectKeyFromObject(whc)
	d := whc.Status.Deliveries
	failing := d != nil && (d.FailingSince != nil || d.ConsecutiveFailures > 0)
	if v, seen := h.rollups.Load(key); seen {
		m := v.(rollupMark)
		if m.ok == ok && (ok || at.Sub(m.at) < h.rollupInterval()) {
			return
		}
	}
	if ok && d != nil && d.LastSuccessTime != nil && !failing {
		return
	}
	if !ok && failing && d.LastFailureTime != nil && at.Sub(d.LastFailureTime.Time) < h.rollupInterval() &&
		(whc.Status.State != labhookv1alpha1.StateValid || at.Sub(failingSince(whc, *d)) < h.o.opts.InvalidateAfter) {
		return
	}
	h.rollups.Store(key, rollupMark{at: at, ok: ok})

	// The stats are this writer's own fields of status.deliveries (owed and
	// pending are the monitor's); after a conflict they are set again on
	// the fresh copy, and invalidation is decided again from it.
	var stats labhookv1alpha1.DeliveryStats
	invalidated := false
	_, err := writeStatus(ctx, h.statusWriter(), whc, func(w *labhookv1alpha1.WebhookConfig) bool {
		if w.Status.Deliveries == nil {
			w.Status.Deliveries = &labhookv1alpha1.DeliveryStats{}
		}
		stats = *w.Status.Deliveries.DeepCopy()
		t := metav1.NewTime(at)
		if ok {
			stats.LastSuccessTime, stats.ConsecutiveFailures, stats.FailingSince = &t, 0, nil
		} else {
			stats.LastFailureTime, stats.LastError = &t, errMsg
			stats.ConsecutiveFailures++
			if stats.FailingSince == nil {
				stats.FailingSince = &t
			}
		}
		cur := w.Status.Deliveries
		cur.LastSuccessTime, cur.LastFailureTime, cur.LastError = stats.LastSuccessTime, stats.LastFailureTime, stats.LastError
		cur.ConsecutiveFailures, cur.FailingSince = stats.ConsecutiveFailures, stats.FailingSince
		invalidated = !ok && h.invalidate(w, stats, at, errMsg)
		return true
	})
	if err != nil {
		// Stats are best effort: the next transition writes them again.
		h.rollups.Delete(key)
		log.FromContext(ctx).Info("could not record delivery stats", "webhookConfig", whc.Name, "error", err.Error())
		return
	}
	if invalidated {
		h.o.recorder.Eventf(whc, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonDeliveryFailing, "Invalidate",
			"deliveries have failed for more than %s; the config is invalid until a test passes", h.o.opts.InvalidateAfter)
	}
}

// invalidate turns a valid whc invalid when its deliveries have failed for
// InvalidateAfter, and reports whether it did.
func (h *configHealth) invalidate(whc *labhookv1alpha1.WebhookConfig, stats labhookv1alpha1.DeliveryStats, at time.Time, errMsg string) bool {
	since := failingSince(whc, stats)
	if whc.Status.State != labhookv1alpha1.StateValid || at.Sub(since) < h.o.opts.InvalidateAfter {
		return false
	}
	whc.Status.State = labhookv1alpha1.StateInvalid
	setCondition(whc, labhookv1alpha1.ConditionReady, metav1.ConditionFalse, labhookv1alpha1.ReasonDeliveryFailing,
		fmt.Sprintf("deliveries have failed since %s: %s", since.UTC().Format(time.RFC3339), errMsg))
	summarise(whc)
	return true
}

// failingSince is when the current run of failures began, for
// invalidation: a test that passed after the failures began (the config was
// made valid again) restarts the clock, so a config is not invalidated again
// at its first failure after a re-test.
func failingSince(whc *labhookv1alpha1.WebhookConfig, stats labhookv1alpha1.DeliveryStats) time.Time {
	if stats.FailingSince == nil {
		return time.Now()
	}
	since := stats.FailingSince.Time
	if t := whc.Status.LastTest; t != nil && t.Error == "" && t.Time.After(since) {
		since = t.Time.Time
	}
	return since
}

func (h *configHealth) rollupInterval() time.Duration {
	return min(time.Minute, max(h.o.opts.InvalidateAfter/4, 100*time.Millisecond))
}

func attemptError(res outbound.Result) string {
	if res.OK() {
		return ""
	}
	if res.Err != nil {
		return fmt.Sprintf("%s: %v", res.Reason, res.Err)
	}
	return fmt.Sprintf("%s: HTTP %d", res.Reason, res.HTTPStatus)
}
