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
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
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
	"github.com/labhook/labhook/controllers/delivery"
	"github.com/labhook/labhook/controllers/outbound"
)

// historyLimit bounds status.history.
const historyLimit = 20

// messageWorkers is the number of OutgoingMessage reconciles in flight. A
// reconcile hands the POST to the delivery pool and returns, so it waits on
// the API server only; the pool's own bounds decide how many deliveries run.
const messageWorkers = 16

// OutgoingMessageReconciler is the durable outbox: it delivers each
// OutgoingMessage to its WebhookConfig at least once, in order per order
// key (orderKeys), retries on the schedule, and deletes what retention no
// longer needs. A reconcile never waits on a receiver: it hands the attempt
// to the delivery pool, and the pool re-enqueues the message when the
// attempt is over, for the next reconcile to record.
//
// Target: spec.webhookConfigRef, else the namespace default (the oldest
// WebhookConfig with default: true). A message waits as Pending, with a
// Ready=False condition saying why, while the target is missing or not valid;
// a WebhookConfig becoming valid enqueues its Pending messages.
//
// While the target's receiver is failing, the schedule still applies, and
// the prober retries the oldest Pending message early every ProbeInterval
// (a failed probe is not counted or written). Once the receiver answers
// 2xx again, every Pending message of the config is due at once, whatever
// its nextAttemptTime.
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
	Recorder recorder.EventRecorder
	// Clock tells the time of attempts, retries and retention; nil is the
	// real clock. Tests set a k8s.io/utils/clock/testing.FakeClock.
	Clock  clock.PassiveClock
	outbox *outbox

	// written remembers, per message UID, the status this reconciler wrote
	// last. Until the cache shows it, a reconcile of that message would see
	// an older status and could POST again; it waits for the watch event of
	// its own write instead.
	written sync.Map // types.UID → writtenMark
}

type writtenMark struct {
	attempts  int32
	redeliver string
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
		res      ctrl.Result
		err      error
		recorded bool
	)
	switch om.Status.Phase {
	case labhookv1alpha1.MessageDelivered:
		return r.retainDelivered(ctx, om)
	case labhookv1alpha1.MessageFailed:
		return r.retainFailed(ctx, om)
	default:
		res, recorded, err = r.deliver(ctx, om)
	}
	if werr := r.writeStatus(ctx, orig, om); apierrors.IsConflict(werr) {
		// Read from a cache that was behind: what this reconcile decided
		// may be stale (say, a redeliver request handled twice). The
		// attempt's outcome stays in memory; the next reconcile records it.
		return ctrl.Result{Requeue: true}, nil
	} else if werr != nil {
		return ctrl.Result{}, werr
	}
	if recorded {
		r.outbox.omAttempts.forget(om.UID)
	}
	if c := meta.FindStatusCondition(om.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil &&
		c.Reason == labhookv1alpha1.ReasonExhausted && orig.Status.Phase != labhookv1alpha1.MessageFailed {
		// Once per exhausted round, after the Failed phase is recorded.
		r.Recorder.Eventf(om, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonExhausted, "Deliver",
			"gave up after %d attempts: %s", om.Status.Attempts, om.Status.LastAttempt.Error)
	}
	return res, err
}

