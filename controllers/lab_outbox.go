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
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/controllers/delivery"
	"github.com/labhook/labhook/controllers/outbound"
)

// This file is how a LabResource or LabInterface delivers what it owes.
// The object is its own outbox: while its status is behind its spec, a
// trigger is unhandled, or it is being deleted with our finalizer, it owes
// one message (labMessage), computed from the object alone. decide then
// sends it directly through the pool, records it as an OutgoingMessage, or
// holds it, and tells the reconciler what to record in the object's status.

// Kinds, as in an OutgoingMessage's labhook.io/lab-object annotation.
const (
	kindResource  = "LabResource"
	kindInterface = "LabInterface"
	kindMessage   = "OutgoingMessage"
)

// labMessage is the next message a lab object owes, and what recording it
// changes in the object's status.
type labMessage struct {
	kind, id           string
	msgType, status    string
	trigger            string
	entityIDs          []string
	resourceID         string // the order key is lab/<resourceID>
	ref                *labhookv1alpha1.LocalObjectReference
	context            []byte // canonical JSON (canonicalJSON)
	silent             bool   // an echo of the backend's own change: recorded, never sent
	deleted            bool   // recording it releases the finalizer
	observedGeneration int64
	// LabResource: the handled restart and replace times to record.
	handledRestart, handledReplace *metav1.Time
}

// orderKey is the key a lab message is ordered by, as an OutgoingMessage
// would be (orderKeys): a resource and its interfaces share one order, so
// the backend never hears of an interface before its resource's CREATED nor
// after its DELETED.
func (m *labMessage) orderKey() string {
	return refNameOf(m.ref) + "|lab/" + m.resourceID
}

// labDecision is what the reconciler records in the object's status: the
// message it covers, and lastMessage (nil: keep the current one).
type labDecision struct {
	msg  *labMessage
	last *labhookv1alpha1.LastMessage
}

// decide moves what obj owes along. It returns nil when nothing is to be
// recorded now: the message is in flight (the pool re-enqueues obj when it
// completes) or held (the config's recovery or the object's own
// OutgoingMessage leaving Pending re-enqueues obj).
func (o *outbox) decide(ctx context.Context, obj client.Object, owed *labMessage, requeue *requeuer) (*labDecision, error) {
	uid := obj.GetUID()
	if at, ok := o.labAttempts.get(uid); ok {
		if !at.done {
			return nil, nil
		}
		switch {
		case at.out.NotSent:
			o.labAttempts.forget(uid)
		case at.out.OK():
			return &labDecision{msg: at.msg, last: lastMessage(at.msg.id, at.msg, labhookv1alpha1.MessageDelivered, &at.out, "")}, nil
		case o.labPending.has(obj.GetNamespace(), at.msg.id) && o.ownPending(ctx, obj, at.msg):
			// Its OutgoingMessage was created by an earlier reconcile whose
			// status write conflicted: record it, whatever the cap (it is
			// counted in it already).
			return &labDecision{msg: at.msg, last: lastMessage(at.msg.id, at.msg, labhookv1alpha1.MessagePending, &at.out, at.msg.id)}, nil
		default:
			// The first attempt failed: the retry machinery takes the
			// message over, if the config's cap allows; else it is held.
			name, err := o.recordLabMessage(ctx, obj, at.msg, true)
			switch {
			case err != nil:
				return nil, err
			case name == "":
				o.labAttempts.forget(uid)
				return nil, nil
			case name == namespaceTerminating:
				return &labDecision{msg: at.msg}, nil
			}
			return &labDecision{msg: at.msg, last: lastMessage(name, at.msg, labhookv1alpha1.MessagePending, &at.out, name)}, nil
		}
	}
	if owed == nil {
		return nil, nil
	}
	if owed.silent {
		return &labDecision{msg: owed}, nil
	}
	whc, why, err := o.resolveTarget(ctx, obj.GetNamespace(), owed.ref)
	if err != nil {
		return nil, err
	}
	if whc != nil && len(whc.Spec.EventTypes) > 0 && !slices.Contains(whc.Spec.EventTypes, labhookv1alpha1.MessageType(owed.msgType)) {
		// The config's owner does not want this type: nothing is sent, and
		// lastMessage says so.
		return &labDecision{msg: owed, last: lastMessage(owed.id, owed, labhookv1alpha1.MessageFailed, nil, "")}, nil
	}
	usable, reason := whc != nil, labhookv1alpha1.ReasonNoUsableConfig
	if usable {
		reason, why = o.unusable(whc)
		usable = reason == ""
	}
	accepting := usable && o.health.accepting(whc)
	if accepting && o.opts.RecordDeliveredMessages {
		return o.recordAsMessage(ctx, obj, owed, false)
	}
	if o.labPending.has(obj.GetNamespace(), owed.id) && o.ownPending(ctx, obj, owed) {
		// Its OutgoingMessage exists and recording it was lost (a crash
		// between the create and the status write).
		return &labDecision{msg: owed, last: lastMessage(owed.id, owed, labhookv1alpha1.MessagePending, nil, owed.id)}, nil
	}
	if o.pendingOf(ctx, obj) > 0 {
		// Its own earlier message is still Pending: later changes wait in
		// the object, coalesced (an UPDATED carries the whole spec).
		return nil, nil
	}
	probe := usable && !accepting && !o.opts.RecordDeliveredMessages && o.health.takeProbe(whc, uid)
	if accepting || probe {
		earlier, err := o.pendingInOrder(ctx, obj.GetNamespace(), owed.orderKey())
		if err != nil {
			return nil, err
		}
		if !earlier {
			o.sendDirect(obj, owed, whc, probe, requeue)
			return nil, nil
		}
	}
	if !usable {
		// kubectl describe on the object says why its message waits (the
		// OutgoingMessage that holds it says so in its Ready condition).
		o.recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Deliver", "%s %s waits: %s", owed.msgType, owed.status, why)
	}
	return o.recordAsMessage(ctx, obj, owed, true)
}

