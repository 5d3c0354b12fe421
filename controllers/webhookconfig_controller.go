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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/controllers/outbound"
)

// indexWebhookConfigSecretNames indexes WebhookConfigs by the Secrets they
// reference (secretRef and authorizationSecretRef), so a change to one of
// those Secrets re-tests exactly the configs that use it.
const indexWebhookConfigSecretNames = "webhookconfig.spec.secretNames"

// WebhookConfigReconciler keeps a WebhookConfig's signing Secret, tests its
// receiver and reports the state of seed 002 (new, valid, invalid,
// deactivated). Delivery statistics (status.deliveries) and invalidation
// after failing deliveries belong to the OutgoingMessage reconciler; this
// one never writes them.
type WebhookConfigReconciler struct {
	// Client is the manager's cached client, for lists and writes.
	client.Client
	// APIReader reads the config and its Secrets uncached. A test message is
	// a side effect seen by a customer, and a cache that lags behind our own
	// last status write would send it twice; configs are few, so the reads
	// are cheap.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Outbound  *outbound.Client
	Options   Options
	// Throttle, when set, waits for the config's rate limit
	// (spec.maxRequestsPerSecond) before a test message is sent.
	Throttle func(context.Context, *labhookv1alpha1.WebhookConfig) error
	// Clock tells the time of tests, backoff and rotation; nil is the real
	// clock. Tests set a k8s.io/utils/clock/testing.FakeClock.
	Clock clock.PassiveClock
}

