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
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
)

// labWorkers is the number of LabResource (and LabInterface) reconciles in
// flight. A reconcile never waits on a receiver (sends go to the delivery
// pool), only on an API round trip: a change takes two reconciles, one that
// hands its message to the pool (no API call) and one that records the
// outcome (a status patch), and enough workers keep the first kind from
// queueing behind the second. Reconciles of one object never overlap (the
// workqueue guarantees it).
const labWorkers = 32

// LabResourceReconciler keeps a LabResource's Ready condition in line with
// the phase the backend reports, and delivers the RESOURCE message each spec
// change calls for (SPEC §2.5). entity_ids of its messages is [spec.id].
//
// The resource is its own outbox: the message is sent directly through the
// delivery pool and recorded, with observedGeneration, in one status patch;
// it becomes an OutgoingMessage only when it must wait (see decide).
type LabResourceReconciler struct {
	client.Client
	outbox *outbox
}

// +kubebuilder:rbac:groups=labhook.io,resources=labresources,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labresources/status,verbs=get;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labresources/finalizers,verbs=update
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=labhook.io,resources=outgoingmessages,verbs=get;list;watch;create

// Reconcile delivers what the resource owes, then records it,
// observedGeneration and Ready in one status patch.
func (r *LabResourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	lr := &labhookv1alpha1.LabResource{}
	if err := r.Get(ctx, req.NamespacedName, lr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.outbox.behind(lr) {
		// The watch event of our own last write is on its way.
		return ctrl.Result{}, nil
	}
	deleting := !lr.DeletionTimestamp.IsZero()
	switch {
	case deleting && !controllerutil.ContainsFinalizer(lr, labhookv1alpha1.FinalizerOutgoingMessage):
		return ctrl.Result{}, nil
	case deleting:
		// RESOURCE DELETED goes after its interfaces' DELETED.
		if remaining, err := r.deleteInterfaces(ctx, lr); err != nil || remaining > 0 {
			return ctrl.Result{}, err
		}
	default:
		if err := ensureFinalizer(ctx, r.Client, lr); err != nil {
			return ctrl.Result{}, err
		}
	}
	owed, err := owedResource(lr)
	if err != nil {
		return ctrl.Result{}, err
	}
	orig := lr.DeepCopy()
	d, decideErr := r.outbox.decide(ctx, lr, owed, &r.outbox.requeueResources)
	if d != nil {
		recordResource(&lr.Status, d)
	}
	r.outbox.syncLastMessage(ctx, lr.Namespace, lr.Status.LastMessage)
	setResourceReady(lr)
	release := deleting && (owed == nil || (d != nil && d.msg.deleted))
	res, err := r.outbox.write(ctx, r.Client, orig, lr, d, release,
		func(o client.Object) bool {
			o.(*labhookv1alpha1.LabResource).Status = *lr.Status.DeepCopy()
			return true
		})
	return res, errors.Join(decideErr, err)
}

// owedResource is the message lr owes next, or nil. In order: CREATED
// (which carries the whole spec, restart and replace requests included),
// RESTARTED, REPLACED (a write that sets a new time is that request; other
// fields changed in the same write travel in its context), UPDATED, and,
// once deleted, DELETED. An UPDATED carries the whole spec, so changes made
// while one waits coalesce into the next one; a restart requested twice
// meanwhile is one RESTARTED with the latest time. A deleted resource still
// sends a CREATED or RESTARTED/REPLACED it owed, then DELETED: only its
// UPDATEDs coalesce into the DELETED. Echoes of what the webhookserver
// applied from the backend are recorded and not sent.
func owedResource(lr *labhookv1alpha1.LabResource) (*labMessage, error) {
	st, spec := &lr.Status, &lr.Spec
	restartDue := spec.RestartRequestedAt != nil && !spec.RestartRequestedAt.Equal(st.HandledRestartRequestedAt)
	replaceDue := spec.ReplaceRequestedAt != nil && !spec.ReplaceRequestedAt.Equal(st.HandledReplaceRequestedAt)
	deleting := !lr.DeletionTimestamp.IsZero()
	switch {
	case deleting && (!controllerutil.ContainsFinalizer(lr, labhookv1alpha1.FinalizerOutgoingMessage) || echo.IsEchoDelete(lr)):
		return nil, nil
	case !deleting && st.ObservedGeneration == lr.Generation && st.ObservedGeneration != 0 && !restartDue && !replaceDue:
		return nil, nil
	}
	isEcho := echo.IsEcho(lr, lr.Spec)
	msg := func(status, trigger string) (*labMessage, error) {
		m, err := newLabMessage(lr, kindResource, wire.TypeResource, status, trigger, spec.ID, []string{spec.ID},
			spec.WebhookConfigRef, resourceContext(lr))
		if err != nil {
			return nil, err
		}
		m.observedGeneration = st.ObservedGeneration
		m.handledRestart, m.handledReplace = st.HandledRestartRequestedAt.DeepCopy(), st.HandledReplaceRequestedAt.DeepCopy()
		return m, nil
	}
	handledAll := func(m *labMessage, gen int64) *labMessage {
		m.observedGeneration = gen
		m.handledRestart, m.handledReplace = spec.RestartRequestedAt.DeepCopy(), spec.ReplaceRequestedAt.DeepCopy()
		return m
	}
	switch {
	case !deleting && isEcho:
		m, err := msg("", "")
		if err != nil {
			return nil, err
		}
		m.silent = true
		return handledAll(m, lr.Generation), nil
	case st.ObservedGeneration == 0 && !isEcho:
		// A CREATED recorded at a later generation may have gone out
		// earlier for an older spec (its status record lost in a crash,
		// resent with the same id): recording generation 1 makes an UPDATED
		// follow whenever the spec changed since.
		m, err := msg(wire.StatusCreated, triggerCreated)
		if err != nil {
			return nil, err
		}
		return handledAll(m, 1), nil
	case restartDue && !isEcho:
		m, err := msg(wire.StatusRestarted, timeTrigger(spec.RestartRequestedAt))
		if err != nil {
			return nil, err
		}
		m.handledRestart = spec.RestartRequestedAt.DeepCopy()
		if !replaceDue && !deleting {
			m.observedGeneration = lr.Generation
		}
		return m, nil
	case replaceDue && !isEcho:
		m, err := msg(wire.StatusReplaced, timeTrigger(spec.ReplaceRequestedAt))
		if err != nil {
			return nil, err
		}
		m.handledRestart, m.handledReplace = spec.RestartRequestedAt.DeepCopy(), spec.ReplaceRequestedAt.DeepCopy()
		if !deleting {
			m.observedGeneration = lr.Generation
		}
		return m, nil
	case deleting:
		m, err := msg(wire.StatusDeleted, triggerDeleted)
		if err != nil {
			return nil, err
		}
		m.deleted = true
		return m, nil
	default:
		m, err := msg(wire.StatusUpdated, generationTrigger(lr.Generation))
		if err != nil {
			return nil, err
		}
		return handledAll(m, lr.Generation), nil
	}
}

// recordResource writes what d covers into the resource's status.
func recordResource(st *labhookv1alpha1.LabResourceStatus, d *labDecision) {
	m := d.msg
	st.ObservedGeneration = max(st.ObservedGeneration, m.observedGeneration)
	st.HandledRestartRequestedAt, st.HandledReplaceRequestedAt = m.handledRestart.DeepCopy(), m.handledReplace.DeepCopy()
	if d.last != nil {
		st.LastMessage = d.last
	}
}

// deleteInterfaces deletes the resource's LabInterfaces and returns how
// many are left. Each sends its INTERFACE DELETED before it goes (its own
// finalizer), so RESOURCE DELETED follows them. The resource does it itself
// rather than leave it to garbage collection: its finalizer keeps it in
// storage, so background collection would not start, and foreground
// collection would wait on that finalizer. When the backend asked for the
// resource's deletion, its interfaces are marked the same way, so none of
// their DELETED is echoed back.
func (r *LabResourceReconciler) deleteInterfaces(ctx context.Context, lr *labhookv1alpha1.LabResource) (int, error) {
	var list labhookv1alpha1.LabInterfaceList
	if err := r.List(ctx, &list, client.InNamespace(lr.Namespace), client.MatchingFields{indexInterfaceResource: lr.Name}); err != nil {
		return 0, fmt.Errorf("list interfaces of %s: %w", lr.Name, err)
	}
	source := lr.Annotations[labhookv1alpha1.AnnotationSourceDeleted]
	for i := range list.Items {
		li := &list.Items[i]
		if !li.DeletionTimestamp.IsZero() {
			continue
		}
		if source != "" && !echo.IsEchoDelete(li) {
			orig := li.DeepCopy()
			if li.Annotations == nil {
				li.Annotations = map[string]string{}
			}
			li.Annotations[labhookv1alpha1.AnnotationSourceDeleted] = source
			if err := r.Patch(ctx, li, client.MergeFrom(orig)); client.IgnoreNotFound(err) != nil {
				return 0, fmt.Errorf("mark interface %s deleted by the backend: %w", li.Name, err)
			}
		}
		uid := li.UID
		if err := r.Delete(ctx, li, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return 0, fmt.Errorf("delete interface %s: %w", li.Name, err)
		}
	}
	return len(list.Items), nil
}

func resourceContext(lr *labhookv1alpha1.LabResource) messageContext {
	return messageContext{Namespace: lr.Namespace, Name: lr.Name, Generation: lr.Generation, Spec: resourceWire(lr.Spec)}
}

// setResourceReady makes Ready follow the backend-reported phase.
func setResourceReady(lr *labhookv1alpha1.LabResource) {
	// Ready follows the phase, not the spec; it carries the generation
	// whose message is recorded, so a resource holding a message (its
	// status behind) is not written on every change.
	c := metav1.Condition{Type: labhookv1alpha1.ConditionReady, Reason: labhookv1alpha1.ReasonPhase,
		ObservedGeneration: lr.Status.ObservedGeneration}
	switch lr.Status.Phase {
	case labhookv1alpha1.PhaseReady:
		c.Status, c.Message = metav1.ConditionTrue, "phase is READY"
	case "":
		c.Status, c.Message = metav1.ConditionFalse, "the backend has not reported a phase yet"
	default:
		c.Status, c.Message = metav1.ConditionFalse, fmt.Sprintf("phase is %s", lr.Status.Phase)
	}
	meta.SetStatusCondition(&lr.Status.Conditions, c)
}

// ensureFinalizer adds the outgoing-message finalizer, with an optimistic
// lock so a concurrent metadata change is not overwritten.
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	if controllerutil.ContainsFinalizer(obj, labhookv1alpha1.FinalizerOutgoingMessage) {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, labhookv1alpha1.FinalizerOutgoingMessage)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("add finalizer: %w", err)
	}
	return nil
}

func removeFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, labhookv1alpha1.FinalizerOutgoingMessage)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("remove finalizer: %w", err))
	}
	return nil
}

// SetupWithManager watches LabResources, their interfaces going away (a
// deleted resource waits for them), their own OutgoingMessages leaving
// Pending, and the delivery pool's completions. Status changes are not
// filtered out: the backend's phase drives Ready; owedResource ignores them.
func (r *LabResourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexOwing(mgr, &labhookv1alpha1.LabResource{}, func(o client.Object) (bool, *labhookv1alpha1.LocalObjectReference, string) {
		lr := o.(*labhookv1alpha1.LabResource)
		return resourceOwing(lr), lr.Spec.WebhookConfigRef, lr.Spec.ID
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.LabResource{}, builder.WithPredicates(r.outbox.notOwnRecord(func(o, n client.Object) bool {
			return o.(*labhookv1alpha1.LabResource).Status.Phase != n.(*labhookv1alpha1.LabResource).Status.Phase
		}, resourceOwing))).
		Watches(&labhookv1alpha1.LabInterface{}, handler.EnqueueRequestsFromMapFunc(interfaceResource),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc: func(event.CreateEvent) bool { return false },
				UpdateFunc: func(event.UpdateEvent) bool { return false },
			})).
		Watches(&labhookv1alpha1.OutgoingMessage{}, handler.EnqueueRequestsFromMapFunc(labObjectsOf(mgr.GetClient(), kindResource)),
			builder.WithPredicates(leftPending())).
		WatchesRawSource(r.outbox.requeueResources.source()).
		Named("labresource").
		WithOptions(controller.Options{MaxConcurrentReconciles: labWorkers}).
		Complete(r)
}

