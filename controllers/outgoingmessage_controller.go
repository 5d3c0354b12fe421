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
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/controllers/outbound"
)

// Field indexes of OutgoingMessages.
const (
	// indexMessageEntity holds every spec.entityIDs value, so the messages
	// of one entity are a cache lookup.
	indexMessageEntity = "spec.entityIDs"
	// indexMessagePhase is status.phase, with "" (not reconciled yet) as Pending.
	indexMessagePhase = "status.phase"
)

// historyLimit bounds status.history.
const historyLimit = 20

// OutgoingMessageReconciler is the durable outbox: it delivers each
// OutgoingMessage to its WebhookConfig at least once, in creation order per
// entity and config, retries on the schedule, and deletes what retention no
// longer needs.
//
// Target: spec.webhookConfigRef, else the namespace default (the oldest
// WebhookConfig with default: true). A message waits as Pending, with a
// Ready=False condition saying why, while the target is missing or not valid;
// a WebhookConfig becoming valid enqueues its Pending messages.
//
// eventTypes: a message whose type the target excludes is marked Failed with
// reason FilteredByEventTypes, without an attempt or event. The filter is a
// deliberate choice of the config's owner, not a transient condition: left
// Pending, the message would block every later message of its entities and
// grow the backlog forever. It is kept for FailedRetention and can be sent
// after the filter changes with the redeliver annotation.
//
// Writes: on the happy path a message costs exactly one API write, the
// status patch to Delivered. Waiting and retrying add one status write per
// state change or attempt; WebhookConfig delivery stats are written on
// transitions only (first failure, recovery), not per delivery.
type OutgoingMessageReconciler struct {
	client.Client
	Opts     Options
	Outbound *outbound.Client
	Recorder recorder.EventRecorder

	// written remembers, per message UID, the status this reconciler wrote
	// last. Until the cache shows it, a reconcile of that message would see
	// an older status and could POST again; it waits for the watch event of
	// its own write instead.
	written sync.Map // types.UID → writtenMark
	// rollups remembers when the delivery stats of a WebhookConfig were last
	// written, so a burst of concurrent deliveries writes them once.
	rollups sync.Map // types.NamespacedName → rollupMark
}

type writtenMark struct {
	attempts  int32
	redeliver string
}

type rollupMark struct {
	at time.Time
	ok bool
}