// recordAsMessage records owed as an OutgoingMessage (within the config's
// cap when capped), or holds it when the cap is reached.
func (o *outbox) recordAsMessage(ctx context.Context, obj client.Object, owed *labMessage, capped bool) (*labDecision, error) {
	name, err := o.recordLabMessage(ctx, obj, owed, capped)
	if err != nil || name == "" {
		return nil, err
	}
	if name == namespaceTerminating {
		return &labDecision{msg: owed}, nil
	}
	return &labDecision{msg: owed, last: lastMessage(name, owed, labhookv1alpha1.MessagePending, nil, name)}, nil
}

// lastMessage is the status record of m under id.
func lastMessage(id string, m *labMessage, phase labhookv1alpha1.MessagePhase, out *delivery.Outcome, om string) *labhookv1alpha1.LastMessage {
	lm := &labhookv1alpha1.LastMessage{ID: id, Type: m.msgType, Status: m.status, Phase: phase, OutgoingMessage: om}
	if out != nil {
		t := metav1.NewTime(out.Start)
		lm.Time, lm.HTTPStatus, lm.Attempts = &t, int32(out.HTTPStatus), 1
	}
	return lm
}

// pendingInOrder reports whether a Pending OutgoingMessage shares key.
func (o *outbox) pendingInOrder(ctx context.Context, ns, key string) (bool, error) {
	var list labhookv1alpha1.OutgoingMessageList
	if err := o.client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexMessageOrder: key},
		client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("list messages ordered by %s: %w", key, err)
	}
	return slices.ContainsFunc(list.Items, func(m labhookv1alpha1.OutgoingMessage) bool { return isPending(&m) }), nil
}

// sendDirect hands m to the pool. When the attempt completes, its outcome
// waits in memory and obj is re-enqueued to record it.
func (o *outbox) sendDirect(obj client.Object, m *labMessage, whc *labhookv1alpha1.WebhookConfig, probe bool, requeue *requeuer) {
	uid, key := obj.GetUID(), client.ObjectKeyFromObject(obj)
	body, err := wire.OutgoingMessage{MessageID: m.id, Type: m.msgType, Status: m.status, EntityIDs: m.entityIDs,
		Timestamp: wire.FormatTimestamp(o.firstSent(m.id, time.Now())), Context: m.context, Callback: o.opts.CallbackURL}.Marshal()
	at := &attempt{msg: m, whc: whc.DeepCopy(), probe: probe}
	o.labAttempts.start(uid, at)
	via := viaDirect
	if probe {
		via = viaProbe
	}
	whcKey := client.ObjectKeyFromObject(whc)
	o.pool.Submit(delivery.Job{Config: whcKey, Limits: limits(whc),
		Prepare: func(ctx context.Context) (outbound.Request, error) {
			if err != nil {
				return outbound.Request{}, err
			}
			cur, err := o.usableNow(ctx, whcKey)
			if err != nil {
				return outbound.Request{}, err
			}
			if !probe && !o.health.accepting(cur) {
				// It began failing while this waited: hold instead.
				return outbound.Request{}, &notUsableError{msg: "the receiver is failing"}
			}
			return o.request(ctx, cur, m.id, body)
		},
		Done: func(ctx context.Context, out delivery.Outcome) {
			o.health.observe(ctx, at.whc, out, via, m.id)
			o.labAttempts.finish(uid, out)
			requeue.add(key)
		},
	})
}

