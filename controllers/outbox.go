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
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/delivery"
)

// Field indexes the outbox looks things up by.
const (
	// indexMessageOrder holds a Pending message's order keys (see orderKeys).
	indexMessageOrder = "spec.orderKeys"
	// indexMessagePhase is status.phase, with "" (not reconciled yet) as Pending.
	indexMessagePhase = "status.phase"
	// indexPendingRef holds, for a Pending message, its refKey: the config
	// it names, or defaultRef.
	indexPendingRef = "status.pendingRef"
	// indexOwes holds, for a LabResource or LabInterface that owes a
	// message (its status is behind its spec, a trigger is unhandled, or it
	// is being deleted with our finalizer), its refKey, owesAny, and
	// owesResource + its resource id (the objects ordered together,
	// lab/<id>). Objects that owe nothing are not indexed at all, so the
	// index costs memory during an outage only.
	indexOwes = "status.owes"
)

const (
	// defaultRef is the refKey of objects that name no WebhookConfig: they
	// use the namespace default. It is not a valid object name.
	defaultRef = "~default"
	// owesAny is an indexOwes value every owing object carries, so they can
	// all be listed at once.
	owesAny = "*"
	// owesResource prefixes the resource id in indexOwes.
	owesResource = "id:"
)

// refKey is the index form of a webhookConfigRef.
func refKey(ref *labhookv1alpha1.LocalObjectReference) string {
	if ref == nil || ref.Name == "" {
		return defaultRef
	}
	return ref.Name
}

// refKeys are the refKeys whose objects go to whc: those naming it, and
// those naming none when it is the namespace default.
func (o *outbox) refKeys(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) ([]string, error) {
	keys := []string{whc.Name}
	def, err := DefaultWebhookConfig(ctx, o.client, whc.Namespace)
	if err != nil {
		return nil, err
	}
	if def != nil && def.UID == whc.UID {
		keys = append(keys, defaultRef)
	}
	return keys, nil
}

// outbox coordinates delivery for the three reconcilers that send: the lab
// producers (LabResource, LabInterface) and the OutgoingMessage reconciler.
// It holds what lives in memory only: each config's delivery health, the
// sends in flight and their outcomes, and how many lab OutgoingMessages are
// Pending per config. All of it may be lost in a crash: the lab objects
// still owe what they owe (that is in etcd), and so are the
// OutgoingMessages, so a new leader resends (at least once, same ids).
type outbox struct {
	client   client.Client
	reader   client.Reader
	opts     Options
	pool     *delivery.Pool
	recorder recorder.EventRecorder
	health   *configHealth

	labAttempts attempts // by LabResource / LabInterface UID
	omAttempts  attempts // by OutgoingMessage UID
	marks       marks
	labPending  *labPending

	mu         sync.Mutex
	timestamps map[string]time.Time    // message id → when it was first sent
	forced     map[types.UID]time.Time // Pending messages due at once, whatever their schedule

	requeueResources, requeueInterfaces, requeueMessages requeuer
}

func newOutbox(mgr ctrl.Manager, opts Options, pool *delivery.Pool, events recorder.EventRecorder) *outbox {
	o := &outbox{
		client: mgr.GetClient(), reader: mgr.GetAPIReader(), opts: opts, pool: pool, recorder: events,
		labPending: newLabPending(), timestamps: map[string]time.Time{}, forced: map[types.UID]time.Time{},
	}
	o.health = newConfigHealth(o)
	return o
}

// --- requeue -------------------------------------------------------------------

// requeuer adds requests to one controller's work queue from outside a
// watch: a finished delivery, a recovered config, a probe.
type requeuer struct {
	mu sync.Mutex
	q  workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// source is the controller-runtime source that hands the queue over when
// the controller starts.
func (r *requeuer) source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		r.mu.Lock()
		r.q = q
		r.mu.Unlock()
		return nil
	})
}

