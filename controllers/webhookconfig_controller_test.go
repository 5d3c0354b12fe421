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

package controllers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers"
)

// verifies reports whether the Standard Webhooks reference verifier accepts
// req with secret.
func verifies(secret string, req delivery) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	Expect(err).NotTo(HaveOccurred())
	return wh.Verify(req.body, req.header)
}

func getWHC(g Gomega, ctx context.Context, ns, name string) *labhookv1alpha1.WebhookConfig {
	var w labhookv1alpha1.WebhookConfig
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &w)).To(Succeed())
	return &w
}

// stateOf returns state, Ready status and Ready reason, as kubectl shows them.
func stateOf(ctx context.Context, ns, name string) func(g Gomega) []string {
	return func(g Gomega) []string {
		w := getWHC(g, ctx, ns, name)
		c := meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionReady)
		if c == nil {
			return []string{string(w.Status.State), "", ""}
		}
		return []string{string(w.Status.State), string(c.Status), c.Reason}
	}
}

func signingSecret(g Gomega, ctx context.Context, ns, name string) *corev1.Secret {
	var s corev1.Secret
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)).To(Succeed())
	return &s
}

func updateWHC(ctx context.Context, ns, name string, mutate func(*labhookv1alpha1.WebhookConfig)) {
	Eventually(func(g Gomega) error {
		w := getWHC(g, ctx, ns, name)
		mutate(w)
		return k8sClient.Update(ctx, w)
	}).Should(Succeed())
}

func annotate(ctx context.Context, ns, name, key, value string) {
	updateWHC(ctx, ns, name, func(w *labhookv1alpha1.WebhookConfig) {
		if w.Annotations == nil {
			w.Annotations = map[string]string{}
		}
		w.Annotations[key] = value
	})
}

// eventsFor lists "Type/Reason" of the Events about object name.
func eventsFor(ctx context.Context, ns, name string) func(g Gomega) []string {
	return func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var out []string
		for _, e := range list.Items {
			if e.Regarding.Name == name {
				out = append(out, e.Type+"/"+e.Reason)
			}
		}
		return out
	}
}

func newWHC(ns, name, url string) *labhookv1alpha1.WebhookConfig {
	return &labhookv1alpha1.WebhookConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       labhookv1alpha1.WebhookConfigSpec{URL: url, TimeoutSeconds: 5},
	}
}