func (r *WebhookConfigReconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

// +kubebuilder:rbac:groups=labhook.io,resources=webhookconfigs,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=labhook.io,resources=webhookconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile loads the config and runs the steps of reconcile; a deferred
// write records status once (writeStatus) and the state label if it
// changed, whatever the steps returned.
func (r *WebhookConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	var whc labhookv1alpha1.WebhookConfig
	if err := r.APIReader.Get(ctx, req.NamespacedName, &whc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !whc.DeletionTimestamp.IsZero() {
		// The generated Secret is owned, so garbage collection removes it.
		return ctrl.Result{}, nil
	}
	read := whc.DeepCopy()
	defer func() {
		if werr := r.writeStatus(ctx, read, &whc); werr != nil {
			res, err = ctrl.Result{}, errors.Join(err, werr)
		}
	}()
	return r.reconcile(ctx, &whc, r.clock().Now())
}

// writeStatus records what the reconcile computed in whc: the kstatus
// conditions derived from it, observedGeneration, then the status write
// and the state label.
func (r *WebhookConfigReconciler) writeStatus(ctx context.Context, read, whc *labhookv1alpha1.WebhookConfig) error {
	summarise(whc)
	whc.Status.ObservedGeneration = whc.Generation
	observeGeneration(whc.Status.Conditions, whc.Generation, ownedConditions...)
	desired := whc.Status.DeepCopy()
	if _, err := writeStatus(ctx, statusWriter{Client: r.Client, Reader: r.APIReader}, read,
		func(w *labhookv1alpha1.WebhookConfig) bool {
			applyOwnedStatus(&w.Status, desired)
			return true
		}); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return r.mirrorState(ctx, whc)
}

// reconcile runs the steps in order. It only changes whc in memory; the
// Secret writes and the test message are its side effects.
func (r *WebhookConfigReconciler) reconcile(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, now time.Time) (ctrl.Result, error) {
	if err := r.reconcileDefault(ctx, whc); err != nil {
		return ctrl.Result{}, err
	}
	var after requeue
	secret, err := r.reconcileSigningSecret(ctx, whc, now, &after)
	if err != nil {
		return r.secretProblem(whc, err)
	}
	secrets, err := secretsFrom(secret, whc, now)
	if err != nil {
		return r.secretProblem(whc, err)
	}
	if err := checkScheme(whc, secret.Name, secrets[0]); err != nil {
		return r.secretProblem(whc, err)
	}
	whc.Status.PublicKey, whc.Status.PreviousPublicKey = publicKeys(secrets)
	auth, err := AuthorizationValue(ctx, r.APIReader, whc)
	if err != nil {
		return r.secretProblem(whc, err)
	}
	if whc.Spec.Deactivated {
		r.markDeactivated(whc)
		return after.result(now), nil
	}
	fp := fingerprint(whc, secret.Name, secrets[0], auth)
	// Our own rotation moved the tested secret to previousSecret: during
	// the grace period every message still carries a signature the receiver
	// accepts, so the rotation alone is not a change to test. A switch of
	// scheme is: the receiver must now verify the other kind of signature.
	if prev := strings.TrimSpace(string(secret.Data[labhookv1alpha1.SecretKeyPreviousSigning])); prev != "" &&
		keyScheme(prev) == keyScheme(secrets[0]) &&
		whc.Status.TestedFingerprint == fingerprint(whc, secret.Name, prev, auth) {
		whc.Status.TestedFingerprint = fp
	}
	r.reconcileTest(ctx, whc, fp, secrets, auth, now, &after)
	return after.result(now), nil
}

// requeue collects the earliest time something is due.
type requeue struct{ at time.Time }

func (q *requeue) when(t time.Time) {
	if q.at.IsZero() || t.Before(q.at) {
		q.at = t
	}
}

func (q requeue) result(now time.Time) ctrl.Result {
	if q.at.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(q.at.Sub(now), time.Millisecond)}
}

// ownedConditions are the condition types this reconciler writes. Others
// (Backlogged) belong to the delivery reconciler and are preserved.
var ownedConditions = []string{
	labhookv1alpha1.ConditionReady, labhookv1alpha1.ConditionReconciling, labhookv1alpha1.ConditionStalled,
	labhookv1alpha1.ConditionDefaultConflict, labhookv1alpha1.ConditionSecretRotation,
}

// stalledReasons are the Ready reasons of an invalid config that retrying
// does not fix: a person must change the Secret, the url or the policy (or,
// after a 410, ask for a test).
var stalledReasons = []string{
	labhookv1alpha1.ReasonSecretError, labhookv1alpha1.ReasonSecretNotOptedIn,
	labhookv1alpha1.ReasonRefusedByPolicy, labhookv1alpha1.ReasonEndpointGone,
}

// summarise derives the kstatus conditions from Ready, so a config reports
// them alike however it got there (a test, a Secret problem, the outbox's
// invalidation or 410 Gone): Reconciling True while the test message is
// pending and while an invalid config waits for its next backoff test;
// Stalled True while Ready is False for one of stalledReasons. They are
// never both True.
func summarise(whc *labhookv1alpha1.WebhookConfig) {
	ready := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionReady)
	if ready == nil {
		return
	}
	stalled := ready.Status == metav1.ConditionFalse && slices.Contains(stalledReasons, ready.Reason)
	if stalled {
		setCondition(whc, labhookv1alpha1.ConditionStalled, metav1.ConditionTrue, ready.Reason, ready.Message)
	} else {
		meta.RemoveStatusCondition(&whc.Status.Conditions, labhookv1alpha1.ConditionStalled)
	}
	st := &whc.Status
	switch {
	case ready.Status == metav1.ConditionUnknown:
		setCondition(whc, labhookv1alpha1.ConditionReconciling, metav1.ConditionTrue, ready.Reason, ready.Message)
	case !stalled && st.State == labhookv1alpha1.StateInvalid && st.NextTestTime != nil:
		setCondition(whc, labhookv1alpha1.ConditionReconciling, metav1.ConditionTrue, labhookv1alpha1.ReasonRetrying,
			"invalid: "+ready.Reason+"; the next test is at "+st.NextTestTime.UTC().Format(time.RFC3339))
	case ready.Status == metav1.ConditionTrue:
		setCondition(whc, labhookv1alpha1.ConditionReconciling, metav1.ConditionFalse, labhookv1alpha1.ReasonSucceeded, ready.Message)
	default:
		setCondition(whc, labhookv1alpha1.ConditionReconciling, metav1.ConditionFalse, ready.Reason, ready.Message)
	}
}

func setCondition(whc *labhookv1alpha1.WebhookConfig, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&whc.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: whc.Generation,
	})
}

// event records a Kubernetes Event on whc.
func (r *WebhookConfigReconciler) event(whc *labhookv1alpha1.WebhookConfig, typ, reason, action, note string, args ...any) {
	r.Recorder.Eventf(whc, nil, typ, reason, action, note, args...)
}

// --- default -----------------------------------------------------------------

// DefaultWebhookConfig returns the namespace's default WebhookConfig: the
// oldest (by creationTimestamp, then name) with spec.default set that is not
// being deleted, whatever its state. It returns nil when there is none.
// Every reconciler that needs "the namespace default" uses this, so they all
// agree with the DefaultConflict condition.
func DefaultWebhookConfig(ctx context.Context, c client.Reader, namespace string) (*labhookv1alpha1.WebhookConfig, error) {
	var list labhookv1alpha1.WebhookConfigList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list webhookconfigs in %s: %w", namespace, err)
	}
	return oldestDefault(list.Items), nil
}