func (r *OutgoingMessageReconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
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

// writeStatus writes om's status as a merge patch when it changed; a
// reconcile that changes nothing writes nothing.
func (r *OutgoingMessageReconciler) writeStatus(ctx context.Context, orig, om *labhookv1alpha1.OutgoingMessage) error {
	if equality.Semantic.DeepEqual(orig.Status, om.Status) {
		return nil
	}
	om.Status.ObservedGeneration = om.Generation
	desired := om.Status.DeepCopy()
	if _, err := writeStatus(ctx, statusWriter{Client: r.Client}, orig,
		func(m *labhookv1alpha1.OutgoingMessage) bool {
			m.Status = *desired.DeepCopy()
			return true
		}); err != nil {
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

// deliver makes one step for a Pending message: record the attempt that
// just completed, or find a usable target, wait for its turn and its next
// attempt time, then hand one attempt to the pool. recorded says the
// status now holds a completed attempt.
func (r *OutgoingMessageReconciler) deliver(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (ctrl.Result, bool, error) {
	if at, ok := r.outbox.omAttempts.get(om.UID); ok {
		if !at.done {
			return ctrl.Result{}, false, nil
		}
		res, err := r.record(om, at)
		return res, true, err
	}
	whc, why, err := r.outbox.resolveTarget(ctx, om.Namespace, om.Spec.WebhookConfigRef)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	if whc == nil {
		setPending(om, labhookv1alpha1.ReasonNoUsableConfig, why)
		return ctrl.Result{}, false, nil
	}
	// The target is recorded with the next status write; a message sent
	// at once is written once, when its attempt is recorded.
	if len(whc.Spec.EventTypes) > 0 && !slices.Contains(whc.Spec.EventTypes, om.Spec.Type) {
		om.Status.Target = whc.Name
		om.Status.Phase = labhookv1alpha1.MessageFailed
		om.Status.NextAttemptTime = nil
		setReady(om, metav1.ConditionFalse, labhookv1alpha1.ReasonWebhookConfigFilter,
			fmt.Sprintf("WebhookConfig %s does not take %s messages (spec.eventTypes)", whc.Name, om.Spec.Type))
		return ctrl.Result{}, false, nil
	}
	if reason, msg := r.outbox.unusable(whc); reason != "" {
		om.Status.Target = whc.Name
		setPending(om, reason, msg)
		return ctrl.Result{}, false, nil
	}
	earlier, err := r.earlierPending(ctx, om)
	if err != nil {
		return ctrl.Result{}, false, err
	}
	if earlier != "" {
		om.Status.Target = whc.Name
		setPending(om, labhookv1alpha1.ReasonWaitingForEarlier,
			fmt.Sprintf("waiting for %s, an earlier message about the same entity", earlier))
		return ctrl.Result{}, false, nil
	}
	now := r.clock().Now()
	st := &om.Status
	// Due on schedule, or at once when the config recovered since its last
	// attempt (outbox.due marked it).
	due := st.NextAttemptTime == nil || !st.NextAttemptTime.After(now) || r.outbox.isForced(om.UID)
	probe := !due && r.outbox.health.takeProbe(whc, om.UID)
	if !due && !probe {
		return ctrl.Result{RequeueAfter: st.NextAttemptTime.Sub(now)}, false, nil
	}
	r.outbox.unforce(om.UID)
	return ctrl.Result{}, false, r.submit(om, whc, probe)
}

// submit hands one attempt of om to the pool. Its outcome waits in memory
// and om is re-enqueued to record it.
func (r *OutgoingMessageReconciler) submit(om *labhookv1alpha1.OutgoingMessage, whc *labhookv1alpha1.WebhookConfig, probe bool) error {
	body, err := renderBody(om, r.Opts.CallbackURL)
	if err != nil {
		return fmt.Errorf("render %s: %w", om.Name, err)
	}
	uid, key, whcKey := om.UID, client.ObjectKeyFromObject(om), client.ObjectKeyFromObject(whc)
	at := &attempt{whc: whc.DeepCopy(), probe: probe}
	r.outbox.omAttempts.start(uid, at)
	via := viaOutgoingMessage
	if probe {
		via = viaProbe
	}
	r.outbox.pool.Submit(delivery.Job{Config: whcKey, Limits: limits(whc),
		Prepare: func(ctx context.Context) (outbound.Request, error) {
			cur, err := r.outbox.usableNow(ctx, whcKey)
			if err != nil {
				return outbound.Request{}, err
			}
			return r.outbox.request(ctx, cur, om.Name, body)
		},
		Done: func(ctx context.Context, out delivery.Outcome) {
			r.outbox.health.observe(ctx, at.whc, out, via, key.Name)
			r.outbox.omAttempts.finish(uid, out)
			r.outbox.requeueMessages.add(key)
		},
	})
	return nil
}

// record turns a completed attempt into status.
func (r *OutgoingMessageReconciler) record(om *labhookv1alpha1.OutgoingMessage, at attempt) (ctrl.Result, error) {
	out := at.out
	switch {
	case out.NotSent && errNotUsable(out.Err):
		// The config stopped taking deliveries while this waited: look again.
		return ctrl.Result{Requeue: true}, nil
	case out.NotSent:
		setPending(om, labhookv1alpha1.ReasonSecretError, out.Err.Error())
		return ctrl.Result{}, out.Err
	case at.probe && !out.OK():
		// An early retry of a failing config: not counted, nothing written;
		// the config's status.deliveries says it failed.
		if next := om.Status.NextAttemptTime; next != nil {
			return ctrl.Result{RequeueAfter: max(next.Sub(r.clock().Now()), 0)}, nil
		}
		return ctrl.Result{}, nil
	}
	a := labhookv1alpha1.DeliveryAttempt{Time: metav1.NewTime(out.Start), HTTPStatus: int32(out.HTTPStatus),
		Duration: metav1.Duration{Duration: out.Duration}}
	if !out.OK() {
		a.Error = attemptError(out.Result)
	}
	st := &om.Status
	st.Attempts++
	st.LastAttempt = a.DeepCopy()
	st.History = append(st.History, a)
	if n := len(st.History); n > historyLimit {
		st.History = slices.Clone(st.History[n-historyLimit:])
	}
	st.Target = at.whc.Name
	if out.OK() {
		st.Phase = labhookv1alpha1.MessageDelivered
		st.DeliveredTime = &a.Time
		st.NextAttemptTime = nil
		setReady(om, metav1.ConditionTrue, labhookv1alpha1.ReasonDelivered,
			fmt.Sprintf("delivered to %s (HTTP %d)", at.whc.Name, out.HTTPStatus))
		return ctrl.Result{RequeueAfter: r.Opts.MessageRetention}, nil
	}
	return r.scheduleRetry(om, at.whc, out.RetryAfter), nil
}

// scheduleRetry sets the next attempt after a failed one, or marks the
// message Failed when the config's retry bounds are reached.
func (r *OutgoingMessageReconciler) scheduleRetry(om *labhookv1alpha1.OutgoingMessage, whc *labhookv1alpha1.WebhookConfig, retryAfter time.Duration) ctrl.Result {
	st := &om.Status
	maxAttempts, maxAge := retryBounds(whc)
	// status keeps times to the second: round up, so the stored time is
	// never earlier than the schedule asks.
	now := r.clock().Now()
	next := ceilSecond(now.Add(r.retryDelay(st.Attempts, retryAfter)))
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
	return ctrl.Result{RequeueAfter: next.Sub(now)}
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
	maxAttempts, maxAge := whc.Spec.Retry.MaxAttempts, whc.Spec.Retry.MaxAge
	if maxAttempts <= 0 {
		maxAttempts = labhookv1alpha1.DefaultRetryMaxAttempts
	}
	d, err := time.ParseDuration(maxAge)
	if err != nil || d <= 0 {
		d, _ = time.ParseDuration(labhookv1alpha1.DefaultRetryMaxAge)
	}
	return maxAttempts, d
}

// requestTimeout is whc's timeoutSeconds, with the CRD default.
func requestTimeout(whc *labhookv1alpha1.WebhookConfig) time.Duration {
	if s := whc.Spec.TimeoutSeconds; s > 0 {
		return time.Duration(s) * time.Second
	}
	return labhookv1alpha1.DefaultTimeoutSeconds * time.Second
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

// renderBody is the seed 001 body. The timestamp is fixed when the message
// was first sent (the labhook.io/timestamp a lab producer sets when its
// direct send failed), else the creation time, so every attempt sends the
// same bytes.
func renderBody(om *labhookv1alpha1.OutgoingMessage, callback string) ([]byte, error) {
	var raw json.RawMessage
	if om.Spec.Context != nil {
		raw = om.Spec.Context.Raw
	}
	ts := wire.FormatTimestamp(om.CreationTimestamp.Time)
	if v := om.Annotations[labhookv1alpha1.AnnotationTimestamp]; v != "" {
		if t, err := time.Parse(wire.TimestampFormat, v); err == nil {
			ts = wire.FormatTimestamp(t)
		}
	}
	return wire.OutgoingMessage{
		MessageID: om.Name,
		Type:      string(om.Spec.Type),
		Status:    om.Spec.Status,
		EntityIDs: om.Spec.EntityIDs,
		Timestamp: ts,
		Context:   raw,
		Callback:  callback,
	}.Marshal()
}

// orderKeys are the keys a message is delivered in order by, within its
// webhookConfigRef: a later message waits while an earlier one with a key
// in common is Pending. RESOURCE and INTERFACE messages are keyed by the
// resource id ("lab/<id>"; an INTERFACE message's first entity id is its
// resource's), so a resource and its interfaces share one order; other
// types by "<type>/<entity id>", so unrelated entities that happen to share
// an id (two resources' interfaces both named "Terminal", a CLASS and an
// EVENT with the same id) never wait for each other.
func orderKeys(om *labhookv1alpha1.OutgoingMessage) []string {
	prefix := refName(om) + "|"
	ids := om.Spec.EntityIDs
	if om.Spec.Type == wire.TypeInterface && len(ids) > 0 {
		ids = ids[:1]
	}
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		k := prefix + string(om.Spec.Type) + "/" + id
		if om.Spec.Type == wire.TypeResource || om.Spec.Type == wire.TypeInterface {
			k = prefix + "lab/" + id
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// earlierPending returns the name of an older Pending message that shares
// an order key with om, or "".
func (r *OutgoingMessageReconciler) earlierPending(ctx context.Context, om *labhookv1alpha1.OutgoingMessage) (string, error) {
	for _, k := range orderKeys(om) {
		var list labhookv1alpha1.OutgoingMessageList
		if err := r.List(ctx, &list, client.InNamespace(om.Namespace), client.MatchingFields{indexMessageOrder: k},
			client.UnsafeDisableDeepCopy); err != nil {
			return "", fmt.Errorf("list messages ordered by %s: %w", k, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if o.UID != om.UID && isPending(o) && before(o, om) {
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
	return refNameOf(om.Spec.WebhookConfigRef)
}

func refNameOf(ref *labhookv1alpha1.LocalObjectReference) string {
	if ref == nil {
		return ""
	}
	return ref.Name
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
	if left := at.Add(r.Opts.MessageRetention).Sub(r.clock().Now()); left > 0 {
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
	if left := at.Add(r.Opts.FailedRetention).Sub(r.clock().Now()); left > 0 {
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

// SetupWithManager registers the indexes and watches of the outbox.
func (r *OutgoingMessageReconciler) SetupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	// Only Pending messages make others wait, so only they are indexed by
	// order key: retained Delivered and Failed messages cost the index nothing.
	if err := idx.IndexField(context.Background(), &labhookv1alpha1.OutgoingMessage{}, indexMessageOrder,
		func(o client.Object) []string {
			if om := o.(*labhookv1alpha1.OutgoingMessage); isPending(om) {
				return orderKeys(om)
			}
			return nil
		}); err != nil {
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
	if err := idx.IndexField(context.Background(), &labhookv1alpha1.OutgoingMessage{}, indexPendingRef,
		func(o client.Object) []string {
			om := o.(*labhookv1alpha1.OutgoingMessage)
			if !isPending(om) {
				return nil
			}
			return []string{refKey(om.Spec.WebhookConfigRef)}
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.OutgoingMessage{}).
		Watches(&labhookv1alpha1.OutgoingMessage{}, handler.EnqueueRequestsFromMapFunc(r.nextInLine),
			builder.WithPredicates(leftPending())).
		Watches(&labhookv1alpha1.WebhookConfig{}, r.configEvents()).
		WatchesRawSource(r.outbox.requeueMessages.source()).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: messageWorkers,
			// Per-item backoff only: the default adds a global 10 qps bucket,
			// which would throttle a backlog of thousands of fresh messages
			// whenever errors requeue them.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 5*time.Minute),
		}).
		Named("outgoingmessage").
		Complete(r)
}

// leftPending passes events of a message that stopped being Pending (or went
// away while Pending), which may unblock the next message of its order keys
// and the lab object it holds a message of.
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

// nextInLine enqueues, per order key of a message that left Pending, the
// oldest Pending message with that key.
func (r *OutgoingMessageReconciler) nextInLine(ctx context.Context, o client.Object) []reconcile.Request {
	done := o.(*labhookv1alpha1.OutgoingMessage)
	var reqs []reconcile.Request
	for _, k := range orderKeys(done) {
		var list labhookv1alpha1.OutgoingMessageList
		if err := r.List(ctx, &list, client.InNamespace(done.Namespace), client.MatchingFields{indexMessageOrder: k},
			client.UnsafeDisableDeepCopy); err != nil {
			continue
		}
		var next *labhookv1alpha1.OutgoingMessage
		for i := range list.Items {
			m := &list.Items[i]
			if m.UID != done.UID && isPending(m) && (next == nil || before(m, next)) {
				next = m
			}
		}
		if next != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(next)})
		}
	}
	return reqs
}

// configEvents reacts to WebhookConfigs changing what they take: one that
// becomes valid (created, tested, re-tested, or changed while valid) starts
// afresh and everything owed to it is due; one that stops being valid makes
// its waiting messages show why; and when a default config is deleted, the
// messages and lab objects that use the namespace default go to the next
// one. The requests go through the outbox's requeuers, so the handler
// enqueues nothing itself.
func (r *OutgoingMessageReconciler) configEvents() handler.EventHandler {
	valid := func(o client.Object) bool {
		return o.(*labhookv1alpha1.WebhookConfig).Status.State == labhookv1alpha1.StateValid
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if valid(e.Object) {
				r.outbox.health.reset(ctx, e.Object.(*labhookv1alpha1.WebhookConfig))
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			whc := e.ObjectNew.(*labhookv1alpha1.WebhookConfig)
			switch {
			case valid(whc) && (!valid(e.ObjectOld) || e.ObjectOld.GetGeneration() != whc.Generation):
				r.outbox.health.reset(ctx, whc)
			case valid(e.ObjectOld) && !valid(whc):
				r.outbox.due(ctx, whc)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if whc, ok := e.Object.(*labhookv1alpha1.WebhookConfig); ok {
				keys := []string{whc.Name}
				if whc.Spec.Default {
					keys = append(keys, defaultRef)
				}
				r.outbox.dueFor(ctx, whc.Namespace, keys...)
			}
		},
	}
}