// +kubebuilder:rbac:groups=labhook.io,resources=outgoingmessages,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=labhook.io,resources=outgoingmessages/status,verbs=get;patch
// +kubebuilder:rbac:groups=labhook.io,resources=webhookconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=labhook.io,resources=webhookconfigs/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one message along Pending → Delivered | Failed and
// applies retention, writing status at most once.
func (r *OutgoingMessageReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	om := &labhookv1alpha1.OutgoingMessage{}
	if err := r.Get(ctx, req.NamespacedName, om); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if r.cacheIsBehind(om) {
		// The watch event of our own last write is on its way and will
		// trigger the next reconcile.
		return ctrl.Result{}, nil
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("messageID", om.Name))
	orig := om.DeepCopy()
	r.handleRedeliver(om)

	var (
		res ctrl.Result
		err error
	)
	switch om.Status.Phase {
	case labhookv1alpha1.MessageDelivered:
		return r.retainDelivered(ctx, om)
	case labhookv1alpha1.MessageFailed:
		return r.retainFailed(ctx, om)
	default:
		res, err = r.deliver(ctx, om)
	}
	if werr := r.writeStatus(ctx, orig, om); werr != nil {
		return ctrl.Result{}, werr
	}
	if c := meta.FindStatusCondition(om.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil &&
		c.Reason == labhookv1alpha1.ReasonExhausted && orig.Status.Phase != labhookv1alpha1.MessageFailed {
		// Once per exhausted round, after the Failed phase is recorded.
		r.Recorder.Eventf(om, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonExhausted, "Deliver",
			"gave up after %d attempts: %s", om.Status.Attempts, om.Status.LastAttempt.Error)
	}
	return res, err
}

// cacheIsBehind reports whether the cached om predates this reconciler's
// last status write to it.
func (r *OutgoingMessageReconciler) cacheIsBehind(om *labhookv1alpha1.OutgoingMessage) bool {
	v, ok := r.written.Load(om.UID)
	if !ok {
		return false
	}
	m := v.(writtenMark)
	if om.Status.LastHandledRedeliverRequest == m.redeliver && om.Status.Attempts < m.attempts {
		return true
	}
	r.written.Delete(om.UID)
	return false
}

func (r *OutgoingMessageReconciler) writeStatus(ctx context.Context, orig, om *labhookv1alpha1.OutgoingMessage) error {
	om.Status.ObservedGeneration = om.Generation
	if err := patchStatus(ctx, r.Client, orig, om, orig.Status, om.Status); err != nil {
		return fmt.Errorf("record delivery of %s: %w", om.Name, err)
	}
	if om.Status.Attempts > orig.Status.Attempts {
		r.written.Store(om.UID, writtenMark{attempts: om.Status.Attempts, redeliver: om.Status.LastHandledRedeliverRequest})
	}
	return nil
}

// handleRedeliver turns a new labhook.io/redeliver-requested-at value on a
// Delivered or Failed message into a fresh round of attempts.
func (r *OutgoingMessageReconciler) handleRedeliver(om *labhookv1alpha1.OutgoingMessage) {
	v := om.Annotations[labhookv1alpha1.AnnotationRedeliverRequestedAt]
	if v == "" || v == om.Status.LastHandledRedeliverRequest {
		return
	}
	om.Status.LastHandledRedeliverRequest = v
	if om.Status.Phase == labhookv1alpha1.MessageDelivered || om.Status.Phase == labhookv1alpha1.MessageFailed {
		om.Status.Phase = labhookv1alpha1.MessagePending
		om.Status.Attempts = 0
		om.Status.NextAttemptTime = nil
		om.Status.DeliveredTime = nil
	}
}

// deliver makes one step for a Pending message: find a usable target, wait
// for its turn and its next attempt time, then POST once and record it.
func (r *OutgoingMessageReconciler) deliver(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (ctrl.Result, error) {
	whc, why, err := r.resolveTarget(ctx, om)
	if err != nil {
		return ctrl.Result{}, err
	}
	if whc == nil {
		setPending(om, labhookv1alpha1.ReasonNoUsableConfig, why)
		return ctrl.Result{}, nil
	}
	om.Status.Target = whc.Name
	if len(whc.Spec.EventTypes) > 0 && !slices.Contains(whc.Spec.EventTypes, om.Spec.Type) {
		om.Status.Phase = labhookv1alpha1.MessageFailed
		om.Status.NextAttemptTime = nil
		setReady(om, metav1.ConditionFalse, labhookv1alpha1.ReasonWebhookConfigFilter,
			fmt.Sprintf("WebhookConfig %s does not take %s messages (spec.eventTypes)", whc.Name, om.Spec.Type))
		return ctrl.Result{}, nil
	}
	if whc.Status.State != labhookv1alpha1.StateValid {
		setPending(om, labhookv1alpha1.ReasonNoUsableConfig,
			fmt.Sprintf("WebhookConfig %s is %s, not valid", whc.Name, stateOrNew(whc.Status.State)))
		return ctrl.Result{}, nil
	}
	earlier, err := r.earlierPending(ctx, om)
	if err != nil {
		return ctrl.Result{}, err
	}
	if earlier != "" {
		setPending(om, labhookv1alpha1.ReasonWaitingForEarlier,
			fmt.Sprintf("waiting for %s, an earlier message about the same entity", earlier))
		return ctrl.Result{}, nil
	}
	now := time.Now()
	if next := om.Status.NextAttemptTime; next != nil && next.After(now) {
		return ctrl.Result{RequeueAfter: next.Sub(now)}, nil
	}
	return r.attempt(ctx, om, whc)
}

// attempt POSTs the message once and records the outcome.
func (r *OutgoingMessageReconciler) attempt(ctx context.Context, om *labhookv1alpha1.OutgoingMessage, whc *labhookv1alpha1.WebhookConfig) (ctrl.Result, error) {
	req, err := r.request(ctx, om, whc)
	if err != nil {
		setPending(om, labhookv1alpha1.ReasonSecretError, err.Error())
		return ctrl.Result{}, err
	}
	start := time.Now()
	res := r.Outbound.Send(ctx, req)
	if ctx.Err() != nil {
		// The manager is stopping: the outcome is unknown and the next
		// leader will send again (at least once).
		return ctrl.Result{}, ctx.Err()
	}
	deliveryDuration.Observe(res.Duration.Seconds())
	a := labhookv1alpha1.DeliveryAttempt{Time: metav1.NewTime(start), HTTPStatus: int32(res.HTTPStatus),
		Duration: metav1.Duration{Duration: res.Duration}}
	if !res.OK() {
		a.Error = attemptError(res)
	}
	st := &om.Status
	st.Attempts++
	st.LastAttempt = a.DeepCopy()
	st.History = append(st.History, a)
	if n := len(st.History); n > historyLimit {
		st.History = slices.Clone(st.History[n-historyLimit:])
	}
	if res.OK() {
		deliveriesTotal.WithLabelValues(resultSuccess).Inc()
		r.rollup(ctx, whc, true, start, "")
		st.Phase = labhookv1alpha1.MessageDelivered
		st.DeliveredTime = &a.Time
		st.NextAttemptTime = nil
		setReady(om, metav1.ConditionTrue, labhookv1alpha1.ReasonDelivered,
			fmt.Sprintf("delivered to %s (HTTP %d)", whc.Name, res.HTTPStatus))
		return ctrl.Result{RequeueAfter: r.Opts.MessageRetention}, nil
	}
	deliveriesTotal.WithLabelValues(res.Reason).Inc()
	r.rollup(ctx, whc, false, start, a.Error)
	return r.scheduleRetry(om, whc, res.RetryAfter), nil
}

// request builds the signed POST of om to whc.
func (r *OutgoingMessageReconciler) request(ctx context.Context, om *labhookv1alpha1.OutgoingMessage, whc *labhookv1alpha1.WebhookConfig) (outbound.Request, error) {
	secrets, err := SigningSecrets(ctx, r.Client, whc)
	if err != nil {
		return outbound.Request{}, fmt.Errorf("signing secret of WebhookConfig %s: %w", whc.Name, err)
	}
	authz, err := AuthorizationValue(ctx, r.Client, whc)
	if err != nil {
		return outbound.Request{}, fmt.Errorf("authorization of WebhookConfig %s: %w", whc.Name, err)
	}
	body, err := renderBody(om, r.Opts.CallbackURL)
	if err != nil {
		return outbound.Request{}, fmt.Errorf("render %s: %w", om.Name, err)
	}
	timeout := outbound.DefaultTimeout
	if whc.Spec.TimeoutSeconds > 0 {
		timeout = time.Duration(whc.Spec.TimeoutSeconds) * time.Second
	}
	return outbound.Request{URL: whc.Spec.URL, MessageID: om.Name, Body: body,
		Secrets: secrets, Authorization: authz, Timeout: timeout}, nil
}

// scheduleRetry sets the next attempt after a failed one, or marks the
// message Failed when the config's retry bounds are reached.
func (r *OutgoingMessageReconciler) scheduleRetry(om *labhookv1alpha1.OutgoingMessage, whc *labhookv1alpha1.WebhookConfig, retryAfter time.Duration) ctrl.Result {
	st := &om.Status
	maxAttempts, maxAge := retryBounds(whc)
	// status keeps times to the second: round up, so the stored time is
	// never earlier than the schedule asks.
	next := ceilSecond(time.Now().Add(r.retryDelay(st.Attempts, retryAfter)))
	if st.Attempts >= maxAttempts || next.After(roundStart(st).Add(maxAge)) {
		st.Phase = labhookv1alpha1.MessageFailed
		st.NextAttemptTime = nil
		setReady(om, metav1.ConditionFalse, labhookv1alpha1.ReasonExhausted,
			fmt.Sprintf("gave up after %d attempts: %s", st.Attempts, st.LastAttempt.Error))
		return ctrl.Result{RequeueAfter: r.Opts.FailedRetention}
	}
	st.Phase = labhookv1alpha1.MessagePending
	st.NextAttemptTime = &metav1.Time{Time: next}
	setReady(om, metav1.ConditionFalse, labhookv1alpha1.ReasonRetrying, fmt.Sprintf("attempt %d failed: %s; next attempt at %s",
		st.Attempts, st.LastAttempt.Error, next.UTC().Format(time.RFC3339)))
	return ctrl.Result{RequeueAfter: time.Until(next)}
}

// retryDelay is the wait before the attempt after attempts: the schedule's
// entry with ±10% jitter, or Retry-After when the receiver asked for longer.
func (r *OutgoingMessageReconciler) retryDelay(attempts int32, retryAfter time.Duration) time.Duration {
	sched := r.Opts.RetrySchedule
	if len(sched) == 0 {
		sched = DefaultRetrySchedule
	}
	d := sched[min(int(attempts), len(sched)-1)]
	d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return max(d, retryAfter)
}

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// retryBounds are the target's retry limits, with the CRD defaults.
func retryBounds(whc *labhookv1alpha1.WebhookConfig) (int32, time.Duration) {
	maxAttempts, maxAge := whc.Spec.Retry.MaxAttempts, 24*time.Hour
	if maxAttempts <= 0 {
		maxAttempts = 8
	}
	if d, err := time.ParseDuration(whc.Spec.Retry.MaxAge); err == nil && d > 0 {
		maxAge = d
	}
	return maxAttempts, maxAge
}

// roundStart is when the current round of attempts began: its first
// attempt, or the creation time when history no longer holds it. maxAge
// counts from there, so a message that waited for a usable config is not
// failed before it was ever tried.
func roundStart(st *labhookv1alpha1.OutgoingMessageStatus) time.Time {
	if i := len(st.History) - int(st.Attempts); i >= 0 && i < len(st.History) {
		return st.History[i].Time.Time
	}
	return st.LastAttempt.Time.Time
}

func attemptError(res outbound.Result) string {
	if res.Err != nil {
		return fmt.Sprintf("%s: %v", res.Reason, res.Err)
	}
	return fmt.Sprintf("%s: HTTP %d", res.Reason, res.HTTPStatus)
}

// renderBody is the seed 001 body. The timestamp is the creation time, so
// every attempt sends the same bytes.
func renderBody(om *labhookv1alpha1.OutgoingMessage, callback string) ([]byte, error) {
	var raw json.RawMessage
	if om.Spec.Context != nil {
		raw = om.Spec.Context.Raw
	}
	return wire.OutgoingMessage{
		MessageID: om.Name,
		Type:      string(om.Spec.Type),
		Status:    om.Spec.Status,
		EntityIDs: om.Spec.EntityIDs,
		Timestamp: wire.FormatTimestamp(om.CreationTimestamp.Time),
		Context:   raw,
		Callback:  callback,
	}.Marshal()
}

// resolveTarget finds the WebhookConfig a message goes to; nil with a
// reason when there is none.
func (r *OutgoingMessageReconciler) resolveTarget(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (*labhookv1alpha1.WebhookConfig, string, error) {
	if ref := om.Spec.WebhookConfigRef; ref != nil {
		whc := &labhookv1alpha1.WebhookConfig{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: om.Namespace, Name: ref.Name}, whc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Sprintf("WebhookConfig %s not found", ref.Name), nil
			}
			return nil, "", err
		}
		return whc, "", nil
	}
	whc, err := DefaultWebhookConfig(ctx, r.Client, om.Namespace)
	if err != nil || whc == nil {
		return nil, "no WebhookConfig in this namespace is the default (spec.default: true)", err
	}
	return whc, "", nil
}

// earlierPending returns the name of an older Pending message that shares
// an entity id and a webhookConfigRef with om, or "".
func (r *OutgoingMessageReconciler) earlierPending(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (string, error) {
	for _, id := range om.Spec.EntityIDs {
		var list labhookv1alpha1.OutgoingMessageList
		if err := r.List(ctx, &list, client.InNamespace(om.Namespace), client.MatchingFields{indexMessageEntity: id},
			client.UnsafeDisableDeepCopy); err != nil {
			return "", fmt.Errorf("list messages of entity %s: %w", id, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if o.UID != om.UID && isPending(o) && refName(o) == refName(om) && before(o, om) {
				return o.Name, nil
			}
		}
	}
	return "", nil
}

func isPending(om *labhookv1alpha1.OutgoingMessage) bool {
	return om.Status.Phase == "" || om.Status.Phase == labhookv1alpha1.MessagePending
}

func refName(om *labhookv1alpha1.OutgoingMessage) string {
	if om.Spec.WebhookConfigRef == nil {
		return ""
	}
	return om.Spec.WebhookConfigRef.Name
}

// before orders messages by creation: creationTimestamp, then the
// producer's created-at annotation (sub-second), then name.
func before(a, b *labhookv1alpha1.OutgoingMessage) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	ca, cb := a.Annotations[labhookv1alpha1.AnnotationCreatedAt], b.Annotations[labhookv1alpha1.AnnotationCreatedAt]
	if ca != cb {
		return ca < cb
	}
	return a.Name < b.Name
}

func stateOrNew(s labhookv1alpha1.WebhookConfigState) labhookv1alpha1.WebhookConfigState {
	if s == "" {
		return labhookv1alpha1.StateNew
	}
	return s
}

func setPending(om *labhookv1alpha1.OutgoingMessage, reason, msg string) {
	om.Status.Phase = labhookv1alpha1.MessagePending
	setReady(om, metav1.ConditionFalse, reason, msg)
}

func setReady(om *labhookv1alpha1.OutgoingMessage, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&om.Status.Conditions, metav1.Condition{Type: labhookv1alpha1.ConditionReady,
		Status: status, Reason: reason, Message: msg, ObservedGeneration: om.Generation})
}

// retainDelivered deletes a Delivered message after MessageRetention. The
// per-namespace cap (MaxRetainedMessages) is the outbox monitor's job: done
// here, every worker raced to delete the same oldest messages on every
// delivery, which bounded throughput (make bench, outgoing).
func (r *OutgoingMessageReconciler) retainDelivered(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (ctrl.Result, error) {
	at := om.CreationTimestamp.Time
	if om.Status.DeliveredTime != nil {
		at = om.Status.DeliveredTime.Time
	}
	if left := time.Until(at.Add(r.Opts.MessageRetention)); left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	return ctrl.Result{}, deleteMessage(ctx, r.Client, om)
}

// retainFailed deletes a Failed message FailedRetention after its last attempt.
func (r *OutgoingMessageReconciler) retainFailed(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (ctrl.Result, error) {
	at := om.CreationTimestamp.Time
	if om.Status.LastAttempt != nil {
		at = om.Status.LastAttempt.Time.Time
	} else if c := meta.FindStatusCondition(om.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil {
		at = c.LastTransitionTime.Time
	}
	if left := time.Until(at.Add(r.Opts.FailedRetention)); left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	return ctrl.Result{}, deleteMessage(ctx, r.Client, om)
}

func deliveredAt(om *labhookv1alpha1.OutgoingMessage) time.Time {
	if om.Status.DeliveredTime != nil {
		return om.Status.DeliveredTime.Time
	}
	return om.CreationTimestamp.Time
}

func deleteMessage(ctx context.Context, c client.Writer, om *labhookv1alpha1.OutgoingMessage) error {
	gone := &labhookv1alpha1.OutgoingMessage{ObjectMeta: metav1.ObjectMeta{Namespace: om.Namespace, Name: om.Name}}
	if err := c.Delete(ctx, gone, client.Preconditions{UID: &om.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s: %w", om.Name, err)
	}
	return nil
}

// rollup records delivery health on the WebhookConfig on transitions only:
// the first success, the first failure after a success, recovery, and while
// failing at most every rollupInterval. A valid config failing for
// InvalidateAfter becomes invalid (Ready False, DeliveryFailing); its
// messages stay Pending until it is valid again.
func (r *OutgoingMessageReconciler) rollup(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, ok bool, at time.Time, errMsg string) {
	key := client.ObjectKeyFromObject(whc)
	d := whc.Status.Deliveries
	failing := d != nil && (d.FailingSince != nil || d.ConsecutiveFailures > 0)
	if v, seen := r.rollups.Load(key); seen {
		m := v.(rollupMark)
		if m.ok == ok && (ok || at.Sub(m.at) < r.rollupInterval()) {
			return
		}
	}
	if ok && d != nil && d.LastSuccessTime != nil && !failing {
		return
	}
	if !ok && failing && d.LastFailureTime != nil && at.Sub(d.LastFailureTime.Time) < r.rollupInterval() &&
		(whc.Status.State != labhookv1alpha1.StateValid || at.Sub(failingSince(whc, *d)) < r.Opts.InvalidateAfter) {
		return
	}
	r.rollups.Store(key, rollupMark{at: at, ok: ok})

	orig := whc.DeepCopy()
	stats := labhookv1alpha1.DeliveryStats{}
	if d != nil {
		stats = *d.DeepCopy()
	}
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
	whc.Status.Deliveries = &stats
	opts := []client.MergeFromOption{}
	invalidated := !ok && r.invalidate(whc, stats, at, errMsg)
	if invalidated {
		// Conditions are a list, which a merge patch replaces whole: lock on
		// the resourceVersion so the WebhookConfig controller's own write is
		// never overwritten.
		opts = append(opts, client.MergeFromWithOptimisticLock{})
	}
	if err := r.Status().Patch(ctx, whc, client.MergeFromWithOptions(orig, opts...)); err != nil {
		// Stats are best effort: the next transition writes them again.
		r.rollups.Delete(key)
		log.FromContext(ctx).Info("could not record delivery stats", "webhookConfig", whc.Name, "error", err.Error())
		return
	}
	if invalidated {
		r.Recorder.Eventf(whc, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonDeliveryFailing, "Invalidate",
			"deliveries have failed for more than %s; the config is invalid until a test passes", r.Opts.InvalidateAfter)
	}
}

// invalidate turns a valid whc invalid when its deliveries have failed for
// InvalidateAfter, and reports whether it did.
func (r *OutgoingMessageReconciler) invalidate(whc *labhookv1alpha1.WebhookConfig, stats labhookv1alpha1.DeliveryStats, at time.Time, errMsg string) bool {
	since := failingSince(whc, stats)
	if whc.Status.State != labhookv1alpha1.StateValid || at.Sub(since) < r.Opts.InvalidateAfter {
		return false
	}
	whc.Status.State = labhookv1alpha1.StateInvalid
	meta.SetStatusCondition(&whc.Status.Conditions, metav1.Condition{Type: labhookv1alpha1.ConditionReady,
		Status: metav1.ConditionFalse, Reason: labhookv1alpha1.ReasonDeliveryFailing, ObservedGeneration: whc.Generation,
		Message: fmt.Sprintf("deliveries have failed since %s: %s", since.UTC().Format(time.RFC3339), errMsg)})
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

func (r *OutgoingMessageReconciler) rollupInterval() time.Duration {
	return min(time.Minute, max(r.Opts.InvalidateAfter/4, 100*time.Millisecond))
}

// SetupWithManager registers the indexes and watches of the outbox.
func (r *OutgoingMessageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(context.Background(), &labhookv1alpha1.OutgoingMessage{}, indexMessageEntity,
		func(o client.Object) []string { return o.(*labhookv1alpha1.OutgoingMessage).Spec.EntityIDs }); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &labhookv1alpha1.OutgoingMessage{}, indexMessagePhase,
		func(o client.Object) []string {
			if p := o.(*labhookv1alpha1.OutgoingMessage).Status.Phase; p != "" {
				return []string{string(p)}
			}
			return []string{string(labhookv1alpha1.MessagePending)}
		}); err != nil {
		return err
	}
	workers := max(r.Opts.MaxConcurrentDeliveries, 1)
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.OutgoingMessage{}).
		Watches(&labhookv1alpha1.OutgoingMessage{}, handler.EnqueueRequestsFromMapFunc(r.nextInLine),
			builder.WithPredicates(leftPending())).
		Watches(&labhookv1alpha1.WebhookConfig{}, handler.EnqueueRequestsFromMapFunc(r.pendingFor),
			builder.WithPredicates(becameUsable())).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			// Per-item backoff only: the default adds a global 10 qps bucket,
			// which would throttle a backlog of thousands of fresh messages
			// whenever errors requeue them.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 5*time.Minute),
		}).
		Named("outgoingmessage").
		Complete(r)
}

// leftPending passes events of a message that stopped being Pending (or went
// away while Pending), which may unblock the next message of its entities.
func leftPending() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return isPending(e.ObjectOld.(*labhookv1alpha1.OutgoingMessage)) && !isPending(e.ObjectNew.(*labhookv1alpha1.OutgoingMessage))
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			om, ok := e.Object.(*labhookv1alpha1.OutgoingMessage)
			return ok && isPending(om)
		},
	}
}