func oldestDefault(items []labhookv1alpha1.WebhookConfig) *labhookv1alpha1.WebhookConfig {
	var winner *labhookv1alpha1.WebhookConfig
	for i := range items {
		w := &items[i]
		if !w.Spec.Default || !w.DeletionTimestamp.IsZero() {
			continue
		}
		if winner == nil || w.CreationTimestamp.Before(&winner.CreationTimestamp) ||
			(w.CreationTimestamp.Equal(&winner.CreationTimestamp) && w.Name < winner.Name) {
			winner = w
		}
	}
	return winner
}

// reconcileDefault sets DefaultConflict on a default that is not the oldest.
func (r *WebhookConfigReconciler) reconcileDefault(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) error {
	had := meta.IsStatusConditionTrue(whc.Status.Conditions, labhookv1alpha1.ConditionDefaultConflict)
	if !whc.Spec.Default {
		if meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionDefaultConflict) != nil {
			setCondition(whc, labhookv1alpha1.ConditionDefaultConflict, metav1.ConditionFalse,
				labhookv1alpha1.ReasonNoDefaultConflict, "spec.default is not set")
		}
		return nil
	}
	var list labhookv1alpha1.WebhookConfigList
	if err := r.List(ctx, &list, client.InNamespace(whc.Namespace)); err != nil {
		return fmt.Errorf("list webhookconfigs: %w", err)
	}
	// The cache may not hold this config yet, or an older copy of it.
	items := slices.DeleteFunc(list.Items, func(w labhookv1alpha1.WebhookConfig) bool { return w.UID == whc.UID })
	winner := oldestDefault(append(items, *whc))
	if winner.UID == whc.UID {
		setCondition(whc, labhookv1alpha1.ConditionDefaultConflict, metav1.ConditionFalse,
			labhookv1alpha1.ReasonNoDefaultConflict, "this is the default WebhookConfig of the namespace")
		return nil
	}
	setCondition(whc, labhookv1alpha1.ConditionDefaultConflict, metav1.ConditionTrue, labhookv1alpha1.ReasonDefaultConflict,
		fmt.Sprintf("WebhookConfig %s is older and is the namespace default; unset spec.default on one of them", winner.Name))
	if !had {
		r.event(whc, corev1.EventTypeWarning, labhookv1alpha1.ReasonDefaultConflict, "ResolveDefault",
			"WebhookConfig %s is older and is the namespace default; this one is not used as default", winner.Name)
	}
	return nil
}

// --- secrets -------------------------------------------------------------------

// reconcileSigningSecret returns the Secret to sign with: the referenced
// one, or the generated one, created, adopted and rotated as needed.
func (r *WebhookConfigReconciler) reconcileSigningSecret(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, now time.Time, after *requeue) (*corev1.Secret, error) {
	whc.Status.SecretName = signingSecretName(whc)
	if whc.Spec.SecretRef != nil {
		return r.referencedSecret(ctx, whc)
	}
	return r.generatedSecret(ctx, whc, now, after)
}

// rotationRequest returns the rotate-secret-requested-at value when it has
// not been handled yet.
func rotationRequest(whc *labhookv1alpha1.WebhookConfig) (string, bool) {
	req := HandledRequest(whc.Annotations[labhookv1alpha1.AnnotationRotateSecretRequestedAt])
	return req, req != "" && req != whc.Status.LastHandledRotateRequest
}

// referencedSecret reads the Secret the user owns. It never writes it, so a
// rotation request is refused, with directions.
func (r *WebhookConfigReconciler) referencedSecret(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) (*corev1.Secret, error) {
	name := whc.Spec.SecretRef.Name
	whc.Status.Rotation = nil
	if req, ok := rotationRequest(whc); ok {
		whc.Status.LastHandledRotateRequest = req
		msg := fmt.Sprintf("not rotated: spec.secretRef names Secret %s, which you own; change its key %q "+
			"(put the old value in %q while receivers switch) instead", name,
			labhookv1alpha1.SecretKeySigning, labhookv1alpha1.SecretKeyPreviousSigning)
		setCondition(whc, labhookv1alpha1.ConditionSecretRotation, metav1.ConditionFalse, labhookv1alpha1.ReasonRotationRefused, msg)
		r.event(whc, corev1.EventTypeWarning, labhookv1alpha1.ReasonRotationRefused, "RotateSecret", "Secret rotation %s", msg)
	} else if c := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionSecretRotation); c != nil && c.Reason != labhookv1alpha1.ReasonRotationRefused {
		// Left over from a generated secret's rotation.
		meta.RemoveStatusCondition(&whc.Status.Conditions, labhookv1alpha1.ConditionSecretRotation)
	}
	var secret corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: whc.Namespace, Name: name}, &secret); err != nil {
		return nil, fmt.Errorf("signing secret %s: %w", name, err)
	}
	return &secret, nil
}

