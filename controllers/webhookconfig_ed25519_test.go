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
	"errors"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/foreignverify"
)

// signatures returns the scheme prefixes of a request's signatures, in order.
func signatures(req delivery) []string {
	var out []string
	for _, s := range strings.Fields(req.header.Get(wire.HeaderWebhookSignature)) {
		v, _, _ := strings.Cut(s, ",")
		out = append(out, v)
	}
	return out
}

// verifiedByGoAndNode checks req with publicKey twice: with labhook's
// wire.Verify, and with Node's crypto.verify through the example of
// docs/receiving.md, which shares no code with labhook.
func verifiedByGoAndNode(ctx context.Context, publicKey string, req delivery) {
	GinkgoHelper()
	Expect(wire.Verify(publicKey, req.header, req.body)).To(Succeed())
	err := foreignverify.Node(ctx, publicKey, req.header, req.body)
	if errors.Is(err, foreignverify.ErrUnavailable) {
		Skip("Node.js is needed to check labhook's Ed25519 signatures with another implementation: " + err.Error())
	}
	Expect(err).NotTo(HaveOccurred())
}

func ed25519WHC(ns, name, url string) *labhookv1alpha1.WebhookConfig {
	w := newWHC(ns, name, url)
	w.Spec.Signature = labhookv1alpha1.SignatureEd25519
	return w
}