// request is the signed POST of body to whc.
func (o *outbox) request(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, id string, body []byte) (outbound.Request, error) {
	secrets, err := SigningSecrets(ctx, o.client, whc)
	if err != nil {
		return outbound.Request{}, fmt.Errorf("signing secret of WebhookConfig %s: %w", whc.Name, err)
	}
	authz, err := AuthorizationValue(ctx, o.client, whc)
	if err != nil {
		return outbound.Request{}, fmt.Errorf("authorization of WebhookConfig %s: %w", whc.Name, err)
	}
	return outbound.Request{URL: whc.Spec.URL, MessageID: id, Body: body, Secrets: secrets, Authorization: authz,
		Timeout: requestTimeout(whc)}, nil
}

// namespaceTerminating is what recordLabMessage returns when the
// organisation is being deleted: nothing could deliver the message, and
// holding the object would hold the namespace deletion forever.
const namespaceTerminating = "-"

// capLocks serialises lab OutgoingMessage creation per config, so the
// count and the create are one step and --max-pending-lab-messages holds.
var capLocks sync.Map // "<namespace>/<config or ~default>" → *sync.Mutex

// recordLabMessage creates the OutgoingMessage for m about obj and returns
// its name, or "" when the config's cap of Pending lab messages is reached
// (capped only).
func (o *outbox) recordLabMessage(ctx context.Context, obj client.Object, m *labMessage, capped bool) (string, error) {
	ns := obj.GetNamespace()
	keys, capKey, err := o.capScope(ctx, ns, m.ref)
	if err != nil {
		return "", err
	}
	mu, _ := capLocks.LoadOrStore(ns+"/"+capKey, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if capped && !o.labPending.synced() {
		// Not counted yet: try again shortly rather than overshoot the cap.
		return "", errors.New("the count of Pending lab OutgoingMessages is not complete yet")
	}
	if capped && o.labPending.count(ns, keys) >= o.opts.MaxPendingLabMessages {
		return "", nil
	}
	name, err := o.createOwned(ctx, obj, m)
	if err != nil || name == namespaceTerminating {
		return name, err
	}
	o.labPending.add(ns, name, refKey(m.ref), obj.GetUID(), time.Now())
	return name, nil
}

// capScope returns the refKeys counted against the config m.ref resolves
// to, and a name for that config.
func (o *outbox) capScope(ctx context.Context, ns string, ref *labhookv1alpha1.LocalObjectReference) ([]string, string, error) {
	def, err := DefaultWebhookConfig(ctx, o.client, ns)
	if err != nil {
		return nil, "", err
	}
	name := refKey(ref)
	if name == defaultRef && def != nil {
		name = def.Name
	}
	if def != nil && name == def.Name {
		return []string{def.Name, defaultRef}, name, nil
	}
	return []string{name}, name, nil
}

// maxNameAttempts bounds the deterministic alternative names tried when a
// message's name is taken by an OutgoingMessage that is not the producer's.
const maxNameAttempts = 3

// createOwned creates the OutgoingMessage of m, named by its message id.
// AlreadyExists is success only when the existing message is this object's
// own (its UID label) with the same spec: a crash between creating it and
// recording it in status. A message squatting the name, created by someone
// else, must not suppress the real one: the next deterministic name is
// tried, and past maxNameAttempts the reconcile fails with a Warning event.
func (o *outbox) createOwned(ctx context.Context, obj client.Object, m *labMessage) (string, error) {
	for i := range maxNameAttempts {
		name := m.id
		if i > 0 {
			name = messageName(m.msgType, m.status, string(obj.GetUID()), fmt.Sprintf("%s/%d", m.trigger, i))
		}
		om := o.labOutgoingMessage(obj, m, name)
		err := o.client.Create(ctx, om)
		switch {
		case err == nil:
			return name, nil
		case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			return namespaceTerminating, nil
		case !apierrors.IsAlreadyExists(err):
			return "", fmt.Errorf("create OutgoingMessage %s: %w", name, err)
		}
		existing := &labhookv1alpha1.OutgoingMessage{}
		if err := o.reader.Get(ctx, client.ObjectKeyFromObject(om), existing); err != nil {
			return "", fmt.Errorf("read existing OutgoingMessage %s: %w", name, err)
		}
		if ownedMessage(existing, om) {
			return name, nil
		}
		o.recorder.Eventf(obj, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonMessageNameTaken, "Produce",
			"OutgoingMessage %s exists and is not this object's message (label %s or spec differ); trying another name",
			name, labhookv1alpha1.LabelLabObjectUID)
		log.FromContext(ctx).Info("OutgoingMessage name taken by another object", "messageID", name)
	}
	return "", fmt.Errorf("the names of %s %s's %s message are taken by OutgoingMessages that are not its own", m.kind, obj.GetName(), m.status)
}

// ownedMessage reports whether existing is the message want describes.
func ownedMessage(existing, want *labhookv1alpha1.OutgoingMessage) bool {
	if existing.Labels[labhookv1alpha1.LabelLabObjectUID] != want.Labels[labhookv1alpha1.LabelLabObjectUID] {
		return false
	}
	a, b := existing.Spec.DeepCopy(), want.Spec.DeepCopy()
	ca, cb := a.Context, b.Context
	a.Context, b.Context = nil, nil
	if !equality.Semantic.DeepEqual(a, b) {
		return false
	}
	if (ca == nil) != (cb == nil) {
		return false
	}
	return ca == nil || bytes.Equal(canonicalJSON(ca.Raw), canonicalJSON(cb.Raw))
}

// pendingOf counts obj's Pending OutgoingMessages, checked against the
// cache: the event that woke obj (its message left Pending, or went) is in
// the cache before the count's own informer handler may have seen it.
// Messages this process created a moment ago count even when the cache
// does not show them yet.
func (o *outbox) pendingOf(ctx context.Context, obj client.Object) int {
	n := 0
	for key, e := range o.labPending.entriesOf(obj.GetNamespace(), obj.GetUID()) {
		om := &labhookv1alpha1.OutgoingMessage{}
		err := o.client.Get(ctx, key, om)
		if apierrors.IsNotFound(err) && !e.created.IsZero() {
			// Created by this process and not in the cache yet, or gone.
			err = o.reader.Get(ctx, key, om)
		}
		switch {
		case err == nil && isPending(om):
			n++
		case err == nil, apierrors.IsNotFound(err):
			o.labPending.remove(key)
		default:
			n++
		}
	}
	return n
}

// ownPending reports whether the Pending OutgoingMessage named m.id is
// obj's own message m.
func (o *outbox) ownPending(ctx context.Context, obj client.Object, m *labMessage) bool {
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: m.id}
	existing := &labhookv1alpha1.OutgoingMessage{}
	err := o.client.Get(ctx, key, existing)
	if apierrors.IsNotFound(err) {
		// Created a moment ago by this process: the cache may lag.
		err = o.reader.Get(ctx, key, existing)
	}
	return err == nil && ownedMessage(existing, o.labOutgoingMessage(obj, m, m.id))
}