// resourceOwing reports whether a LabResource owes a message.
func resourceOwing(o client.Object) bool {
	lr := o.(*labhookv1alpha1.LabResource)
	return owes(lr, lr.Status.ObservedGeneration) || restartOrReplaceDue(lr)
}

// recordOf returns what a lab object's status records of its messages.
func recordOf(obj client.Object) (int64, *labhookv1alpha1.LastMessage) {
	switch o := obj.(type) {
	case *labhookv1alpha1.LabResource:
		return o.Status.ObservedGeneration, o.Status.LastMessage
	case *labhookv1alpha1.LabInterface:
		return o.Status.ObservedGeneration, o.Status.LastMessage
	}
	return 0, nil
}

// restartOrReplaceDue reports whether lr has a restart or replace request
// whose message is not recorded yet.
func restartOrReplaceDue(lr *labhookv1alpha1.LabResource) bool {
	spec, st := &lr.Spec, &lr.Status
	return (spec.RestartRequestedAt != nil && !spec.RestartRequestedAt.Equal(st.HandledRestartRequestedAt)) ||
		(spec.ReplaceRequestedAt != nil && !spec.ReplaceRequestedAt.Equal(st.HandledReplaceRequestedAt))
}

// indexOwing indexes under indexOwes the lab objects owing reports true
// for: by the refKey of their config, under owesAny, and by their resource
// id.
func indexOwing(mgr ctrl.Manager, obj client.Object, owing func(client.Object) (bool, *labhookv1alpha1.LocalObjectReference, string)) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), obj, indexOwes, func(o client.Object) []string {
		if ok, ref, resourceID := owing(o); ok {
			return []string{refKey(ref), owesAny, owesResource + resourceID}
		}
		return nil
	})
}