func (r *requeuer) add(key types.NamespacedName) {
	r.mu.Lock()
	q := r.q
	r.mu.Unlock()
	if q != nil {
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

// --- attempts ------------------------------------------------------------------

// attempt is one send in the pool for one object: in flight until done,
// then its outcome waits until the object's reconcile has recorded it.
type attempt struct {
	done  bool
	at    time.Time // when it was done
	out   delivery.Outcome
	msg   *labMessage                    // lab sends: the message sent
	whc   *labhookv1alpha1.WebhookConfig // where it went
	probe bool                           // an early retry of a failing config
}

// attempts maps an object UID to its one attempt, so an object never has
// two sends outstanding.
type attempts struct {
	mu sync.Mutex
	m  map[types.UID]*attempt
}

func (a *attempts) start(uid types.UID, at *attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[types.UID]*attempt{}
	}
	a.m[uid] = at
}

// get returns a copy of uid's attempt, if any.
func (a *attempts) get(uid types.UID) (attempt, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.m[uid]
	if !ok {
		return attempt{}, false
	}
	return *at, true
}

func (a *attempts) finish(uid types.UID, out delivery.Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.m[uid]; ok {
		at.done, at.out, at.at = true, out, time.Now()
	}
}

// prune forgets outcomes done before before that nobody recorded: their
// object went away.
func (a *attempts) prune(before time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for uid, at := range a.m {
		if at.done && at.at.Before(before) {
			delete(a.m, uid)
		}
	}
}

func (a *attempts) forget(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, uid)
}

func (a *attempts) inFlight(uid types.UID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.m[uid]
	return ok && !at.done
}

// firstSent returns when message id was first sent, remembering now if it
// never was: a message keeps the timestamp of its first attempt, so every
// retry (direct or from an OutgoingMessage) sends the same bytes.
func (o *outbox) firstSent(id string, now time.Time) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.timestamps[id]; ok {
		return t
	}
	t := now.Truncate(time.Second)
	o.timestamps[id] = t
	return t
}

// sentAt returns when id was first sent, if it was.
func (o *outbox) sentAt(id string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.timestamps[id]
	return t, ok
}

func (o *outbox) forgetTimestamp(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.timestamps, id)
}

// --- targets -------------------------------------------------------------------

// resolveTarget finds the WebhookConfig for a webhookConfigRef in ns; nil
// with a reason when there is none.
func (o *outbox) resolveTarget(ctx context.Context, ns string, ref *labhookv1alpha1.LocalObjectReference) (*labhookv1alpha1.WebhookConfig, string, error) {
	if ref != nil && ref.Name != "" {
		whc := &labhookv1alpha1.WebhookConfig{}
		if err := o.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, whc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Sprintf("WebhookConfig %s not found", ref.Name), nil
			}
			return nil, "", err
		}
		return whc, "", nil
	}
	whc, err := DefaultWebhookConfig(ctx, o.client, ns)
	if err != nil || whc == nil {
		return nil, "no WebhookConfig in this namespace is the default (spec.default: true)", err
	}
	return whc, "", nil
}

// unusable says why whc takes no deliveries now, with the reason for a
// waiting message's condition; "" when it is usable.
func (o *outbox) unusable(whc *labhookv1alpha1.WebhookConfig) (reason, msg string) {
	if whc.Status.State == labhookv1alpha1.StateValid && !o.health.gone(whc) {
		return "", ""
	}
	if isGone(whc) || o.health.gone(whc) {
		return labhookv1alpha1.ReasonEndpointGone, fmt.Sprintf("WebhookConfig %s answered 410 Gone: nothing is sent to it until its url changes "+
			"or a test is requested (annotation %s)", whc.Name, labhookv1alpha1.AnnotationTestRequestedAt)
	}
	return labhookv1alpha1.ReasonNoUsableConfig, fmt.Sprintf("WebhookConfig %s is %s, not valid", whc.Name, stateOrNew(whc.Status.State))
}

// limits are whc's bounds for the pool.
func limits(whc *labhookv1alpha1.WebhookConfig) delivery.Limits {
	var l delivery.Limits
	if r := whc.Spec.MaxRequestsPerSecond; r != nil {
		l.RequestsPerSecond = float64(*r)
	}
	if c := whc.Spec.MaxConcurrentRequests; c != nil {
		l.Concurrency = int(*c)
	}
	return l
}

// usableNow re-reads the config a queued job is for when its turn comes:
// a config that became unusable meanwhile gets nothing more.
func (o *outbox) usableNow(ctx context.Context, key types.NamespacedName) (*labhookv1alpha1.WebhookConfig, error) {
	whc := &labhookv1alpha1.WebhookConfig{}
	if err := o.client.Get(ctx, key, whc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &notUsableError{msg: fmt.Sprintf("WebhookConfig %s not found", key.Name)}
		}
		return nil, fmt.Errorf("WebhookConfig %s: %w", key.Name, err)
	}
	if reason, msg := o.unusable(whc); reason != "" {
		return nil, &notUsableError{msg: msg}
	}
	return whc, nil
}