// labOutgoingMessage is the OutgoingMessage of m, named name, labelled and
// annotated as obj's own. When m was sent before, it carries the first
// attempt's timestamp, so its retries send the same bytes.
func (o *outbox) labOutgoingMessage(obj client.Object, m *labMessage, name string) *labhookv1alpha1.OutgoingMessage {
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: obj.GetNamespace(),
			Labels:    map[string]string{labhookv1alpha1.LabelLabObjectUID: string(obj.GetUID())},
			Annotations: map[string]string{
				// created-at orders messages created within the same second
				// (creationTimestamp has second precision).
				labhookv1alpha1.AnnotationCreatedAt: time.Now().UTC().Format(time.RFC3339Nano),
				labhookv1alpha1.AnnotationLabObject: m.kind + "/" + obj.GetName(),
			},
		},
		Spec: labhookv1alpha1.OutgoingMessageSpec{
			Type:             labhookv1alpha1.MessageType(m.msgType),
			Status:           m.status,
			EntityIDs:        m.entityIDs,
			Context:          &apiextensionsv1.JSON{Raw: m.context},
			WebhookConfigRef: m.ref.DeepCopy(),
		},
	}
	if t, ok := o.sentAt(m.id); ok {
		om.Annotations[labhookv1alpha1.AnnotationTimestamp] = wire.FormatTimestamp(t)
	}
	return om
}

