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
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
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
// from its LabResource and credential Secret, and delivers the INTERFACE
// message each spec change calls for, as the LabResource reconciler does
// for resources.
//
// entity_ids of an INTERFACE message is [resource id, interface name]: the
// interface has no id of its own in seed 000, and its name is unique only
// within its resource. Its messages are ordered with its resource's (order
// key lab/<resource id>), and it produces only once its resource's CREATED
// is recorded, so the backend never hears of an interface before its
// resource; a deleted resource deletes its interfaces and sends its own
// DELETED after theirs.
//
// Ownership: the interface gets a plain (non-controller) ownerReference to
// its resource. It is not controller=true because the webhookserver writes
// interfaces with server-side apply: were it to apply an ownerReference for
// the same uid without the controller flag, a controller=true entry would be
// a field conflict. A plain entry with identical values is co-owned without
// conflict.
type LabInterfaceReconciler struct {
	client.Client
	outbox *outbox
}

// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces/status,verbs=get;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces/finalizers,verbs=update
// +kubebuilder:rbac:groups=labhook.io,resources=labresources,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// Reconcile adds finalizer and ownerReference, delivers what the interface
// owes, and records it with endpoint, Ready and observedGeneration in one
// status patch.
func (r *LabInterfaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	li := &labhookv1alpha1.LabInterface{}
	if err := r.Get(ctx, req.NamespacedName, li); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.outbox.behind(li) {
		return ctrl.Result{}, nil
	}
	deleting := !li.DeletionTimestamp.IsZero()
	if deleting && !controllerutil.ContainsFinalizer(li, labhookv1alpha1.FinalizerOutgoingMessage) {
		return ctrl.Result{}, nil
	}
	var readyErr error
	orig := li.DeepCopy()
	if !deleting {
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
		orig = li.DeepCopy()
		// The resource id is taken once the resource's own CREATED is
		// recorded (or it was recorded as an echo), so the backend never
		// hears of an interface before its resource.
		if res != nil && res.Status.ObservedGeneration > 0 {
			li.Status.ResourceID = res.Spec.ID
		}
		readyErr = r.setReady(ctx, li, res)
	}
	var owed *labMessage
	if readyErr == nil {
		var err error
		if owed, err = owedInterface(li); err != nil {
			return ctrl.Result{}, err
		}
	}
	d, decideErr := r.outbox.decide(ctx, li, owed, &r.outbox.requeueInterfaces)
	if d != nil {
		recordInterface(&li.Status, d)
	}
	r.outbox.syncLastMessage(ctx, li.Namespace, li.Status.LastMessage)
	release := deleting && (owed == nil || (d != nil && d.msg.deleted))
	res, err := r.outbox.write(ctx, r.Client, orig, li, d, release,
		func(o client.Object) bool {
			o.(*labhookv1alpha1.LabInterface).Status = *li.Status.DeepCopy()
			return true
		})
	return res, errors.Join(readyErr, decideErr, err)
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

// owedInterface is the message li owes next, or nil: CREATED, UPDATED
// (coalescing changes made while one waits), or, once deleted, a CREATED
// it still owed and then DELETED. Nothing is owed until its resource's id
// is known (status.resourceID); a deleted interface that never had one
// sent nothing and owes nothing.
func owedInterface(li *labhookv1alpha1.LabInterface) (*labMessage, error) {
	st := &li.Status
	deleting := !li.DeletionTimestamp.IsZero()
	switch {
	case st.ResourceID == "":
		return nil, nil
	case deleting && (!controllerutil.ContainsFinalizer(li, labhookv1alpha1.FinalizerOutgoingMessage) || echo.IsEchoDelete(li)):
		return nil, nil
	case !deleting && st.ObservedGeneration == li.Generation && st.ObservedGeneration != 0:
		return nil, nil
	}
	isEcho := echo.IsEcho(li, li.Spec)
	msg := func(status, trigger string, gen int64) (*labMessage, error) {
		m, err := newLabMessage(li, kindInterface, wire.TypeInterface, status, trigger, st.ResourceID,
			[]string{st.ResourceID, li.Spec.Name}, li.Spec.WebhookConfigRef,
			messageContext{Namespace: li.Namespace, Name: li.Name, Generation: li.Generation, Spec: interfaceWire(li.Spec, st.ResourceID)})
		if m != nil {
			m.observedGeneration = gen
		}
		return m, err
	}
	switch {
	case !deleting && isEcho:
		m, err := msg("", "", li.Generation)
		if m != nil {
			m.silent = true
		}
		return m, err
	case st.ObservedGeneration == 0 && !isEcho:
		// As for resources: recording generation 1 makes an UPDATED follow
		// a CREATED that may have gone out earlier for an older spec.
		return msg(wire.StatusCreated, triggerCreated, 1)
	case deleting:
		m, err := msg(wire.StatusDeleted, triggerDeleted, st.ObservedGeneration)
		if m != nil {
			m.deleted = true
		}
		return m, err
	default:
		return msg(wire.StatusUpdated, generationTrigger(li.Generation), li.Generation)
	}
}

// recordInterface writes what d covers into the interface's status.
func recordInterface(st *labhookv1alpha1.LabInterfaceStatus, d *labDecision) {
	st.ObservedGeneration = max(st.ObservedGeneration, d.msg.observedGeneration)
	if d.last != nil {
		st.LastMessage = d.last
	}
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

// SetupWithManager indexes interfaces by resource, credential Secret and
// what they owe, and watches resources and Secrets, so a resource's phase or
// a Secret's arrival updates Ready, their own OutgoingMessages leaving
// Pending, and the delivery pool's completions. Secrets are watched as
// metadata only: their data is never needed here.
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
	if err := indexOwing(mgr, &labhookv1alpha1.LabInterface{}, func(o client.Object) (bool, *labhookv1alpha1.LocalObjectReference, string) {
		li := o.(*labhookv1alpha1.LabInterface)
		return interfaceOwing(li), li.Spec.WebhookConfigRef, li.Status.ResourceID
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.LabInterface{}, builder.WithPredicates(r.outbox.notOwnRecord(
			func(client.Object, client.Object) bool { return false }, interfaceOwing))).
		Watches(&labhookv1alpha1.LabResource{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexInterfaceResource)),
			builder.WithPredicates(resourceChangedForInterfaces())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexInterfaceAuthSecret)), builder.OnlyMetadata).
		Watches(&labhookv1alpha1.OutgoingMessage{}, handler.EnqueueRequestsFromMapFunc(labObjectsOf(mgr.GetClient(), kindInterface)),
			builder.WithPredicates(leftPending())).
		WatchesRawSource(r.outbox.requeueInterfaces.source()).
		Named("labinterface").
		WithOptions(controller.Options{MaxConcurrentReconciles: labWorkers}).
		Complete(r)
}

// interfaceOwing reports whether a LabInterface owes a message it can send:
// until its resource's id is known it can send nothing.
func interfaceOwing(o client.Object) bool {
	li := o.(*labhookv1alpha1.LabInterface)
	return owes(li, li.Status.ObservedGeneration) && (li.Status.ResourceID != "" || !li.DeletionTimestamp.IsZero())
}

// resourceChangedForInterfaces passes the LabResource events its interfaces
// depend on: its spec (endpoint, types), its phase (Ready), the first record
// of its CREATED (their resource id), its deletion. The status write that
// records each of its messages wakes no interface.
func resourceChangedForInterfaces() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*labhookv1alpha1.LabResource), e.ObjectNew.(*labhookv1alpha1.LabResource)
			return o.Generation != n.Generation || o.Status.Phase != n.Status.Phase ||
				(o.Status.ObservedGeneration == 0) != (n.Status.ObservedGeneration == 0) ||
				!o.DeletionTimestamp.Equal(n.DeletionTimestamp)
		},
	}
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
