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
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
)

// Field indexes of LabInterfaces.
const (
	// indexInterfaceResource is spec.resourceRef.name, to find a resource's interfaces.
	indexInterfaceResource = "spec.resourceRef.name"
	// indexInterfaceAuthSecret is spec.config.authentication.secretRef.name.
	indexInterfaceAuthSecret = "spec.config.authentication.secretRef.name"
)

// LabInterfaceReconciler resolves a LabInterface's endpoint and readiness
// from its LabResource and credential Secret, and turns every spec change
// into an INTERFACE OutgoingMessage.
//
// entity_ids of an INTERFACE message is [resource id, interface name]: the
// interface has no id of its own in seed 000, and its name is unique only
// within its resource. Because the resource id comes first and is shared with
// the resource's own messages, a resource and its interfaces are delivered in
// one creation order.
//
// Ownership: the interface gets a plain (non-controller) ownerReference to
// its resource, so garbage collection deletes it with the resource. It is not
// controller=true because the webhookserver writes interfaces with server-side
// apply: were it to apply an ownerReference for the same uid without the
// controller flag, a controller=true entry would be a field conflict. A
// plain entry with identical values is co-owned without conflict.
type LabInterfaceReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces/status,verbs=get;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces/finalizers,verbs=update
// +kubebuilder:rbac:groups=labhook.io,resources=labresources,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// Reconcile adds finalizer and ownerReference, produces the due message,
// and records endpoint, Ready and observedGeneration in one status patch.
func (r *LabInterfaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	li := &labhookv1alpha1.LabInterface{}
	if err := r.Get(ctx, req.NamespacedName, li); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !li.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, li)
	}
	res := &labhookv1alpha1.LabResource{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: li.Namespace, Name: li.Spec.ResourceRef.Name}, res); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		res = nil
	}
	if err := r.ensureMetadata(ctx, li, res); err != nil {
		return ctrl.Result{}, err
	}
	orig := li.DeepCopy()
	// The resource id is taken once the resource's own CREATED exists (or it
	// was recorded as an echo), so the backend never hears of an interface
	// before its resource.
	if res != nil && res.Status.ObservedGeneration > 0 {
		li.Status.ResourceID = res.Spec.ID
	}
	readyErr := r.setReady(ctx, li, res)
	var produceErr error
	if readyErr == nil {
		produceErr = r.produce(ctx, li)
	}
	return ctrl.Result{}, errors.Join(readyErr, produceErr, patchProducerStatus(ctx, r.Client, orig, li, orig.Status, li.Status))
}

// ensureMetadata adds the finalizer and, once the resource exists, the
// ownerReference to it, in one metadata patch.
func (r *LabInterfaceReconciler) ensureMetadata(ctx context.Context, li *labhookv1alpha1.LabInterface, res *labhookv1alpha1.LabResource) error {
	orig := li.DeepCopy()
	controllerutil.AddFinalizer(li, labhookv1alpha1.FinalizerOutgoingMessage)
	if res != nil {
		if err := controllerutil.SetOwnerReference(res, li, r.Scheme()); err != nil {
			return fmt.Errorf("set owner: %w", err)
		}
	}
	if equalMeta(orig, li) {
		return nil
	}
	if err := r.Patch(ctx, li, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("patch finalizer and owner: %w", err)
	}
	return nil
}

func equalMeta(a, b *labhookv1alpha1.LabInterface) bool {
	return equality.Semantic.DeepEqual(a.Finalizers, b.Finalizers) &&
		equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
}

// produce creates the CREATED or UPDATED message once the interface's
// resource is known (its id is part of entity_ids and context).
func (r *LabInterfaceReconciler) produce(ctx context.Context, li *labhookv1alpha1.LabInterface) error {
	st := &li.Status
	if st.ResourceID == "" || (st.ObservedGeneration == li.Generation && st.ObservedGeneration != 0) {
		return nil
	}
	emit := func(status, trigger string) (bool, error) {
		ref, existed, err := ensureMessage(ctx, r.Client, li, wire.TypeInterface, li.Spec.WebhookConfigRef,
			interfaceMessage(li, status, trigger))
		if ref != nil {
			st.LastMessage = ref
		}
		return existed, err
	}
	if !echo.IsEcho(li, li.Spec) {
		// As for resources: a CREATED that already existed may be for an
		// older spec whose recording was lost, so UPDATED follows it.
		sendUpdate := true
		if st.ObservedGeneration == 0 {
			existed, err := emit(wire.StatusCreated, triggerCreated)
			if err != nil {
				return err
			}
			sendUpdate = existed && li.Generation > 1
		}
		if sendUpdate {
			if _, err := emit(wire.StatusUpdated, generationTrigger(li.Generation)); err != nil {
				return err
			}
		}
	}
	st.ObservedGeneration = li.Generation
	return nil
}

func interfaceMessage(li *labhookv1alpha1.LabInterface, status, trigger string) producedMessage {
	return producedMessage{
		status:    status,
		trigger:   trigger,
		entityIDs: []string{li.Status.ResourceID, li.Spec.Name},
		context: messageContext{Namespace: li.Namespace, Name: li.Name, Generation: li.Generation,
			Spec: interfaceWire(li.Spec, li.Status.ResourceID)},
	}
}

// finalize sends INTERFACE DELETED (using status.resourceID, as the resource
// may be gone already) unless the backend asked for the deletion or nothing
// was ever sent, then lets the object go.
func (r *LabInterfaceReconciler) finalize(ctx context.Context, li *labhookv1alpha1.LabInterface) error {
	if !controllerutil.ContainsFinalizer(li, labhookv1alpha1.FinalizerOutgoingMessage) {
		return nil
	}
	if li.Status.ObservedGeneration > 0 && li.Status.ResourceID != "" && !echo.IsEchoDelete(li) {
		if _, _, err := ensureMessage(ctx, r.Client, li, wire.TypeInterface, li.Spec.WebhookConfigRef,
			interfaceMessage(li, wire.StatusDeleted, triggerDeleted)); err != nil {
			return err
		}
	}
	return removeFinalizer(ctx, r.Client, li)
}