// generatedSecret keeps <name>-signing: created when missing, adopted and
// repaired when it drifted, rotated on request, and rid of previousSecret
// when the grace period is over; all in one write.
func (r *WebhookConfigReconciler) generatedSecret(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, now time.Time, after *requeue) (*corev1.Secret, error) {
	name := whc.Status.SecretName
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: whc.Namespace, Name: name}, &secret)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.createSigningSecret(ctx, whc, name, &secret); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("get signing secret %s: %w", name, err)
	}
	before := secret.DeepCopy()
	if err := r.adoptSigningSecret(whc, &secret); err != nil {
		return nil, err
	}
	// spec.signature changed: a key of the new scheme, the old one kept
	// for the grace period like a rotation's.
	from := keyScheme(string(secret.Data[labhookv1alpha1.SecretKeySigning]))
	switched := from != signingScheme(whc)
	if switched {
		if err := r.rotate(&secret, whc, secret.Annotations[labhookv1alpha1.AnnotationRotatedForRequest], now); err != nil {
			return nil, err
		}
	}
	req, rotateRequested := rotationRequest(whc)
	rotatedNow := rotateRequested && secret.Annotations[labhookv1alpha1.AnnotationRotatedForRequest] != req
	if rotatedNow {
		if err := r.rotate(&secret, whc, req, now); err != nil {
			return nil, err
		}
	}
	expireRotation(&secret, now)
	if !equality.Semantic.DeepEqual(before, &secret) {
		if err := r.Update(ctx, &secret); err != nil {
			return nil, fmt.Errorf("update signing secret %s: %w", name, err)
		}
	}
	if rotateRequested {
		whc.Status.LastHandledRotateRequest = req
	}
	if switched {
		r.event(whc, corev1.EventTypeNormal, labhookv1alpha1.ReasonSignatureSchemeChanged, "RotateSecret",
			"Signing key switched from %s to %s; the %s key also signs until %s", from, signingScheme(whc), from,
			secret.Annotations[labhookv1alpha1.AnnotationPreviousSecretExpiresAt])
	}
	if rotatedNow {
		r.event(whc, corev1.EventTypeNormal, labhookv1alpha1.ReasonSecretRotated, "RotateSecret",
			"Signing secret rotated; the previous one also signs until %s", secret.Annotations[labhookv1alpha1.AnnotationPreviousSecretExpiresAt])
	}
	r.reportRotation(whc, &secret, after)
	return &secret, nil
}

func (r *WebhookConfigReconciler) createSigningSecret(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, name string, secret *corev1.Secret) error {
	value, err := newSigningKey(signingScheme(whc))
	if err != nil {
		return err
	}
	*secret = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: whc.Namespace, Name: name,
			Labels: map[string]string{labhookv1alpha1.LabelWebhookConfig: whc.Name}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{labhookv1alpha1.SecretKeySigning: []byte(value)},
	}
	if err := controllerutil.SetControllerReference(whc, secret, r.Scheme()); err != nil {
		return fmt.Errorf("own signing secret: %w", err)
	}
	if err := r.Create(ctx, secret); err != nil {
		// AlreadyExists: created meanwhile; the next reconcile reads it.
		return fmt.Errorf("create signing secret %s: %w", name, err)
	}
	r.event(whc, corev1.EventTypeNormal, labhookv1alpha1.ReasonSecretGenerated, "GenerateSecret", "Generated signing Secret %s", name)
	return nil
}

// adoptSigningSecret makes an existing <name>-signing Secret ours: owned,
// labelled and holding a usable secret. A Secret controlled by something
// else is left alone and reported.
func (r *WebhookConfigReconciler) adoptSigningSecret(whc *labhookv1alpha1.WebhookConfig, secret *corev1.Secret) error {
	if owner := metav1.GetControllerOf(secret); owner != nil && owner.UID != whc.UID {
		return fmt.Errorf("signing secret %s is controlled by %s %s: %w", secret.Name, owner.Kind, owner.Name, ErrSecretUnusable)
	}
	if err := controllerutil.SetControllerReference(whc, secret, r.Scheme()); err != nil {
		return fmt.Errorf("own signing secret: %w", err)
	}
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[labhookv1alpha1.LabelWebhookConfig] = whc.Name
	if _, err := secretsFrom(secret, whc, r.clock().Now()); err != nil {
		// Ours and unusable (edited by hand): a new secret is the only repair.
		value, err := newSigningKey(signingScheme(whc))
		if err != nil {
			return err
		}
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		secret.Data[labhookv1alpha1.SecretKeySigning] = []byte(value)
		delete(secret.Data, labhookv1alpha1.SecretKeyPreviousSigning)
	}
	return nil
}