// owes reports whether a lab object owes a message, for the owes index:
// its status is behind its spec, or it is being deleted with our finalizer.
func owes(obj client.Object, observedGeneration int64) bool {
	if !obj.GetDeletionTimestamp().IsZero() {
		return controllerutil.ContainsFinalizer(obj, labhookv1alpha1.FinalizerOutgoingMessage)
	}
	return observedGeneration != obj.GetGeneration()
}

// interfaceResource maps a LabInterface to its LabResource.
func interfaceResource(_ context.Context, o client.Object) []reconcile.Request {
	li, ok := o.(*labhookv1alpha1.LabInterface)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: li.Namespace, Name: li.Spec.ResourceRef.Name}}}
}

// labObjectsOf maps a RESOURCE or INTERFACE OutgoingMessage to the lab
// objects of kind that share its order: its own object (the
// labhook.io/lab-object annotation), which records the outcome and sends
// what it held meanwhile, and those of its resource ids that owe a message
// and may have waited behind it.
func labObjectsOf(c client.Reader, kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		om, ok := o.(*labhookv1alpha1.OutgoingMessage)
		if !ok || (om.Spec.Type != wire.TypeResource && om.Spec.Type != wire.TypeInterface) {
			return nil
		}
		var reqs []reconcile.Request
		if k, name, ok := strings.Cut(om.Annotations[labhookv1alpha1.AnnotationLabObject], "/"); ok && k == kind &&
			om.Labels[labhookv1alpha1.LabelLabObjectUID] != "" {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: om.Namespace, Name: name}})
		}
		ids := om.Spec.EntityIDs
		if om.Spec.Type == wire.TypeInterface && len(ids) > 0 {
			ids = ids[:1]
		}
		for _, id := range ids {
			var list client.ObjectList = &labhookv1alpha1.LabResourceList{}
			if kind == kindInterface {
				list = &labhookv1alpha1.LabInterfaceList{}
			}
			if err := c.List(ctx, list, client.InNamespace(om.Namespace), client.MatchingFields{indexOwes: owesResource + id}); err != nil {
				log.FromContext(ctx).Info("could not list lab objects of a message", "messageID", om.Name, "error", err.Error())
				continue
			}
			_ = meta.EachListItem(list, func(obj runtime.Object) error {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj.(client.Object))})
				return nil
			})
		}
		return reqs
	}
}