// notUsableError is a job dropped because its config stopped taking
// deliveries before the job's turn came.
type notUsableError struct{ msg string }

func (e *notUsableError) Error() string { return e.msg }

// --- recovery ------------------------------------------------------------------

// due makes everything owed to whc due at once: its Pending
// OutgoingMessages and the lab objects holding for it. It runs when whc's
// receiver answers again, when it becomes valid, and when it stops being
// usable (so waiting messages show why).
func (o *outbox) due(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) {
	keys, err := o.refKeys(ctx, whc)
	if err != nil {
		log.FromContext(ctx).Info("could not list what is owed to a WebhookConfig", "webhookConfig", whc.Name, "error", err.Error())
		return
	}
	o.dueFor(ctx, whc.Namespace, keys...)
}

// dueFor enqueues, in ns, the Pending messages and the owing lab objects of
// the given refKeys. The messages are due at once, whatever their
// nextAttemptTime, until their next attempt.
func (o *outbox) dueFor(ctx context.Context, ns string, keys ...string) {
	for _, k := range keys {
		var oms labhookv1alpha1.OutgoingMessageList
		if err := o.client.List(ctx, &oms, client.InNamespace(ns), client.MatchingFields{indexPendingRef: k},
			client.UnsafeDisableDeepCopy); err == nil {
			o.mu.Lock()
			for i := range oms.Items {
				o.forced[oms.Items[i].UID] = time.Now()
			}
			o.mu.Unlock()
			for i := range oms.Items {
				o.requeueMessages.add(client.ObjectKeyFromObject(&oms.Items[i]))
			}
		}
		var lrs labhookv1alpha1.LabResourceList
		if err := o.client.List(ctx, &lrs, client.InNamespace(ns), client.MatchingFields{indexOwes: k},
			client.UnsafeDisableDeepCopy); err == nil {
			for i := range lrs.Items {
				o.requeueResources.add(client.ObjectKeyFromObject(&lrs.Items[i]))
			}
		}
		var lis labhookv1alpha1.LabInterfaceList
		if err := o.client.List(ctx, &lis, client.InNamespace(ns), client.MatchingFields{indexOwes: k},
			client.UnsafeDisableDeepCopy); err == nil {
			for i := range lis.Items {
				o.requeueInterfaces.add(client.ObjectKeyFromObject(&lis.Items[i]))
			}
		}
	}
}

// isForced reports whether the Pending message uid is due at once.
func (o *outbox) isForced(uid types.UID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.forced[uid]
	return ok
}

func (o *outbox) unforce(uid types.UID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.forced, uid)
}

// prune forgets due marks of messages that went away unattempted, and
// first-sent timestamps of messages never recorded (their object went
// away, or has held its message for an hour: its next send carries a new
// timestamp).
func (o *outbox) prune(before time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for uid, at := range o.forced {
		if at.Before(before) {
			delete(o.forced, uid)
		}
	}
	for id, at := range o.timestamps {
		if at.Before(before) {
			delete(o.timestamps, id)
		}
	}
}

// --- probes --------------------------------------------------------------------

// Start runs the prober until ctx ends: while a config is failing, every
// ProbeInterval it retries the config's oldest Pending message early (or,
// when it has none, lets one lab object that owes it send), instead of
// waiting for the 5m/30m/2h schedule. Once a receiver answers 2xx again,
// everything owed to it is due at once (see configHealth.observe).
func (o *outbox) Start(ctx context.Context) error {
	tick := time.NewTicker(min(o.opts.ProbeInterval/2, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			o.probe(ctx, time.Now())
			now := time.Now()
			o.marks.prune(now.Add(-5 * time.Minute))
			o.labAttempts.prune(now.Add(-10 * time.Minute))
			o.omAttempts.prune(now.Add(-10 * time.Minute))
			o.prune(now.Add(-time.Hour))
		}
	}
}