// rotate moves the current key to previousSecret and generates a new one
// of the scheme whc asks for. The request it answers (if any) and the
// grace period are recorded on the Secret itself, in the same write.
func (r *WebhookConfigReconciler) rotate(secret *corev1.Secret, whc *labhookv1alpha1.WebhookConfig, request string, now time.Time) error {
	value, err := newSigningKey(signingScheme(whc))
	if err != nil {
		return err
	}
	secret.Data[labhookv1alpha1.SecretKeyPreviousSigning] = secret.Data[labhookv1alpha1.SecretKeySigning]
	secret.Data[labhookv1alpha1.SecretKeySigning] = []byte(value)
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	if request != "" {
		secret.Annotations[labhookv1alpha1.AnnotationRotatedForRequest] = request
	}
	secret.Annotations[labhookv1alpha1.AnnotationRotatedAt] = now.UTC().Format(time.RFC3339)
	secret.Annotations[labhookv1alpha1.AnnotationPreviousSecretExpiresAt] = now.Add(r.Options.RotationGracePeriod).UTC().Format(time.RFC3339)
	return nil
}

// expireRotation drops previousSecret once its grace period is over.
func expireRotation(secret *corev1.Secret, now time.Time) {
	exp, err := time.Parse(time.RFC3339, secret.Annotations[labhookv1alpha1.AnnotationPreviousSecretExpiresAt])
	if _, has := secret.Data[labhookv1alpha1.SecretKeyPreviousSigning]; !has || (err == nil && !now.Before(exp)) {
		delete(secret.Data, labhookv1alpha1.SecretKeyPreviousSigning)
		delete(secret.Annotations, labhookv1alpha1.AnnotationPreviousSecretExpiresAt)
	}
}

// reportRotation derives status.rotation and the SecretRotation condition
// from the generated Secret, and wakes up when the grace period ends.
func (r *WebhookConfigReconciler) reportRotation(whc *labhookv1alpha1.WebhookConfig, secret *corev1.Secret, after *requeue) {
	exp, expErr := time.Parse(time.RFC3339, secret.Annotations[labhookv1alpha1.AnnotationPreviousSecretExpiresAt])
	rotated, rotErr := time.Parse(time.RFC3339, secret.Annotations[labhookv1alpha1.AnnotationRotatedAt])
	if _, has := secret.Data[labhookv1alpha1.SecretKeyPreviousSigning]; !has || expErr != nil || rotErr != nil {
		whc.Status.Rotation = nil
		meta.RemoveStatusCondition(&whc.Status.Conditions, labhookv1alpha1.ConditionSecretRotation)
		return
	}
	whc.Status.Rotation = &labhookv1alpha1.SecretRotation{RotatedTime: metav1.NewTime(rotated), PreviousExpiresAt: metav1.NewTime(exp)}
	setCondition(whc, labhookv1alpha1.ConditionSecretRotation, metav1.ConditionTrue, labhookv1alpha1.ReasonRotationGrace,
		fmt.Sprintf("the previous signing secret also signs until %s", exp.Format(time.RFC3339)))
	after.when(exp)
}