// nextInLine enqueues, per entity of a message that left Pending, the oldest
// Pending message with the same webhookConfigRef.
func (r *OutgoingMessageReconciler) nextInLine(ctx context.Context, o client.Object) []reconcile.Request {
	done := o.(*labhookv1alpha1.OutgoingMessage)
	var reqs []reconcile.Request
	for _, id := range done.Spec.EntityIDs {
		var list labhookv1alpha1.OutgoingMessageList
		if err := r.List(ctx, &list, client.InNamespace(done.Namespace), client.MatchingFields{indexMessageEntity: id},
			client.UnsafeDisableDeepCopy); err != nil {
			continue
		}
		var next *labhookv1alpha1.OutgoingMessage
		for i := range list.Items {
			m := &list.Items[i]
			if m.UID != done.UID && isPending(m) && refName(m) == refName(done) && (next == nil || before(m, next)) {
				next = m
			}
		}
		if next != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(next)})
		}
	}
	return reqs
}

// becameUsable passes a WebhookConfig that is valid and was not before, or
// whose spec changed while valid.
func becameUsable() predicate.Predicate {
	valid := func(o client.Object) bool {
		return o.(*labhookv1alpha1.WebhookConfig).Status.State == labhookv1alpha1.StateValid
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return valid(e.Object) },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return valid(e.ObjectNew) && (!valid(e.ObjectOld) || e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration())
		},
	}
}

// pendingFor enqueues the Pending messages a WebhookConfig may now take:
// those naming it, and, when it is the namespace default, those naming none.
func (r *OutgoingMessageReconciler) pendingFor(ctx context.Context, o client.Object) []reconcile.Request {
	whc := o.(*labhookv1alpha1.WebhookConfig)
	var list labhookv1alpha1.OutgoingMessageList
	if err := r.List(ctx, &list, client.InNamespace(whc.Namespace),
		client.MatchingFields{indexMessagePhase: string(labhookv1alpha1.MessagePending)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		m := &list.Items[i]
		if n := refName(m); n == whc.Name || (n == "" && whc.Spec.Default) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(m)})
		}
	}
	return reqs
}