// setReady resolves the endpoint and the Ready condition: the resource
// exists, the types fit, the credential Secret exists and the resource is READY.
func (r *LabInterfaceReconciler) setReady(ctx context.Context, li *labhookv1alpha1.LabInterface, res *labhookv1alpha1.LabResource) error {
	li.Status.Endpoint = ""
	c := metav1.Condition{Type: labhookv1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: li.Generation}
	defer func() { meta.SetStatusCondition(&li.Status.Conditions, c) }()
	if res == nil {
		c.Reason, c.Message = labhookv1alpha1.ReasonResourceNotFound, fmt.Sprintf("LabResource %s not found", li.Spec.ResourceRef.Name)
		return nil
	}
	if res.Spec.Type != labhookv1alpha1.ResourceTypeVM && li.Spec.Type != labhookv1alpha1.InterfaceWebPage {
		c.Reason, c.Message = labhookv1alpha1.ReasonIncompatibleType, fmt.Sprintf("a %s interface needs a VM resource, %s is %s", li.Spec.Type, res.Name, res.Spec.Type)
		return nil
	}
	li.Status.Endpoint = interfaceEndpoint(li.Spec, res.Spec)
	if auth := interfaceAuth(li.Spec); auth != nil {
		s := &metav1.PartialObjectMetadata{}
		s.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Get(ctx, types.NamespacedName{Namespace: li.Namespace, Name: auth.SecretRef.Name}, s); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("get Secret %s: %w", auth.SecretRef.Name, err)
			}
			c.Reason, c.Message = labhookv1alpha1.ReasonAuthSecretNotFound, fmt.Sprintf("Secret %s not found", auth.SecretRef.Name)
			return nil
		}
	}
	if res.Status.Phase != labhookv1alpha1.PhaseReady {
		c.Reason, c.Message = labhookv1alpha1.ReasonResourceNotReady, fmt.Sprintf("LabResource %s is not READY", res.Name)
		return nil
	}
	if li.Status.Endpoint == "" {
		c.Reason, c.Message = labhookv1alpha1.ReasonResourceNotReady, fmt.Sprintf("LabResource %s has no dns or publicIP", res.Name)
		return nil
	}
	c.Status, c.Reason, c.Message = metav1.ConditionTrue, labhookv1alpha1.ReasonSucceeded, "endpoint "+li.Status.Endpoint
	return nil
}

// interfaceEndpoint is where attendees connect: ssh://host:port (default
// 22), rdp://host:port (default 3389), a WEB_PAGE on a VM at http://host:port
// (https when the port is 443; default 80), a WEB_PAGE on a URL at the
// resource's address. host is the first network interface's dns, else its
// publicIP; "" when the VM has neither.
func interfaceEndpoint(li labhookv1alpha1.LabInterfaceSpec, res labhookv1alpha1.LabResourceSpec) string {
	if res.Type == labhookv1alpha1.ResourceTypeURL {
		if li.Type != labhookv1alpha1.InterfaceWebPage || res.Config == nil {
			return ""
		}
		return res.Config.Address
	}
	host := ""
	if res.Config != nil && len(res.Config.NetworkInterfaces) > 0 {
		nic := res.Config.NetworkInterfaces[0]
		host = nic.DNS
		if host == "" {
			host = nic.PublicIP
		}
	}
	if host == "" {
		return ""
	}
	scheme, port := "http", int32(80)
	switch li.Type {
	case labhookv1alpha1.InterfaceTerminal:
		scheme, port = "ssh", 22
	case labhookv1alpha1.InterfaceDesktop:
		scheme, port = "rdp", 3389
	}
	if li.Config != nil && li.Config.Port != nil {
		port = *li.Config.Port
	}
	if li.Type == labhookv1alpha1.InterfaceWebPage && port == 443 {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// SetupWithManager indexes interfaces by resource and credential Secret and
// watches both, so a resource's phase or a Secret's arrival updates Ready.
// Secrets are watched as metadata only: their data is never needed here.
func (r *LabInterfaceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(context.Background(), &labhookv1alpha1.LabInterface{}, indexInterfaceResource,
		func(o client.Object) []string {
			return []string{o.(*labhookv1alpha1.LabInterface).Spec.ResourceRef.Name}
		}); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &labhookv1alpha1.LabInterface{}, indexInterfaceAuthSecret,
		func(o client.Object) []string {
			if a := interfaceAuth(o.(*labhookv1alpha1.LabInterface).Spec); a != nil {
				return []string{a.SecretRef.Name}
			}
			return nil
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.LabInterface{}).
		Watches(&labhookv1alpha1.LabResource{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexInterfaceResource))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexInterfaceAuthSecret)), builder.OnlyMetadata).
		Named("labinterface").
		WithOptions(controller.Options{MaxConcurrentReconciles: labWorkers}).
		Complete(r)
}

// byIndex maps an object to the interfaces whose field index holds its name.
func (r *LabInterfaceReconciler) byIndex(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list labhookv1alpha1.LabInterfaceList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, li := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&li)})
		}
		return reqs
	}
}

// interfaceAuth returns the interface's authentication, or nil.
func interfaceAuth(spec labhookv1alpha1.LabInterfaceSpec) *labhookv1alpha1.InterfaceAuthentication {
	if spec.Config == nil {
		return nil
	}
	return spec.Config.Authentication
}