// secretProblem reports a Secret that is missing or unusable: the config is
// invalid until a person fixes it, and the Secret watch brings it back. A
// Secret the API server forbids creating (the organisation's ResourceQuota
// is used up) is reported the same way, with the API server's message,
// which names the quota; as nothing labhook watches says when the quota
// frees up, the error is also returned so the config is retried with
// backoff.
func (r *WebhookConfigReconciler) secretProblem(whc *labhookv1alpha1.WebhookConfig, err error) (ctrl.Result, error) {
	forbidden := apierrors.IsForbidden(err)
	if !apierrors.IsNotFound(err) && !errors.Is(err, ErrSecretUnusable) && !forbidden {
		return ctrl.Result{}, err
	}
	st := &whc.Status
	prevReady := meta.FindStatusCondition(st.Conditions, labhookv1alpha1.ConditionReady)
	st.TestedFingerprint = "" // test again once the Secret is fixed
	st.NextTestTime = nil
	st.PublicKey, st.PreviousPublicKey = "", "" // nothing signs

	if !whc.Spec.Deactivated {
		st.State = labhookv1alpha1.StateInvalid
	} else {
		st.State = labhookv1alpha1.StateDeactivated
	}
	msg, reason := err.Error(), labhookv1alpha1.ReasonSecretError
	if errors.Is(err, ErrSecretNotOptedIn) {
		reason = labhookv1alpha1.ReasonSecretNotOptedIn
	}
	setCondition(whc, labhookv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	if prevReady == nil || prevReady.Reason != reason || prevReady.Message != msg {
		r.event(whc, corev1.EventTypeWarning, reason, "ReadSecret", "%s", msg)
	}
	if forbidden {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// fingerprint identifies what a test proves: the url, the signing secret
// and the authorization. It is one SHA-256 over all of them, so it reveals
// nothing about a low-entropy authorization value on its own.
func fingerprint(whc *labhookv1alpha1.WebhookConfig, secretName, signing, auth string) string {
	h := sha256.New()
	authRef := ""
	if ref := whc.Spec.AuthorizationSecretRef; ref != nil {
		authRef = ref.Name + "/" + ref.Key
	}
	for _, part := range []string{whc.Spec.URL, secretName, signing, authRef, auth} {
		// Length-prefixed, so ("ab","c") and ("a","bc") differ.
		_, _ = fmt.Fprintf(h, "%d:%s;", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// --- state and tests -------------------------------------------------------------

// redactedURL is u for conditions, events and logs, without userinfo,
// query or fragment, where tokens live: logs and Events are read more
// widely than the config itself.
func redactedURL(u string) string {
	if r := outbound.RedactURL(u); r != "" {
		return r
	}
	return "the configured url"
}

// HandledRequest is how the value of a request annotation
// (labhook.io/test-requested-at, rotate-secret-requested-at,
// redeliver-requested-at) is recorded in a status lastHandled*Request
// field: as is when it fits the field's 253 characters, else as "sha256:"
// and its hex digest. An annotation value may be up to 256 KiB; this keeps
// any value comparable without ever failing the status write.
func HandledRequest(value string) string {
	if len(value) <= 253 {
		return value
	}
	sum := sha256.Sum256([]byte(value))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (r *WebhookConfigReconciler) markDeactivated(whc *labhookv1alpha1.WebhookConfig) {
	st := &whc.Status
	if st.State != labhookv1alpha1.StateDeactivated {
		r.event(whc, corev1.EventTypeNormal, labhookv1alpha1.ReasonDeactivated, "Deactivate", "Deactivated: nothing is delivered to %s", redactedURL(whc.Spec.URL))
	}
	st.State = labhookv1alpha1.StateDeactivated
	st.TestedFingerprint = "" // reactivation makes it new and tests it
	st.NextTestTime = nil
	setCondition(whc, labhookv1alpha1.ConditionReady, metav1.ConditionFalse, labhookv1alpha1.ReasonDeactivated,
		"spec.deactivated is true: nothing is delivered; set it to false to test and use this config again")
}

// reconcileTest decides whether a test message is due and sends it.
//
// A config whose url, secret or authorization differ from what was last
// tested (created, changed, reactivated) first becomes new, in its own
// status write, so the state is visible while the test runs; the status
// change brings the config back here, and the test is sent. An explicit
// test request and the backoff re-test of an invalid config test at once
// without passing through new.
func (r *WebhookConfigReconciler) reconcileTest(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, fp string,
	secrets []string, auth string, now time.Time, after *requeue) {
	st := &whc.Status
	if fp != st.TestedFingerprint && st.State != labhookv1alpha1.StateNew {
		st.State = labhookv1alpha1.StateNew
		st.NextTestTime = nil
		msg := "sending a test message to " + redactedURL(whc.Spec.URL)
		setCondition(whc, labhookv1alpha1.ConditionReady, metav1.ConditionUnknown, labhookv1alpha1.ReasonTestPending, msg)
		return
	}
	requested := HandledRequest(whc.Annotations[labhookv1alpha1.AnnotationTestRequestedAt])
	testRequested := requested != "" && requested != st.LastHandledTestRequest
	if !testRequested && !r.testDue(st, fp, now, after) {
		return
	}
	interval := r.nextBackoff(st)
	result, id := r.sendTest(ctx, whc, secrets, auth)
	st.TestedFingerprint = fp
	if requested != "" {
		st.LastHandledTestRequest = requested
	}
	r.recordTest(whc, result, id, now, interval, testRequested, after)
}

// testDue says whether a test is due without being asked for: the config is
// new, or it is invalid and its backoff has passed.
func (r *WebhookConfigReconciler) testDue(st *labhookv1alpha1.WebhookConfigStatus, fp string, now time.Time, after *requeue) bool {
	if st.State == labhookv1alpha1.StateNew || fp != st.TestedFingerprint {
		return true
	}
	if st.State != labhookv1alpha1.StateInvalid {
		return false
	}
	if c := meta.FindStatusCondition(st.Conditions, labhookv1alpha1.ConditionReady); (c != nil && c.Reason == labhookv1alpha1.ReasonEndpointGone) ||
		(st.LastTest != nil && st.LastTest.HTTPStatus == http.StatusGone) {
		// 410 Gone is for good: only a new url (a new fingerprint) or an
		// explicit test request tests it again, never the backoff.
		st.NextTestTime = nil
		return false
	}
	if st.NextTestTime == nil {
		// Made invalid elsewhere (deliveries kept failing): start the backoff.
		st.NextTestTime = &metav1.Time{Time: now.Add(r.Options.TestBackoffMin)}
	}
	if now.Before(st.NextTestTime.Time) {
		after.when(st.NextTestTime.Time)
		return false
	}
	return true
}

// recordTest turns a test's result into state, lastTest, Ready and an
// event. Events mark state changes and answers to explicit requests, not
// every backoff re-test.
func (r *WebhookConfigReconciler) recordTest(whc *labhookv1alpha1.WebhookConfig, result outbound.Result, id string,
	now time.Time, interval time.Duration, requested bool, after *requeue) {
	st := &whc.Status
	prevState := st.State
	st.LastTest = &labhookv1alpha1.WebhookConfigTest{
		Time: metav1.NewTime(now), MessageID: id, HTTPStatus: int32(result.HTTPStatus),
		Duration: metav1.Duration{Duration: result.Duration.Round(time.Millisecond)},
	}
	if result.OK() {
		st.State = labhookv1alpha1.StateValid
		st.NextTestTime = nil
		msg := fmt.Sprintf("test message %s answered HTTP %d in %s", id, result.HTTPStatus, st.LastTest.Duration.Duration)
		setCondition(whc, labhookv1alpha1.ConditionReady, metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, msg)
		if prevState != labhookv1alpha1.StateValid || requested {
			r.event(whc, corev1.EventTypeNormal, labhookv1alpha1.ReasonTestSucceeded, "Test", "Valid: %s", msg)
		}
		return
	}
	st.LastTest.Error = result.Err.Error()
	st.State = labhookv1alpha1.StateInvalid
	next := now.Add(interval)
	st.NextTestTime = &metav1.Time{Time: next}
	after.when(next)
	msg := fmt.Sprintf("test message %s failed: %v; next test at %s", id, result.Err, next.UTC().Format(time.RFC3339))
	setCondition(whc, labhookv1alpha1.ConditionReady, metav1.ConditionFalse, result.Reason, msg)
	if prevState != labhookv1alpha1.StateInvalid || requested {
		r.event(whc, corev1.EventTypeWarning, result.Reason, "Test", "Invalid: %s", msg)
	}
}

// nextBackoff is the wait before the next test should this one fail: the
// previous wait doubled, from TestBackoffMin up to TestBackoffMax. The
// previous wait is read from status (to the second, as metav1.Time
// serialises), so the backoff survives restarts.
func (r *WebhookConfigReconciler) nextBackoff(st *labhookv1alpha1.WebhookConfigStatus) time.Duration {
	lo, hi := r.Options.TestBackoffMin, r.Options.TestBackoffMax
	if st.State != labhookv1alpha1.StateInvalid || st.NextTestTime == nil || st.LastTest == nil {
		return lo
	}
	prev := st.NextTestTime.Sub(st.LastTest.Time.Time)
	if prev <= 0 || prev > hi {
		// Not a wait this reconciler set (say, invalidated by failing
		// deliveries long after the last test): start over.
		return lo
	}
	return min(max(2*prev, lo), hi)
}

// sendTest POSTs a WEBHOOK_CONFIG TEST message through the shared client.
func (r *WebhookConfigReconciler) sendTest(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, secrets []string, auth string) (outbound.Result, string) {
	id := "test-" + string(uuid.NewUUID())
	msgCtx, _ := json.Marshal(map[string]string{"namespace": whc.Namespace, "name": whc.Name})
	body, err := wire.OutgoingMessage{
		MessageID: id, Type: wire.TypeWebhookConfig, Status: wire.StatusTest,
		EntityIDs: []string{whc.Name}, Timestamp: wire.FormatTimestamp(r.clock().Now()),
		Context: msgCtx, Callback: r.Options.CallbackURL,
	}.Marshal()
	if err != nil {
		return outbound.Result{Reason: labhookv1alpha1.ReasonConnectionError, Err: fmt.Errorf("encode test message: %w", err)}, id
	}
	if r.Throttle != nil {
		if err := r.Throttle(ctx, whc); err != nil {
			return outbound.Result{Reason: labhookv1alpha1.ReasonConnectionError, Err: fmt.Errorf("wait for the rate limit: %w", err)}, id
		}
	}
	res := r.Outbound.Send(ctx, outbound.Request{
		URL: whc.Spec.URL, MessageID: id, Body: body, Secrets: secrets, Authorization: auth, Timeout: requestTimeout(whc),
	})
	log.FromContext(ctx).Info("sent test message", "messageID", id, "httpStatus", res.HTTPStatus,
		"reason", res.Reason, "duration", res.Duration)
	return res, id
}

// --- writes ----------------------------------------------------------------------

// applyOwnedStatus copies into dst everything this reconciler owns in src:
// all but status.deliveries and the conditions it does not own.
func applyOwnedStatus(dst, src *labhookv1alpha1.WebhookConfigStatus) {
	deliveries := dst.Deliveries
	conditions := dst.Conditions
	*dst = *src.DeepCopy()
	dst.Deliveries = deliveries
	dst.Conditions = conditions
	setOwnedConditions(&dst.Conditions, src.Conditions, ownedConditions...)
}

// mirrorState copies status.state into the labhook.io/state label, so
// kubectl get whc -l labhook.io/state=valid works. A merge patch touches
// that one label only.
func (r *WebhookConfigReconciler) mirrorState(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) error {
	state := string(whc.Status.State)
	if state == "" || whc.Labels[labhookv1alpha1.LabelState] == state {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{labhookv1alpha1.LabelState: state}}})
	if err != nil {
		return err
	}
	obj := &labhookv1alpha1.WebhookConfig{ObjectMeta: metav1.ObjectMeta{Namespace: whc.Namespace, Name: whc.Name}}
	if err := r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("label state: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// --- wiring ----------------------------------------------------------------------

// SetupWithManager registers the reconciler, its field index and watches:
// owned Secrets, referenced Secrets (through the index), and the other
// defaults of a namespace when one of them comes, goes or changes spec.
func (r *WebhookConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &labhookv1alpha1.WebhookConfig{},
		indexWebhookConfigSecretNames, func(o client.Object) []string {
			whc := o.(*labhookv1alpha1.WebhookConfig)
			var names []string
			if whc.Spec.SecretRef != nil {
				names = append(names, whc.Spec.SecretRef.Name)
			}
			if whc.Spec.AuthorizationSecretRef != nil {
				names = append(names, whc.Spec.AuthorizationSecretRef.Name)
			}
			return names
		}); err != nil {
		return fmt.Errorf("index webhookconfigs by secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&labhookv1alpha1.WebhookConfig{}).
		// Secrets are read uncached when reconciling, so their watches keep
		// metadata only: a data change still bumps resourceVersion and
		// wakes us, without caching every Secret's data in memory.
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.configsForSecret)).
		Watches(&labhookv1alpha1.WebhookConfig{}, handler.EnqueueRequestsFromMapFunc(r.otherDefaults),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A test can take up to timeoutSeconds (60s); one slow receiver
		// must not hold up every other organisation.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Named("webhookconfig").
		Complete(r)
}

// configsForSecret maps a Secret to the configs that reference it.
func (r *WebhookConfigReconciler) configsForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list labhookv1alpha1.WebhookConfigList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{indexWebhookConfigSecretNames: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list webhookconfigs for secret", "secret", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, w := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&w)})
	}
	return reqs
}

// otherDefaults maps a default config to every other default in its
// namespace: when one is created, deleted or stops being default, the
// others' DefaultConflict may change.
func (r *WebhookConfigReconciler) otherDefaults(ctx context.Context, o client.Object) []reconcile.Request {
	whc, ok := o.(*labhookv1alpha1.WebhookConfig)
	if !ok {
		return nil
	}
	var list labhookv1alpha1.WebhookConfigList
	if err := r.List(ctx, &list, client.InNamespace(whc.Namespace)); err != nil {
		log.FromContext(ctx).Error(err, "list webhookconfigs for default conflict")
		return nil
	}
	var reqs []reconcile.Request
	for _, w := range list.Items {
		if w.UID != whc.UID && w.Spec.Default {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&w)})
		}
	}
	return reqs
}
