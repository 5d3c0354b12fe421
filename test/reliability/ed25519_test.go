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

package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/stack"
)

// jwksPolling keeps the test's JWKS requests well under the 5 a second the
// webhookserver answers per organisation, leaving the receiver its share.
const jwksPolling = time.Second

// fetchJWKS returns the whpk_ keys the webhookserver at base serves for org.
func fetchJWKS(base, org string) ([]string, error) {
	resp, err := http.Get(base + wire.JWKSPathPrefix + org)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var set wire.JWKS
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, err
	}
	return set.PublicKeys()
}

var _ = Describe("Ed25519 end to end", func() {
	It("delivers to the reference receiver, which verifies v1a with keys it fetches from the webhookserver's JWKS, through a rotation", func(ctx SpecContext) {
		const grace = 4 * time.Second
		receiverBin, err := process.Build(ctx, root, tmp, "receiver")
		Expect(err).NotTo(HaveOccurred())
		mgr, err := stack.Manager(binary("manager"), cl.Kubeconfig, logPath("ed25519-manager"),
			"--rotation-grace-period="+grace.String())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { mgr.Stop(10 * time.Second) })
		ws, base, err := stack.WebhookServer(binary("webhookserver"), cl.Kubeconfig, logPath("ed25519-webhookserver"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { ws.Stop(10 * time.Second) })

		ns := newNamespace(ctx, "ed25519")
		addr, err := process.FreeAddr()
		Expect(err).NotTo(HaveOccurred())
		// No secret and no key given: every key comes from the JWKS.
		rcv, err := process.Start("receiver", receiverBin,
			[]string{"--bind-address=" + addr, "--jwks-url=" + base + wire.JWKSPathPrefix + ns}, nil, logPath("ed25519-receiver"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { rcv.Stop(5 * time.Second) })
		Expect(rcv.WaitHTTP("http://"+addr+"/healthz", 30*time.Second)).To(Succeed())

		By("becoming valid: the receiver verified the test message with the key the controller published and the webhookserver served")
		whc := &labhookv1alpha1.WebhookConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signed"},
			Spec: labhookv1alpha1.WebhookConfigSpec{URL: "http://" + addr + "/hooks", Default: true,
				Signature: labhookv1alpha1.SignatureEd25519},
		}
		Expect(cl.Client.Create(ctx, whc)).To(Succeed())
		// get reads the config; polled, its failures are g's.
		get := func(g Gomega) *labhookv1alpha1.WebhookConfig {
			w := &labhookv1alpha1.WebhookConfig{}
			g.Expect(cl.Client.Get(ctx, client.ObjectKeyFromObject(whc), w)).To(Succeed())
			return w
		}
		Eventually(func(g Gomega) labhookv1alpha1.WebhookConfigState { return get(g).Status.State }).
			WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(Equal(labhookv1alpha1.StateValid), "receiver log:\n%s", rcv.Tail(20))
		first := get(Default).Status.PublicKey
		Expect(first).To(HavePrefix(wire.PublicKeyPrefix))
		Expect(fetchJWKS(base, ns)).To(Equal([]string{first}))

		deliver := func(name string) {
			GinkgoHelper()
			om := &labhookv1alpha1.OutgoingMessage{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec:       labhookv1alpha1.OutgoingMessageSpec{Type: wire.TypeEvent, Status: "STARTED", EntityIDs: []string{name}},
			}
			Expect(cl.Client.Create(ctx, om)).To(Succeed())
			Expect(rcv.WaitForLine(`"message_id":"`+name+`"`, 30*time.Second)).To(Succeed(), "receiver log:\n%s", rcv.Tail(20))
			Eventually(func(g Gomega) labhookv1alpha1.MessagePhase {
				g.Expect(cl.Client.Get(ctx, client.ObjectKeyFromObject(om), om)).To(Succeed())
				return om.Status.Phase
			}).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(labhookv1alpha1.MessageDelivered))
		}
		deliver("ed-before")

		By("serving both keys during a rotation's grace period, and delivering signed with both")
		w := get(Default)
		w.Annotations = map[string]string{labhookv1alpha1.AnnotationRotateSecretRequestedAt: "r1"}
		Expect(cl.Client.Update(ctx, w)).To(Succeed())
		Eventually(func(g Gomega) string { return get(g).Status.PreviousPublicKey }).WithTimeout(20 * time.Second).
			WithPolling(100 * time.Millisecond).Should(Equal(first))
		second := get(Default).Status.PublicKey
		Expect(second).NotTo(Equal(first))
		Eventually(func() ([]string, error) { return fetchJWKS(base, ns) }).WithTimeout(20 * time.Second).WithPolling(jwksPolling).
			Should(Equal([]string{second, first}))
		deliver("ed-during")

		By("serving only the new key after the grace period; the receiver fetches it on its first miss")
		Eventually(func() ([]string, error) { return fetchJWKS(base, ns) }).
			WithTimeout(grace + 20*time.Second).WithPolling(jwksPolling).Should(Equal([]string{second}))
		Expect(get(Default).Status.PreviousPublicKey).To(BeEmpty())
		deliver("ed-after")
		Expect(get(Default).Status.State).To(Equal(labhookv1alpha1.StateValid))
		Expect(strings.Join(rcv.Output(), "\n")).NotTo(ContainSubstring("refused message"),
			"no message labhook signed was refused")
		report("ed25519: the reference receiver verified the test message and 3 deliveries (before, during and after a rotation) with keys from the JWKS only")
	}, SpecTimeout(3*time.Minute))
})