var _ = Describe("WebhookConfig with signature ed25519", func() {
	var (
		ctx   context.Context
		ns    string
		valid = []string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	It("generates a whsk_ key, publishes its whpk_ in status, and signs tests and deliveries v1a", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions())
		whc := ed25519WHC(ns, "ed", rcv.URL)
		whc.Spec.Default = true
		Expect(k8sClient.Create(ctx, whc)).To(Succeed())
		Eventually(stateOf(ctx, ns, "ed")).Should(Equal(valid))

		By("keeping the private key in the owned Secret and only the public key in status")
		priv := string(signingSecret(Default, ctx, ns, "ed-signing").Data[labhookv1alpha1.SecretKeySigning])
		Expect(priv).To(HavePrefix(wire.PrivateKeyPrefix))
		pub, err := wire.PublicKey(priv)
		Expect(err).NotTo(HaveOccurred())
		w := getWHC(Default, ctx, ns, "ed")
		Expect(w.Status.PublicKey).To(Equal(pub))
		Expect(w.Status.PreviousPublicKey).To(BeEmpty())
		status, err := json.Marshal(w.Status)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(status)).NotTo(ContainSubstring(strings.TrimPrefix(priv, wire.PrivateKeyPrefix)))

		By("signing the test message v1a only, verifiable with status.publicKey by Go and by Node")
		test, ok := rcv.byID(w.Status.LastTest.MessageID)
		Expect(ok).To(BeTrue())
		Expect(signatures(test)).To(Equal([]string{"v1a"}))
		verifiedByGoAndNode(ctx, w.Status.PublicKey, test)

		By("signing an OutgoingMessage's delivery the same way")
		Expect(k8sClient.Create(ctx, newMessage(ns, "om-ed", "EVENT", "STARTED", "ev-1"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "om-ed")).Should(Equal(labhookv1alpha1.MessageDelivered))
		d, ok := rcv.byID("om-ed")
		Expect(ok).To(BeTrue())
		Expect(signatures(d)).To(Equal([]string{"v1a"}))
		verifiedByGoAndNode(ctx, w.Status.PublicKey, d)
	})

	It("rotates an Ed25519 key: both sign during the grace period, with previousPublicKey, only the new one after", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions()) // RotationGracePeriod 3s
		Expect(k8sClient.Create(ctx, ed25519WHC(ns, "rot", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "rot")).Should(Equal(valid))
		oldPub := getWHC(Default, ctx, ns, "rot").Status.PublicKey
		testID := getWHC(Default, ctx, ns, "rot").Status.LastTest.MessageID

		annotate(ctx, ns, "rot", labhookv1alpha1.AnnotationRotateSecretRequestedAt, "r1")
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "rot").Status.LastHandledRotateRequest }).Should(Equal("r1"))
		w := getWHC(Default, ctx, ns, "rot")
		newPub := w.Status.PublicKey
		Expect(newPub).To(HavePrefix(wire.PublicKeyPrefix))
		Expect(newPub).NotTo(Equal(oldPub))
		Expect(w.Status.PreviousPublicKey).To(Equal(oldPub))
		Expect(w.Status.Rotation).NotTo(BeNil())
		Expect(string(signingSecret(Default, ctx, ns, "rot-signing").Data[labhookv1alpha1.SecretKeyPreviousSigning])).To(HavePrefix(wire.PrivateKeyPrefix))

		By("not re-testing because of the rotation alone")
		Expect(w.Status.State).To(Equal(labhookv1alpha1.StateValid))
		Expect(w.Status.LastTest.MessageID).To(Equal(testID))
		Consistently(rcv.count).Should(Equal(1))

		By("signing with both keys during the grace period")
		annotate(ctx, ns, "rot", labhookv1alpha1.AnnotationTestRequestedAt, "during-grace")
		Eventually(rcv.count).Should(Equal(2))
		during := rcv.last()
		Expect(signatures(during)).To(Equal([]string{"v1a", "v1a"}))
		verifiedByGoAndNode(ctx, newPub, during)
		verifiedByGoAndNode(ctx, oldPub, during)

		By("dropping the previous key, and previousPublicKey, when the grace period ends")
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "rot").Status.PreviousPublicKey }, "10s").Should(BeEmpty())
		Expect(getWHC(Default, ctx, ns, "rot").Status.PublicKey).To(Equal(newPub))
		annotate(ctx, ns, "rot", labhookv1alpha1.AnnotationTestRequestedAt, "after-grace")
		Eventually(rcv.count).Should(Equal(3))
		after := rcv.last()
		Expect(signatures(after)).To(Equal([]string{"v1a"}))
		Expect(wire.Verify(newPub, after.header, after.body)).To(Succeed())
		Expect(wire.Verify(oldPub, after.header, after.body)).To(MatchError(wire.ErrNoMatchingSignature))
	})

	It("switches scheme: re-tests, and the old key signs beside the new one during the grace period, both ways", func() {
		rcv := newHookReceiver(http.StatusOK)
		startManager(ns, testOptions()) // RotationGracePeriod 3s
		Expect(k8sClient.Create(ctx, newWHC(ns, "sw", rcv.URL))).To(Succeed())
		Eventually(stateOf(ctx, ns, "sw")).Should(Equal(valid))
		oldSecret := string(signingSecret(Default, ctx, ns, "sw-signing").Data[labhookv1alpha1.SecretKeySigning])
		Expect(getWHC(Default, ctx, ns, "sw").Status.PublicKey).To(BeEmpty())
		hmacTest := getWHC(Default, ctx, ns, "sw").Status.LastTest.MessageID

		By("switching hmac-sha256 to ed25519: a whsk_ key, the whsec_ kept as previous, and a new test")
		updateWHC(ctx, ns, "sw", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Signature = labhookv1alpha1.SignatureEd25519 })
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "sw").Status.LastTest.MessageID }).ShouldNot(Equal(hmacTest))
		Eventually(stateOf(ctx, ns, "sw")).Should(Equal(valid))
		s := signingSecret(Default, ctx, ns, "sw-signing")
		Expect(string(s.Data[labhookv1alpha1.SecretKeySigning])).To(HavePrefix(wire.PrivateKeyPrefix))
		Expect(string(s.Data[labhookv1alpha1.SecretKeyPreviousSigning])).To(Equal(oldSecret))
		w := getWHC(Default, ctx, ns, "sw")
		edPub := w.Status.PublicKey
		Expect(edPub).To(HavePrefix(wire.PublicKeyPrefix))
		Expect(w.Status.PreviousPublicKey).To(BeEmpty(), "the previous key is a shared secret, not a key pair")
		Expect(w.Status.Rotation).NotTo(BeNil())
		Eventually(eventsFor(ctx, ns, "sw")).Should(ContainElement("Normal/" + labhookv1alpha1.ReasonSignatureSchemeChanged))
		test, ok := rcv.byID(w.Status.LastTest.MessageID)
		Expect(ok).To(BeTrue())
		Expect(signatures(test)).To(Equal([]string{"v1a", "v1"}))
		verifiedByGoAndNode(ctx, edPub, test)
		Expect(verifies(oldSecret, test)).To(Succeed(), "a receiver still on the shared secret keeps working")

		By("signing v1a only once the grace period is over")
		Eventually(func(g Gomega) []byte {
			return signingSecret(g, ctx, ns, "sw-signing").Data[labhookv1alpha1.SecretKeyPreviousSigning]
		}, "10s").Should(BeNil())
		annotate(ctx, ns, "sw", labhookv1alpha1.AnnotationTestRequestedAt, "after-grace")
		Eventually(func(g Gomega) bool {
			_, ok := rcv.byID(getWHC(g, ctx, ns, "sw").Status.LastTest.MessageID)
			return ok && getWHC(g, ctx, ns, "sw").Status.LastHandledTestRequest == "after-grace"
		}).Should(BeTrue())
		after, _ := rcv.byID(getWHC(Default, ctx, ns, "sw").Status.LastTest.MessageID)
		Expect(signatures(after)).To(Equal([]string{"v1a"}))
		Expect(verifies(oldSecret, after)).To(MatchError(standardwebhooks.ErrNoMatchingSignature))

		By("switching back to hmac-sha256: a whsec_ secret, the Ed25519 key kept as previous, and a new test")
		edTest := getWHC(Default, ctx, ns, "sw").Status.LastTest.MessageID
		updateWHC(ctx, ns, "sw", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Signature = labhookv1alpha1.SignatureHMACSHA256 })
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "sw").Status.LastTest.MessageID }).ShouldNot(Equal(edTest))
		Eventually(stateOf(ctx, ns, "sw")).Should(Equal(valid))
		w = getWHC(Default, ctx, ns, "sw")
		Expect(w.Status.PublicKey).To(BeEmpty())
		Expect(w.Status.PreviousPublicKey).To(Equal(edPub), "the Ed25519 key still signs, so its public key stays published")
		newSecret := string(signingSecret(Default, ctx, ns, "sw-signing").Data[labhookv1alpha1.SecretKeySigning])
		Expect(newSecret).To(HavePrefix(wire.SecretPrefix))
		back, ok := rcv.byID(w.Status.LastTest.MessageID)
		Expect(ok).To(BeTrue())
		Expect(signatures(back)).To(Equal([]string{"v1", "v1a"}))
		Expect(verifies(newSecret, back)).To(Succeed())
		verifiedByGoAndNode(ctx, edPub, back)
		Eventually(func(g Gomega) string { return getWHC(g, ctx, ns, "sw").Status.PreviousPublicKey }, "10s").Should(BeEmpty())
	})

	It("signs with a whsk_ key from the user's Secret, and refuses a whsec_ one naming spec.signature", func() {
		rcv := newHookReceiver(http.StatusOK)
		priv, pub, err := wire.GenerateKeyPair()
		Expect(err).NotTo(HaveOccurred())
		createSecret(ctx, ns, "mine-ed", map[string]string{"secret": priv})
		createSecret(ctx, ns, "mine-hmac", map[string]string{"secret": testSecretA})
		startManager(ns, testOptions())

		good := ed25519WHC(ns, "byo", rcv.URL)
		good.Spec.SecretRef = &labhookv1alpha1.LocalObjectReference{Name: "mine-ed"}
		Expect(k8sClient.Create(ctx, good)).To(Succeed())
		Eventually(stateOf(ctx, ns, "byo")).Should(Equal(valid))
		w := getWHC(Default, ctx, ns, "byo")
		Expect(w.Status.PublicKey).To(Equal(pub))
		test, ok := rcv.byID(w.Status.LastTest.MessageID)
		Expect(ok).To(BeTrue())
		verifiedByGoAndNode(ctx, pub, test)

		By("leaving a config whose Secret holds the other scheme's key invalid, sending nothing")
		other := newHookReceiver(http.StatusOK)
		bad := ed25519WHC(ns, "mismatch", other.URL)
		bad.Spec.SecretRef = &labhookv1alpha1.LocalObjectReference{Name: "mine-hmac"}
		Expect(k8sClient.Create(ctx, bad)).To(Succeed())
		Eventually(stateOf(ctx, ns, "mismatch")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonSecretError}))
		Expect(readyMessage(ctx, ns, "mismatch")).To(And(ContainSubstring("spec.signature is ed25519"),
			ContainSubstring("mine-hmac"), ContainSubstring("whsk_"), Not(ContainSubstring(testSecretA))))
		Eventually(eventsFor(ctx, ns, "mismatch")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonSecretError))
		Consistently(other.count, "1s").Should(Equal(0))

		By("testing it once the Secret holds a whsk_ key")
		s := signingSecret(Default, ctx, ns, "mine-hmac")
		s.Data["secret"] = []byte(priv)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(stateOf(ctx, ns, "mismatch")).Should(Equal(valid))
		Expect(getWHC(Default, ctx, ns, "mismatch").Status.PublicKey).To(Equal(pub))
		Eventually(other.count).Should(Equal(1))
	})
})

// readyMessage returns the Ready condition's message of a WebhookConfig.
func readyMessage(ctx context.Context, ns, name string) string {
	for _, c := range getWHC(Default, ctx, ns, name).Status.Conditions {
		if c.Type == labhookv1alpha1.ConditionReady {
			return c.Message
		}
	}
	return ""
}