// syncLastMessage brings lastMessage up to date when the OutgoingMessage
// holding it left Pending. With --record-delivered-messages the
// OutgoingMessage itself is the record, and lastMessage only names it.
func (o *outbox) syncLastMessage(ctx context.Context, ns string, lm *labhookv1alpha1.LastMessage) {
	if lm == nil || lm.OutgoingMessage == "" || lm.Phase != labhookv1alpha1.MessagePending || o.opts.RecordDeliveredMessages {
		return
	}
	om := &labhookv1alpha1.OutgoingMessage{}
	if err := o.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: lm.OutgoingMessage}, om); err != nil || isPending(om) {
		return
	}
	// The attempt made before the OutgoingMessage existed counts too.
	lm.Phase, lm.Attempts = om.Status.Phase, lm.Attempts+om.Status.Attempts
	if a := om.Status.LastAttempt; a != nil {
		lm.Time, lm.HTTPStatus = a.Time.DeepCopy(), a.HTTPStatus
	}
}

// write records what the reconcile decided: the status write, or, for a
// deleted object whose last message is recorded, the removal of the
// finalizer. Only once that write is in does the outbox forget the
// attempt. A conflict (the cache was behind) asks for the object to be
// reconciled again, with backoff: the watch event of the newer version may
// be one that notOwnRecord lets pass by, and what this reconcile had to
// write (a Ready change, a recorded attempt) would wait for the next
// change of the object.
//
// The status is written with writeStatus as an Update of the status
// subresource, guarded by the resourceVersion read: a stale read conflicts
// instead of overwriting a newer status (say, the phase the webhookserver
// applied). It costs the API server less than a patch, and claims only the
// fields it changes, so the webhookserver's server-side apply of the phase
// never conflicts with it. One write per change: the benchmark (make bench,
// outgoing) counts them.
//
// status sets the status this reconcile computed on the copy of orig that
// is written.
func (o *outbox) write(ctx context.Context, c client.Client, orig, obj client.Object, d *labDecision, release bool,
	status func(client.Object) bool) (ctrl.Result, error) {
	uid := obj.GetUID()
	if release {
		if err := removeFinalizer(ctx, c, obj); err != nil {
			return ctrl.Result{}, err
		}
		o.recorded(uid, d, mark{deleted: true})
		return ctrl.Result{}, nil
	}
	if _, err := writeStatus(ctx, statusWriter{Client: c, Update: true}, orig, status); apierrors.IsConflict(err) {
		return ctrl.Result{Requeue: true}, nil
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("update status: %w", err)
	}
	gen, last := recordOf(obj)
	m := mark{observedGeneration: gen}
	if last != nil {
		m.lastMessageID = last.ID
	}
	o.recorded(uid, d, m)
	return ctrl.Result{}, nil
}

// recorded forgets what d covered once it is in the object's status.
func (o *outbox) recorded(uid types.UID, d *labDecision, m mark) {
	if d == nil {
		return
	}
	o.labAttempts.forget(uid)
	o.forgetTimestamp(d.msg.id)
	o.marks.set(uid, m)
}

// behind reports whether obj's cached status predates this process's last
// write of it.
func (o *outbox) behind(obj client.Object) bool {
	observedGeneration, last := recordOf(obj)
	return o.marks.behind(obj.GetUID(), observedGeneration, last,
		controllerutil.ContainsFinalizer(obj, labhookv1alpha1.FinalizerOutgoingMessage))
}

// errNotUsable reports whether an attempt was dropped because its config
// stopped taking deliveries.
func errNotUsable(err error) bool {
	var nu *notUsableError
	return errors.As(err, &nu)
}

// notOwnRecord drops the update events of status writes that recorded a
// lab object's last owed message: nothing follows from them, and they would
// cost a second reconcile of every change. It passes every change of spec
// or metadata (finalizers, deletion, annotations, owners), whatever changed
// reports (the phase that drives a resource's Ready), a status that went
// back (someone reset it), and any object that still owes a message after
// the write (the next one is due).
func (ob *outbox) notOwnRecord(changed func(o, n client.Object) bool, owing func(client.Object) bool) predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		// The cache holds n now: a mark of our own write to it is done.
		ng, nl := recordOf(n)
		ob.marks.observed(n.GetUID(), ng, nl)
		if o.GetGeneration() != n.GetGeneration() || !o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
			!equality.Semantic.DeepEqual(o.GetFinalizers(), n.GetFinalizers()) ||
			!equality.Semantic.DeepEqual(o.GetAnnotations(), n.GetAnnotations()) ||
			!equality.Semantic.DeepEqual(o.GetOwnerReferences(), n.GetOwnerReferences()) || changed(o, n) || owing(n) {
			return true
		}
		og, ol := recordOf(o)
		return ng < og || (ol != nil && nl == nil)
	}}
}