var _ = Describe("WebhookConfig controller", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("generates an owned signing Secret, goes new then valid, and sends a signed WEBHOOK_CONFIG TEST", func() {
		rcv := newHookReceiver(http.StatusOK)
		release := rcv.hold()
		startManager(ns, testOptions())
		whc := newWHC(ns, "acme", rcv.URL+"/hooks")
		Expect(k8sClient.Create(ctx, whc)).To(Succeed())

		By("generating <name>-signing, owned by the config and labelled")
		var secret *corev1.Secret
		Eventually(func() error {
			var s corev1.Secret
			err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme-signing"}, &s)
			secret = &s
			return err
		}).Should(Succeed())
		Expect(string(secret.Data["secret"])).To(HavePrefix("whsec_"))
		Expect(secret.Labels).To(HaveKeyWithValue(labhookv1alpha1.LabelWebhookConfig, "acme"))
		owner := metav1.GetControllerOf(secret)
		Expect(owner).NotTo(BeNil())
		Expect(owner.Kind).To(Equal("WebhookConfig"))
		Expect(owner.UID).To(Equal(whc.UID))

		By("being new, with Ready Unknown, while the test message is in flight")
		Eventually(rcv.count).Should(Equal(1))
		Expect(stateOf(ctx, ns, "acme")(Default)).To(Equal([]string{"new", "Unknown", labhookv1alpha1.ReasonTestPending}))
		w := getWHC(Default, ctx, ns, "acme")
		Expect(meta.IsStatusConditionTrue(w.Status.Conditions, labhookv1alpha1.ConditionReconciling)).To(BeTrue())
		Expect(w.Labels).To(HaveKeyWithValue(labhookv1alpha1.LabelState, "new"))
		release()

		By("becoming valid once the receiver answers 200")
		Eventually(stateOf(ctx, ns, "acme")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Eventually(func(g Gomega) map[string]string { return getWHC(g, ctx, ns, "acme").Labels }).
			Should(HaveKeyWithValue(labhookv1alpha1.LabelState, "valid"), "the label follows status")
		w = getWHC(Default, ctx, ns, "acme")
		Expect(w.Status.SecretName).To(Equal("acme-signing"))
		Expect(w.Status.ObservedGeneration).To(Equal(w.Generation))
		ready := meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionReady)
		Expect(ready.ObservedGeneration).To(Equal(w.Generation), "kubectl wait --for=condition=Ready needs it")
		Expect(meta.IsStatusConditionFalse(w.Status.Conditions, labhookv1alpha1.ConditionReconciling)).To(BeTrue())

		By("having sent the wire format of SPEC §3, signed with the generated secret")
		req := rcv.last()
		Expect(w.Status.LastTest).NotTo(BeNil())
		Expect(w.Status.LastTest.HTTPStatus).To(BeEquivalentTo(200))
		Expect(w.Status.LastTest.Error).To(BeEmpty())
		Expect(req.header.Get("webhook-id")).To(Equal(w.Status.LastTest.MessageID))
		Expect(req.header.Get("webhook-id")).To(HavePrefix("test-"))
		Expect(req.header.Get("Content-Type")).To(Equal("application/json"))
		Expect(req.header.Get("Accept")).To(Equal("application/json"))
		Expect(req.header.Get("User-Agent")).To(Equal("labhook/test"))
		Expect(req.header.Get("Authorization")).To(BeEmpty())
		ts, err := strconv.ParseInt(req.header.Get("webhook-timestamp"), 10, 64)
		Expect(err).NotTo(HaveOccurred())
		Expect(time.Unix(ts, 0)).To(BeTemporally("~", time.Now(), time.Minute))
		Expect(verifies(string(secret.Data["secret"]), req)).To(Succeed())

		Expect(string(req.body)).To(MatchRegexp(`^\{"message_id":"test-[^"]+","type":"WEBHOOK_CONFIG","status":"TEST","entity_ids":\["acme"\],` +
			`"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00","context":\{"name":"acme","namespace":"` + ns + `"\},` +
			`"callback":"https://labhook.test/api/v1/webhooks/events/incoming"\}$`))
		var body struct {
			MessageID string `json:"message_id"`
		}
		Expect(json.Unmarshal(req.body, &body)).To(Succeed())
		Expect(body.MessageID).To(Equal(w.Status.LastTest.MessageID))

		Eventually(eventsFor(ctx, ns, "acme")).Should(ContainElements(
			"Normal/"+labhookv1alpha1.ReasonSecretGenerated, "Normal/"+labhookv1alpha1.ReasonTestSucceeded))

		By("testing a changed url, through new, at the new receiver")
		other := newHookReceiver(http.StatusAccepted)
		updateWHC(ctx, ns, "acme", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.URL = other.URL })
		Eventually(other.count).Should(Equal(1))
		Eventually(func(g Gomega) int32 { return getWHC(g, ctx, ns, "acme").Status.LastTest.HTTPStatus }).Should(BeEquivalentTo(202))
		Expect(stateOf(ctx, ns, "acme")(Default)).To(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Consistently(rcv.count).Should(Equal(1), "the old receiver gets nothing more")

		By("not re-testing when nothing that matters changed")
		updateWHC(ctx, ns, "acme", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.TimeoutSeconds = 7 })
		Eventually(func(g Gomega) int64 { return getWHC(g, ctx, ns, "acme").Status.ObservedGeneration }).Should(Equal(getWHC(Default, ctx, ns, "acme").Generation))
		Consistently(other.count, "1s").Should(Equal(1))
	})

	It("marks a failing receiver invalid with the reason, backs off, and turns valid when it is fixed", func() {
		rcv := newHookReceiver(http.StatusInternalServerError)
		startManager(ns, testOptions())
		Expect(k8sClient.Create(ctx, newWHC(ns, "flaky", rcv.URL))).To(Succeed())

		Eventually(stateOf(ctx, ns, "flaky")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonHTTPStatus}))
		Eventually(func(g Gomega) map[string]string { return getWHC(g, ctx, ns, "flaky").Labels }).
			Should(HaveKeyWithValue(labhookv1alpha1.LabelState, "invalid"))
		w := getWHC(Default, ctx, ns, "flaky")
		Expect(w.Status.LastTest.HTTPStatus).To(BeEquivalentTo(500))
		Expect(w.Status.LastTest.Error).To(ContainSubstring("HTTP 500"))
		Expect(meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionReady).Message).To(ContainSubstring("HTTP 500"))
		By("reporting Reconciling while it waits for the next backoff test, and not Stalled: retrying may fix it")
		reconciling := meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionReconciling)
		Expect(reconciling).NotTo(BeNil())
		Expect(reconciling.Status).To(Equal(metav1.ConditionTrue))
		Expect(reconciling.Reason).To(Equal(labhookv1alpha1.ReasonRetrying))
		Expect(meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionStalled)).To(BeNil())
		Expect(w.Status.NextTestTime).NotTo(BeNil())
		Eventually(eventsFor(ctx, ns, "flaky")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonHTTPStatus))

		By("re-testing with a doubling backoff")
		backoff := func(g Gomega) time.Duration {
			w := getWHC(g, ctx, ns, "flaky")
			if w.Status.NextTestTime == nil || w.Status.LastTest == nil {
				return 0
			}
			return w.Status.NextTestTime.Sub(w.Status.LastTest.Time.Time).Round(100 * time.Millisecond)
		}
		// Status times have second precision, so the test's 500ms minimum
		// reads as 0s or 1s; the 2s maximum reads exactly.
		Eventually(backoff, "10s").Should(Equal(2 * time.Second))
		Expect(rcv.count()).To(BeNumerically(">=", 2))
		Expect(getWHC(Default, ctx, ns, "flaky").Status.State).To(Equal(labhookv1alpha1.StateInvalid))

		By("turning valid on the next re-test once the receiver answers 200")
		rcv.status.Store(http.StatusOK)
		Eventually(stateOf(ctx, ns, "flaky"), "10s").Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Expect(getWHC(Default, ctx, ns, "flaky").Status.NextTestTime).To(BeNil())
		n := rcv.count()
		Consistently(rcv.count, "2500ms").Should(Equal(n), "a valid config is not re-tested")
	})

	It("re-tests a config invalidated by failing deliveries, keeping status.deliveries and Backlogged", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		Expect(k8sClient.Create(ctx, newWHC(ns, "shared", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "shared")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))

		By("the delivery reconciler invalidating it, as --invalidate-after does")
		w := getWHC(Default, ctx, ns, "shared")
		base := w.DeepCopy()
		w.Status.State = labhookv1alpha1.StateInvalid
		w.Status.Deliveries = &labhookv1alpha1.DeliveryStats{ConsecutiveFailures: 5, LastError: "receiver answered HTTP 502"}
		meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{Type: labhookv1alpha1.ConditionReady,
			Status: metav1.ConditionFalse, Reason: labhookv1alpha1.ReasonDeliveryFailing, Message: "failing for 24h"})
		meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{Type: labhookv1alpha1.ConditionBacklogged,
			Status: metav1.ConditionTrue, Reason: labhookv1alpha1.ReasonBacklogged, Message: "12000 pending"})
		Expect(k8sClient.Status().Patch(ctx, w, client.MergeFrom(base))).To(Succeed())

		By("re-testing it after the backoff and leaving the delivery fields alone")
		Eventually(stateOf(ctx, ns, "shared"), "10s").Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Consistently(rcv.count).Should(Equal(2))
		w = getWHC(Default, ctx, ns, "shared")
		Expect(w.Status.Deliveries).NotTo(BeNil())
		Expect(w.Status.Deliveries.ConsecutiveFailures).To(BeEquivalentTo(5))
		Expect(meta.IsStatusConditionTrue(w.Status.Conditions, labhookv1alpha1.ConditionBacklogged)).To(BeTrue())
	})

	It("re-tests on a new labhook.io/test-requested-at value and records it", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		Expect(k8sClient.Create(ctx, newWHC(ns, "again", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "again")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		first := getWHC(Default, ctx, ns, "again").Status.LastTest.MessageID
		Consistently(rcv.count).Should(Equal(1))

		annotate(ctx, ns, "again", labhookv1alpha1.AnnotationTestRequestedAt, "2026-01-01T00:00:00Z")
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "again").Status.LastHandledTestRequest }).Should(Equal("2026-01-01T00:00:00Z"))
		Consistently(rcv.count).Should(Equal(2))
		w := getWHC(Default, ctx, ns, "again")
		Expect(w.Status.LastTest.MessageID).NotTo(Equal(first), "each test has a fresh message id")
		Expect(rcv.last().header.Get("webhook-id")).To(Equal(w.Status.LastTest.MessageID))
		Expect(w.Status.State).To(Equal(labhookv1alpha1.StateValid))
		Consistently(rcv.count, "1s").Should(Equal(2), "the handled request is not repeated")

		By("answering a failing re-test with invalid")
		rcv.status.Store(http.StatusUnauthorized)
		annotate(ctx, ns, "again", labhookv1alpha1.AnnotationTestRequestedAt, "second")
		Eventually(stateOf(ctx, ns, "again")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonHTTPStatus}))
		Expect(getWHC(Default, ctx, ns, "again").Status.LastHandledTestRequest).To(Equal("second"))
	})

	It("deactivates without sending anything and tests again on reactivation", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		Expect(k8sClient.Create(ctx, newWHC(ns, "offon", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "offon")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))

		updateWHC(ctx, ns, "offon", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Deactivated = true })
		Eventually(stateOf(ctx, ns, "offon")).Should(Equal([]string{"deactivated", "False", labhookv1alpha1.ReasonDeactivated}))
		Eventually(func(g Gomega) map[string]string { return getWHC(g, ctx, ns, "offon").Labels }).
			Should(HaveKeyWithValue(labhookv1alpha1.LabelState, "deactivated"))
		Eventually(eventsFor(ctx, ns, "offon")).Should(ContainElement("Normal/" + labhookv1alpha1.ReasonDeactivated))

		By("ignoring test requests while deactivated")
		annotate(ctx, ns, "offon", labhookv1alpha1.AnnotationTestRequestedAt, "now")
		Consistently(rcv.count, "1s").Should(Equal(1))

		By("going new, then valid, when reactivated")
		release := rcv.hold()
		updateWHC(ctx, ns, "offon", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Deactivated = false })
		Eventually(rcv.count).Should(Equal(2))
		Expect(stateOf(ctx, ns, "offon")(Default)).To(Equal([]string{"new", "Unknown", labhookv1alpha1.ReasonTestPending}))
		release()
		Eventually(stateOf(ctx, ns, "offon")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Consistently(rcv.count).Should(Equal(2))
	})

	It("rotates a generated secret: both sign during the grace period, only the new one after", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions()) // RotationGracePeriod 3s
		Expect(k8sClient.Create(ctx, newWHC(ns, "rot", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "rot")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		oldSecret := string(signingSecret(Default, ctx, ns, "rot-signing").Data["secret"])
		testID := getWHC(Default, ctx, ns, "rot").Status.LastTest.MessageID

		annotate(ctx, ns, "rot", labhookv1alpha1.AnnotationRotateSecretRequestedAt, "r1")
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "rot").Status.LastHandledRotateRequest }).Should(Equal("r1"))
		s := signingSecret(Default, ctx, ns, "rot-signing")
		newSecret := string(s.Data["secret"])
		Expect(newSecret).To(HavePrefix("whsec_"))
		Expect(newSecret).NotTo(Equal(oldSecret))
		Expect(string(s.Data["previousSecret"])).To(Equal(oldSecret))
		w := getWHC(Default, ctx, ns, "rot")
		Expect(w.Status.Rotation).NotTo(BeNil())
		Expect(w.Status.Rotation.PreviousExpiresAt.Time).To(BeTemporally("~", w.Status.Rotation.RotatedTime.Add(3*time.Second), time.Second))
		Expect(meta.IsStatusConditionTrue(w.Status.Conditions, labhookv1alpha1.ConditionSecretRotation)).To(BeTrue())
		Eventually(eventsFor(ctx, ns, "rot")).Should(ContainElement("Normal/" + labhookv1alpha1.ReasonSecretRotated))

		By("not re-testing because of the rotation alone")
		Expect(w.Status.State).To(Equal(labhookv1alpha1.StateValid))
		Expect(w.Status.LastTest.MessageID).To(Equal(testID))
		Consistently(rcv.count).Should(Equal(1))

		By("signing with both secrets during the grace period")
		Expect(controllers.SigningSecrets(ctx, k8sClient, w)).To(Equal([]string{newSecret, oldSecret}))
		annotate(ctx, ns, "rot", labhookv1alpha1.AnnotationTestRequestedAt, "during-grace")
		Eventually(rcv.count).Should(Equal(2))
		during := rcv.last()
		Expect(strings.Fields(during.header.Get("webhook-signature"))).To(HaveLen(2))
		Expect(verifies(newSecret, during)).To(Succeed())
		Expect(verifies(oldSecret, during)).To(Succeed())

		By("dropping the previous secret when the grace period ends")
		Eventually(func(g Gomega) []byte { return signingSecret(g, ctx, ns, "rot-signing").Data["previousSecret"] }, "10s").Should(BeNil())
		Eventually(func(g Gomega) *labhookv1alpha1.SecretRotation { return getWHC(g, ctx, ns, "rot").Status.Rotation }).Should(BeNil())
		w = getWHC(Default, ctx, ns, "rot")
		Expect(meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionSecretRotation)).To(BeNil())
		Expect(controllers.SigningSecrets(ctx, k8sClient, w)).To(Equal([]string{newSecret}))
		annotate(ctx, ns, "rot", labhookv1alpha1.AnnotationTestRequestedAt, "after-grace")
		Eventually(rcv.count).Should(Equal(3))
		after := rcv.last()
		Expect(strings.Fields(after.header.Get("webhook-signature"))).To(HaveLen(1))
		Expect(verifies(newSecret, after)).To(Succeed())
		Expect(verifies(oldSecret, after)).To(MatchError(standardwebhooks.ErrNoMatchingSignature))
		Expect(getWHC(Default, ctx, ns, "rot").Status.State).To(Equal(labhookv1alpha1.StateValid))
	})

	It("signs with a user-provided Secret, re-tests when it changes, and refuses to rotate it", func() {
		rcv := newHookReceiver(http.StatusOK)
		createSecret(ctx, ns, "mine", map[string]string{"secret": testSecretA})
		startManager(ns, testOptions())
		whc := newWHC(ns, "byo", rcv.URL)
		whc.Spec.SecretRef = &labhookv1alpha1.LocalObjectReference{Name: "mine"}
		Expect(k8sClient.Create(ctx, whc)).To(Succeed())
		Eventually(stateOf(ctx, ns, "byo")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Expect(getWHC(Default, ctx, ns, "byo").Status.SecretName).To(Equal("mine"))
		Expect(verifies(testSecretA, rcv.last())).To(Succeed())
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "byo-signing"}, &corev1.Secret{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Secret is generated when secretRef is set")

		By("refusing a rotation request with a Warning and a condition")
		annotate(ctx, ns, "byo", labhookv1alpha1.AnnotationRotateSecretRequestedAt, "r1")
		Eventually(func(g Gomega) *metav1.Condition {
			return meta.FindStatusCondition(getWHC(g, ctx, ns, "byo").Status.Conditions, labhookv1alpha1.ConditionSecretRotation)
		}).Should(And(Not(BeNil()), HaveField("Reason", labhookv1alpha1.ReasonRotationRefused),
			HaveField("Status", metav1.ConditionFalse), HaveField("Message", ContainSubstring("change its key"))))
		Eventually(eventsFor(ctx, ns, "byo")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonRotationRefused))
		Expect(string(signingSecret(Default, ctx, ns, "mine").Data["secret"])).To(Equal(testSecretA))
		Expect(getWHC(Default, ctx, ns, "byo").Status.LastHandledRotateRequest).To(Equal("r1"))

		By("re-testing when the referenced Secret's content changes")
		s := signingSecret(Default, ctx, ns, "mine")
		s.Data["secret"] = []byte(testSecretB)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(rcv.count).Should(Equal(2))
		Expect(verifies(testSecretB, rcv.last())).To(Succeed())
		Expect(verifies(testSecretA, rcv.last())).NotTo(Succeed())
		Eventually(stateOf(ctx, ns, "byo")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))

		By("reporting a missing referenced Secret as invalid and Stalled, until it exists")
		updateWHC(ctx, ns, "byo", func(w *labhookv1alpha1.WebhookConfig) {
			w.Spec.SecretRef = &labhookv1alpha1.LocalObjectReference{Name: "later"}
		})
		Eventually(stateOf(ctx, ns, "byo")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonSecretError}))
		Expect(meta.IsStatusConditionTrue(getWHC(Default, ctx, ns, "byo").Status.Conditions, labhookv1alpha1.ConditionStalled)).To(BeTrue())
		createSecret(ctx, ns, "later", map[string]string{"secret": testSecretA})
		Eventually(stateOf(ctx, ns, "byo")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Expect(meta.FindStatusCondition(getWHC(Default, ctx, ns, "byo").Status.Conditions, labhookv1alpha1.ConditionStalled)).To(BeNil())
	})

	It("sends authorizationSecretRef as a Bearer token and re-tests when it changes", func() {
		rcv := newHookReceiver(http.StatusOK)
		createAuthorizationSecret(ctx, ns, "backend", map[string]string{"token": "backend-user:backend-key\n"})
		startManager(ns, testOptions())
		whc := newWHC(ns, "authd", rcv.URL)
		whc.Spec.AuthorizationSecretRef = &labhookv1alpha1.SecretKeyReference{Name: "backend", Key: "token"}
		Expect(k8sClient.Create(ctx, whc)).To(Succeed())
		Eventually(stateOf(ctx, ns, "authd")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Expect(rcv.last().header.Get("Authorization")).To(Equal("Bearer backend-user:backend-key"))

		s := signingSecret(Default, ctx, ns, "backend")
		s.Data["token"] = []byte("backend-user:rotated-key")
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(rcv.count).Should(Equal(2))
		Expect(rcv.last().header.Get("Authorization")).To(Equal("Bearer backend-user:rotated-key"))

		By("never putting the token in status or events")
		Eventually(stateOf(ctx, ns, "authd")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		raw, err := json.Marshal(getWHC(Default, ctx, ns, "authd"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(raw)).NotTo(ContainSubstring("rotated-key"))
	})

	It("sends no Secret that is not labelled for authorization, says how to opt in, and sends it once labelled", func() {
		rcv := newHookReceiver(http.StatusOK)
		// A Secret of the namespace that a namespace editor cannot read.
		createSecret(ctx, ns, "database", map[string]string{"password": "db-password-not-for-receivers"})
		startManager(ns, testOptions())
		whc := newWHC(ns, "exfil", rcv.URL)
		whc.Spec.AuthorizationSecretRef = &labhookv1alpha1.SecretKeyReference{Name: "database", Key: "password"}
		Expect(k8sClient.Create(ctx, whc)).To(Succeed())

		Eventually(stateOf(ctx, ns, "exfil")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonSecretNotOptedIn}))
		ready := meta.FindStatusCondition(getWHC(Default, ctx, ns, "exfil").Status.Conditions, labhookv1alpha1.ConditionReady)
		Expect(ready.Message).To(And(
			ContainSubstring(`authorization secret database: secret unusable: not labelled labhook.io/webhook-authorization: "true"`),
			ContainSubstring("kubectl -n "+ns+" label secret database labhook.io/webhook-authorization=true")))
		Expect(meta.IsStatusConditionTrue(getWHC(Default, ctx, ns, "exfil").Status.Conditions, labhookv1alpha1.ConditionStalled)).To(BeTrue())
		Eventually(eventsFor(ctx, ns, "exfil")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonSecretNotOptedIn))
		Consistently(rcv.count).Should(BeZero(), "nothing is sent, not even a test without the header")
		raw, err := json.Marshal(getWHC(Default, ctx, ns, "exfil"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(raw)).NotTo(ContainSubstring("db-password"))

		By("a person allowed to label Secrets opts it in")
		s := signingSecret(Default, ctx, ns, "database")
		s.Labels = map[string]string{labhookv1alpha1.LabelWebhookAuthorization: "true"}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(stateOf(ctx, ns, "exfil")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Expect(rcv.last().header.Get("Authorization")).To(Equal("Bearer db-password-not-for-receivers"))

		By("removing the label stops it again")
		s = signingSecret(Default, ctx, ns, "database")
		s.Labels = nil
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(stateOf(ctx, ns, "exfil")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonSecretNotOptedIn}))
	})

	It("names a failing url in status and events without its userinfo, query or fragment", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		rcv.Close() // nothing listens there any more: a transport error naming the url
		u := strings.Replace(rcv.URL, "http://", "http://hook-user:hook-pass@", 1) + "/events?token=query-token#frag-token"
		Expect(k8sClient.Create(ctx, newWHC(ns, "tokens", u))).To(Succeed())
		Eventually(stateOf(ctx, ns, "tokens")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonConnectionError}))
		w := getWHC(Default, ctx, ns, "tokens")
		Expect(w.Status.LastTest.Error).To(ContainSubstring(rcv.URL + "/events"))
		var list eventsv1.EventList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		texts := []string{w.Status.LastTest.Error}
		for _, c := range w.Status.Conditions {
			texts = append(texts, c.Message)
		}
		for _, e := range list.Items {
			texts = append(texts, e.Note)
		}
		for _, t := range texts {
			for _, leak := range []string{"hook-user", "hook-pass", "query-token", "frag-token"} {
				Expect(t).NotTo(ContainSubstring(leak))
			}
		}
	})

	It("reports an organisation's Secret quota that stops its signing Secret, and recovers when the quota allows it", func() {
		rcv := newHookReceiver(http.StatusOK)
		// envtest runs no quota controller, so the test writes the usage
		// the API server's quota admission counts from.
		quota := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "labhook-organisation"},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceSecrets: resource.MustParse("0")}},
		}
		Expect(k8sClient.Create(ctx, quota)).To(Succeed())
		quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: corev1.ResourceList{corev1.ResourceSecrets: resource.MustParse("0")}}
		Expect(k8sClient.Status().Update(ctx, quota)).To(Succeed())
		startManager(ns, testOptions())
		Expect(k8sClient.Create(ctx, newWHC(ns, "quota", rcv.URL))).To(Succeed())

		Eventually(stateOf(ctx, ns, "quota")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonSecretError}))
		ready := meta.FindStatusCondition(getWHC(Default, ctx, ns, "quota").Status.Conditions, labhookv1alpha1.ConditionReady)
		Expect(ready.Message).To(ContainSubstring("exceeded quota: labhook-organisation"))
		Eventually(eventsFor(ctx, ns, "quota")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonSecretError))
		Consistently(rcv.count).Should(BeZero())

		By("the quota is raised")
		Eventually(func() error {
			var q corev1.ResourceQuota
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(quota), &q); err != nil {
				return err
			}
			q.Spec.Hard[corev1.ResourceSecrets] = resource.MustParse("5")
			if err := k8sClient.Update(ctx, &q); err != nil {
				return err
			}
			q.Status.Hard = q.Spec.Hard
			return k8sClient.Status().Update(ctx, &q)
		}).Should(Succeed())
		Eventually(stateOf(ctx, ns, "quota"), 90*time.Second).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
	})

	It("handles a request annotation of any length, recording a long one as its digest", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		Expect(k8sClient.Create(ctx, newWHC(ns, "long", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "long")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		value := strings.Repeat("x", 4096)
		annotate(ctx, ns, "long", labhookv1alpha1.AnnotationTestRequestedAt, value)
		Eventually(rcv.count).Should(Equal(2))
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "long").Status.LastHandledTestRequest }).
			Should(Equal(controllers.HandledRequest(value)))
		Expect(controllers.HandledRequest(value)).To(HavePrefix("sha256:"))
		Consistently(rcv.count).Should(Equal(2), "the recorded digest counts as handled")
	})

	DescribeTable("refuses targets by policy",
		func(mutate func(*controllers.Options), url func(*receiver) string) {
			rcv := newHookReceiver(http.StatusOK)
			opts := testOptions()
			mutate(&opts)
			startManager(ns, opts)
			Expect(k8sClient.Create(ctx, newWHC(ns, "policy", url(rcv)))).To(Succeed())
			Eventually(stateOf(ctx, ns, "policy")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonRefusedByPolicy}))
			w := getWHC(Default, ctx, ns, "policy")
			Expect(w.Status.LastTest.Error).To(ContainSubstring("refused by policy"))
			stalled := meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionStalled)
			Expect(stalled).NotTo(BeNil(), "retrying does not fix a url the policy refuses: kstatus says Failed")
			Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			Expect(stalled.Reason).To(Equal(labhookv1alpha1.ReasonRefusedByPolicy))
			Expect(meta.IsStatusConditionTrue(w.Status.Conditions, labhookv1alpha1.ConditionReconciling)).To(BeFalse())
			Consistently(rcv.count).Should(BeZero())
		},
		Entry("http:// without --allow-http",
			func(o *controllers.Options) { o.AllowHTTP = false },
			func(r *receiver) string { return r.URL }),
		Entry("loopback outside --allowed-target-cidrs",
			func(o *controllers.Options) { o.AllowedTargetCIDRs = nil },
			func(r *receiver) string { return r.URL }),
		Entry("cloud metadata address",
			func(o *controllers.Options) {},
			func(*receiver) string { return "http://169.254.169.254/latest/meta-data/" }),
	)

	It("gives every default but the oldest a DefaultConflict, and clears it when the winner goes", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		alpha := newWHC(ns, "alpha", rcv.URL)
		alpha.Spec.Default = true
		Expect(k8sClient.Create(ctx, alpha)).To(Succeed())
		conflict := func(name string) func() string {
			return func() string {
				c := meta.FindStatusCondition(getWHC(Default, ctx, ns, name).Status.Conditions, labhookv1alpha1.ConditionDefaultConflict)
				if c == nil {
					return "absent"
				}
				return string(c.Status) + "/" + c.Reason
			}
		}
		Eventually(conflict("alpha")).Should(Equal("False/" + labhookv1alpha1.ReasonNoDefaultConflict))

		// Same-second creation timestamps tie; the name breaks the tie, and
		// "alpha" < "bravo" either way.
		bravo := newWHC(ns, "bravo", rcv.URL)
		bravo.Spec.Default = true
		Expect(k8sClient.Create(ctx, bravo)).To(Succeed())
		Eventually(conflict("bravo")).Should(Equal("True/" + labhookv1alpha1.ReasonDefaultConflict))
		Expect(meta.FindStatusCondition(getWHC(Default, ctx, ns, "bravo").Status.Conditions, labhookv1alpha1.ConditionDefaultConflict).Message).
			To(ContainSubstring("alpha"))
		Consistently(conflict("alpha"), "500ms").Should(Equal("False/" + labhookv1alpha1.ReasonNoDefaultConflict))
		Eventually(eventsFor(ctx, ns, "bravo")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonDefaultConflict))
		Expect(controllers.DefaultWebhookConfig(ctx, k8sClient, ns)).To(HaveField("Name", "alpha"))
		Eventually(stateOf(ctx, ns, "bravo")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}),
			"a conflicting default is still a working receiver")

		Expect(k8sClient.Delete(ctx, alpha)).To(Succeed())
		Eventually(conflict("bravo")).Should(Equal("False/" + labhookv1alpha1.ReasonNoDefaultConflict))
		Expect(controllers.DefaultWebhookConfig(ctx, k8sClient, ns)).To(HaveField("Name", "bravo"))
	})
})