func (o *outbox) probe(ctx context.Context, now time.Time) {
	var configs labhookv1alpha1.WebhookConfigList
	if err := o.client.List(ctx, &configs, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	for i := range configs.Items {
		whc := &configs.Items[i]
		if whc.Status.State != labhookv1alpha1.StateValid || !o.health.probeDue(whc, now) {
			continue
		}
		if uid, key, kind, ok := o.probeTarget(ctx, whc); ok {
			o.health.grantProbe(whc, uid, now)
			switch kind {
			case kindResource:
				o.requeueResources.add(key)
			case kindInterface:
				o.requeueInterfaces.add(key)
			case kindMessage:
				o.requeueMessages.add(key)
			}
		}
	}
}

// probeTarget picks what to retry early for a failing whc: its oldest
// Pending message, else a lab object that owes it a message.
func (o *outbox) probeTarget(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) (types.UID, types.NamespacedName, string, bool) {
	keys, err := o.refKeys(ctx, whc)
	if err != nil {
		return "", types.NamespacedName{}, "", false
	}
	// The oldest Pending message, but not the one probed last when another
	// waits: a message its receiver rejects must not keep it failing.
	skip := o.health.lastProbed(whc)
	var oldest, other *labhookv1alpha1.OutgoingMessage
	for _, k := range keys {
		var oms labhookv1alpha1.OutgoingMessageList
		if err := o.client.List(ctx, &oms, client.InNamespace(whc.Namespace), client.MatchingFields{indexPendingRef: k},
			client.UnsafeDisableDeepCopy); err != nil {
			return "", types.NamespacedName{}, "", false
		}
		for i := range oms.Items {
			m := &oms.Items[i]
			if o.omAttempts.inFlight(m.UID) {
				continue
			}
			if oldest == nil || before(m, oldest) {
				oldest = m
			}
			if m.UID != skip && (other == nil || before(m, other)) {
				other = m
			}
		}
	}
	if other != nil {
		oldest = other
	}
	if oldest != nil {
		return oldest.UID, client.ObjectKeyFromObject(oldest), kindMessage, true
	}
	for _, k := range keys {
		var lrs labhookv1alpha1.LabResourceList
		if err := o.client.List(ctx, &lrs, client.InNamespace(whc.Namespace), client.MatchingFields{indexOwes: k}); err == nil {
			if i := slices.IndexFunc(lrs.Items, func(lr labhookv1alpha1.LabResource) bool { return !o.labAttempts.inFlight(lr.UID) }); i >= 0 {
				return lrs.Items[i].UID, client.ObjectKeyFromObject(&lrs.Items[i]), kindResource, true
			}
		}
		var lis labhookv1alpha1.LabInterfaceList
		if err := o.client.List(ctx, &lis, client.InNamespace(whc.Namespace), client.MatchingFields{indexOwes: k}); err == nil {
			if i := slices.IndexFunc(lis.Items, func(li labhookv1alpha1.LabInterface) bool { return !o.labAttempts.inFlight(li.UID) }); i >= 0 {
				return lis.Items[i].UID, client.ObjectKeyFromObject(&lis.Items[i]), kindInterface, true
			}
		}
	}
	return "", types.NamespacedName{}, "", false
}

// --- lab OutgoingMessages Pending, per config ------------------------------------

// labPending counts the Pending OutgoingMessages of lab objects per
// (namespace, refKey) and per object, from the OutgoingMessage informer and
// from this process's own creates (which the informer may not show yet),
// so --max-pending-lab-messages holds exactly, even with several workers
// creating at once.
type labPending struct {
	mu       sync.Mutex
	byRef    map[types.NamespacedName]map[string]struct{} // (ns, refKey) → message names
	byObject map[types.UID]map[string]struct{}            // lab object → message names
	names    map[types.NamespacedName]pendingEntry        // message → where it is counted
	synced   func() bool
}

type pendingEntry struct {
	ref    types.NamespacedName
	object types.UID
	// created is when this process created the message (zero when the
	// informer reported it): the cache may not show it yet.
	created time.Time
}

func newLabPending() *labPending {
	return &labPending{byRef: map[types.NamespacedName]map[string]struct{}{},
		byObject: map[types.UID]map[string]struct{}{}, names: map[types.NamespacedName]pendingEntry{},
		synced: func() bool { return false }}
}

// watch keeps the counts from the OutgoingMessage informer.
func (p *labPending) watch(ctx context.Context, mgr ctrl.Manager) error {
	inf, err := mgr.GetCache().GetInformer(ctx, &labhookv1alpha1.OutgoingMessage{})
	if err != nil {
		return fmt.Errorf("OutgoingMessage informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.observe(obj) },
		UpdateFunc: func(_, obj any) { p.observe(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if om, ok := obj.(*labhookv1alpha1.OutgoingMessage); ok {
				p.remove(client.ObjectKeyFromObject(om))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("count lab OutgoingMessages: %w", err)
	}
	p.synced = reg.HasSynced
	return nil
}

func (p *labPending) observe(obj any) {
	om, ok := obj.(*labhookv1alpha1.OutgoingMessage)
	if !ok {
		return
	}
	uid := types.UID(om.Labels[labhookv1alpha1.LabelLabObjectUID])
	if uid == "" || !isPending(om) {
		p.remove(client.ObjectKeyFromObject(om))
		return
	}
	p.add(om.Namespace, om.Name, refKey(om.Spec.WebhookConfigRef), uid, time.Time{})
}

func (p *labPending) add(ns, name, ref string, object types.UID, created time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := types.NamespacedName{Namespace: ns, Name: name}
	if e, ok := p.names[key]; ok {
		if created.IsZero() {
			e.created = created // the informer has it now: so has the cache
			p.names[key] = e
		}
		return
	}
	e := pendingEntry{ref: types.NamespacedName{Namespace: ns, Name: ref}, object: object, created: created}
	p.names[key] = e
	if p.byRef[e.ref] == nil {
		p.byRef[e.ref] = map[string]struct{}{}
	}
	p.byRef[e.ref][name] = struct{}{}
	if p.byObject[object] == nil {
		p.byObject[object] = map[string]struct{}{}
	}
	p.byObject[object][name] = struct{}{}
}

func (p *labPending) remove(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.names[key]
	if !ok {
		return
	}
	delete(p.names, key)
	delete(p.byRef[e.ref], key.Name)
	if len(p.byRef[e.ref]) == 0 {
		delete(p.byRef, e.ref)
	}
	delete(p.byObject[e.object], key.Name)
	if len(p.byObject[e.object]) == 0 {
		delete(p.byObject, e.object)
	}
}

// count returns the Pending lab messages counted against the config that
// refKeys resolve to, in ns.
func (p *labPending) count(ns string, refKeys []string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range refKeys {
		n += len(p.byRef[types.NamespacedName{Namespace: ns, Name: k}])
	}
	return n
}

// has reports whether the Pending lab message ns/name is counted.
func (p *labPending) has(ns, name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.names[types.NamespacedName{Namespace: ns, Name: name}]
	return ok
}

// ofObject returns how many Pending messages the lab object has.
func (p *labPending) ofObject(uid types.UID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byObject[uid])
}

// entriesOf returns the lab object's Pending messages, by name.
func (p *labPending) entriesOf(ns string, uid types.UID) map[types.NamespacedName]pendingEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[types.NamespacedName]pendingEntry{}
	for name := range p.byObject[uid] {
		key := types.NamespacedName{Namespace: ns, Name: name}
		out[key] = p.names[key]
	}
	return out
}

// --- marks ---------------------------------------------------------------------

// marks remembers, per lab object, the status this process wrote last.
// Until the cache shows it, a reconcile of that object sees an older status
// and would send the recorded message again; it waits for the watch event
// of its own write instead.
type marks struct {
	mu sync.Mutex
	m  map[types.UID]mark
}

type mark struct {
	observedGeneration int64
	lastMessageID      string
	deleted            bool
	at                 time.Time
}

func (ms *marks) set(uid types.UID, m mark) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[types.UID]mark{}
	}
	m.at = time.Now()
	ms.m[uid] = m
}

// behind reports whether the cached status of uid predates this process's
// last write of it.
func (ms *marks) behind(uid types.UID, observedGeneration int64, last *labhookv1alpha1.LastMessage, finalizer bool) bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m, ok := ms.m[uid]
	if !ok {
		return false
	}
	lastID := ""
	if last != nil {
		lastID = last.ID
	}
	if (m.deleted && finalizer) || observedGeneration < m.observedGeneration || (m.lastMessageID != "" && lastID != m.lastMessageID) {
		return true
	}
	delete(ms.m, uid)
	return false
}

// observed forgets uid's mark when the cache shows the status it marks:
// the watch event of this process's own write has arrived.
func (ms *marks) observed(uid types.UID, observedGeneration int64, last *labhookv1alpha1.LastMessage) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m, ok := ms.m[uid]
	if !ok || m.deleted || observedGeneration != m.observedGeneration {
		return
	}
	if m.lastMessageID == "" || (last != nil && last.ID == m.lastMessageID) {
		delete(ms.m, uid)
	}
}

// prune forgets marks older than before (objects that went away).
func (ms *marks) prune(before time.Time) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for uid, m := range ms.m {
		if m.at.Before(before) {
			delete(ms.m, uid)
		}
	}
}
