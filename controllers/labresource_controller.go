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

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
)

// labWorkers is the number of LabResource (and LabInterface) reconciles in
// flight: each one waits on an API round trip or two, so a handful keeps a
// burst of spec changes from queueing behind one another. Reconciles of one
// object never overlap (the workqueue guarantees it).
const labWorkers = 8

// LabResourceReconciler keeps a LabResource's Ready condition in line with
// the phase the backend reports, and turns every spec change into a RESOURCE
// OutgoingMessage (SPEC §2.5). entity_ids of its messages is [spec.id].
type LabResourceReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=labhook.io,resources=labresources,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labresources/status,verbs=get;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labresources/finalizers,verbs=update
// +kubebuilder:rbac:groups=labhook.io,resources=outgoingmessages,verbs=get;list;watch;create

// Reconcile produces the messages the resource's spec changes call for,
// then records them, observedGeneration and Ready in one status patch.
func (r *LabResourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	lr := &labhookv1alpha1.LabResource{}
	if err := r.Get(ctx, req.NamespacedName, lr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !lr.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, lr)
	}
	if err := ensureFinalizer(ctx, r.Client, lr); err != nil {
		return ctrl.Result{}, err
	}
	orig := lr.DeepCopy()
	produceErr := r.produce(ctx, lr)
	setResourceReady(lr)
	// Record whatever was produced even when a later message failed, so the
	// retry does not redo it.
	return ctrl.Result{}, errors.Join(produceErr, patchProducerStatus(ctx, r.Client, orig, lr, orig.Status, lr.Status))
}

// produce creates the message for the current spec unless it was produced
// already (status.observedGeneration and handled* say so) or the change is
// an echo of what the webhookserver applied from the backend.
func (r *LabResourceReconciler) produce(ctx context.Context, lr *labhookv1alpha1.LabResource) error {
	st := &lr.Status
	if st.ObservedGeneration == lr.Generation && st.ObservedGeneration != 0 {
		return nil
	}
	isEcho := echo.IsEcho(lr, lr.Spec)
	emit := func(status, trigger string) (existed bool, err error) {
		if isEcho {
			return false, nil
		}
		ref, existed, err := ensureMessage(ctx, r.Client, lr, wire.TypeResource, lr.Spec.WebhookConfigRef, producedMessage{
			status:    status,
			trigger:   trigger,
			entityIDs: []string{lr.Spec.ID},
			context:   resourceContext(lr),
		})
		if ref != nil {
			st.LastMessage = ref
		}
		return existed, err
	}
	switch {
	case st.ObservedGeneration == 0:
		// CREATED carries the whole spec, restart/replace requests included.
		existed, err := emit(wire.StatusCreated, triggerCreated)
		if err != nil {
			return err
		}
		if existed && lr.Generation > 1 {
			// CREATED went out earlier and recording it was lost, maybe for
			// an older spec: follow it with this generation's UPDATED.
			if _, err := emit(wire.StatusUpdated, generationTrigger(lr.Generation)); err != nil {
				return err
			}
		}
	default:
		// A write that sets a new restart or replace time is that request;
		// other fields changed in the same write travel in its context, so
		// no separate UPDATED is sent for it.
		requested := false
		if t := lr.Spec.RestartRequestedAt; t != nil && !t.Equal(st.HandledRestartRequestedAt) {
			if _, err := emit(wire.StatusRestarted, timeTrigger(t)); err != nil {
				return err
			}
			st.HandledRestartRequestedAt = t.DeepCopy()
			requested = true
		}
		if t := lr.Spec.ReplaceRequestedAt; t != nil && !t.Equal(st.HandledReplaceRequestedAt) {
			if _, err := emit(wire.StatusReplaced, timeTrigger(t)); err != nil {
				return err
			}
			st.HandledReplaceRequestedAt = t.DeepCopy()
			requested = true
		}
		if !requested {
			if _, err := emit(wire.StatusUpdated, generationTrigger(lr.Generation)); err != nil {
				return err
			}
		}
	}
	st.ObservedGeneration = lr.Generation
	st.HandledRestartRequestedAt = lr.Spec.RestartRequestedAt.DeepCopy()
	st.HandledReplaceRequestedAt = lr.Spec.ReplaceRequestedAt.DeepCopy()
	return nil
}

// finalize sends RESOURCE DELETED, unless the backend itself asked for the
// deletion or no message was ever produced, then lets the object go.
func (r *LabResourceReconciler) finalize(ctx context.Context, lr *labhookv1alpha1.LabResource) error {
	if !controllerutil.ContainsFinalizer(lr, labhookv1alpha1.FinalizerOutgoingMessage) {
		return nil
	}
	if lr.Status.ObservedGeneration > 0 && !echo.IsEchoDelete(lr) {
		if _, _, err := ensureMessage(ctx, r.Client, lr, wire.TypeResource, lr.Spec.WebhookConfigRef, producedMessage{
			status:    wire.StatusDeleted,
			trigger:   triggerDeleted,
			entityIDs: []string{lr.Spec.ID},
			context:   resourceContext(lr),
		}); err != nil {
			return err
		}
	}
	return removeFinalizer(ctx, r.Client, lr)
}

func resourceContext(lr *labhookv1alpha1.LabResource) messageContext {
	return messageContext{Namespace: lr.Namespace, Name: lr.Name, Generation: lr.Generation, Spec: resourceWire(lr.Spec)}
}

// setResourceReady makes Ready follow the backend-reported phase.
func setResourceReady(lr *labhookv1alpha1.LabResource) {
	c := metav1.Condition{Type: labhookv1alpha1.ConditionReady, Reason: labhookv1alpha1.ReasonPhase,
		ObservedGeneration: lr.Generation}
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

// patchStatus writes obj's status as a merge patch against orig when the
// status changed; a reconcile that changes nothing writes nothing.
func patchStatus(ctx context.Context, c client.Client, orig, obj client.Object, before, after any, opts ...client.MergeFromOption) error {
	if equality.Semantic.DeepEqual(before, after) {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, opts...)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("patch status: %w", err))
	}
	return nil
}

// patchProducerStatus records what a producer did, locked on the
// resourceVersion it read. A producer that read a stale cache (say, a spec
// change seen before its own previous status write) must not record the
// stale observedGeneration: the conflict drops this write, and the watch
// event of the newer version reconciles again.
func patchProducerStatus(ctx context.Context, c client.Client, orig, obj client.Object, before, after any) error {
	err := patchStatus(ctx, c, orig, obj, before, after, client.MergeFromWithOptimisticLock{})
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// SetupWithManager watches LabResources. Status changes are not filtered
// out: the backend's phase drives Ready. produce itself ignores them.
func (r *LabResourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.LabResource{}).
		Named("labresource").
		WithOptions(controller.Options{MaxConcurrentReconciles: labWorkers}).
		Complete(r)
}
