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

package webhookserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// jwksReply is one answer of the JWKS endpoint.
type jwksReply struct {
	code   int
	header http.Header
	set    wire.JWKS
	raw    string
}

func getJWKS(method, org string) jwksReply {
	GinkgoHelper()
	return getJWKSG(Default, method, org)
}

// getJWKSG is getJWKS for a polled function.
func getJWKSG(g Gomega, method, org string) jwksReply {
	GinkgoHelper()
	req, err := http.NewRequest(method, baseURL+wire.JWKSPathPrefix+org, nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := httpClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	r := jwksReply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if resp.StatusCode == http.StatusOK && method == http.MethodGet {
		g.Expect(json.Unmarshal(raw, &r.set)).To(Succeed(), r.raw)
	}
	return r
}

// publishedKeys polls the whpk_ keys of org's JWKS, in order.
func publishedKeys(org string) func(g Gomega) []string {
	return func(g Gomega) []string {
		GinkgoHelper()
		r := getJWKSG(g, http.MethodGet, org)
		g.Expect(r.code).To(Equal(http.StatusOK), r.raw)
		keys, err := r.set.PublicKeys()
		g.Expect(err).NotTo(HaveOccurred())
		return keys
	}
}

// keyPair returns a new whsk_/whpk_ pair.
func keyPair() (string, string) {
	GinkgoHelper()
	priv, pub, err := wire.GenerateKeyPair()
	Expect(err).NotTo(HaveOccurred())
	return priv, pub
}

// publish creates a WebhookConfig and writes the public keys into its
// status, as the WebhookConfig controller does.
func publish(ctx context.Context, ns, name string, signature labhookv1alpha1.SignatureScheme, pub, prev string) *labhookv1alpha1.WebhookConfig {
	GinkgoHelper()
	w := &labhookv1alpha1.WebhookConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       labhookv1alpha1.WebhookConfigSpec{URL: "https://" + name + ".example.com/hook", Signature: signature},
	}
	Expect(k8sClient.Create(ctx, w)).To(Succeed())
	w.Status.PublicKey, w.Status.PreviousPublicKey = pub, prev
	Expect(k8sClient.Status().Update(ctx, w)).To(Succeed())
	return w
}

func newNamespaceOnly(ctx context.Context) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "org-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// jwksPolling keeps a spec's polling under the 5 requests a second each
// organisation's JWKS is served.
const jwksPolling = 250 * time.Millisecond

var _ = Describe("JWKS endpoint", func() {
	var ctx context.Context
	BeforeEach(func() {
		ctx = context.Background()
	})

	It("serves an organisation's current and previous Ed25519 keys, matching status, and nothing of other organisations", func() {
		org, other := newNamespaceOnly(ctx), newNamespaceOnly(ctx)
		privA, pubA := keyPair()
		_, pubB := keyPair()
		_, prevB := keyPair()
		_, pubOther := keyPair()
		publish(ctx, org, "a", labhookv1alpha1.SignatureEd25519, pubA, "")
		b := publish(ctx, org, "b", labhookv1alpha1.SignatureEd25519, pubB, prevB)
		publish(ctx, org, "hmac", labhookv1alpha1.SignatureHMACSHA256, "", "")
		publish(ctx, other, "a", labhookv1alpha1.SignatureEd25519, pubOther, "")

		By("listing current keys first, then previous ones, each as an RFC 8037 OKP key with its thumbprint as kid")
		Eventually(publishedKeys(org)).WithPolling(jwksPolling).Should(Equal([]string{pubA, pubB, prevB}))
		r := getJWKS(http.MethodGet, org)
		Expect(r.header.Get("Content-Type")).To(Equal("application/json"))
		Expect(r.header.Get("Cache-Control")).To(Equal("public, max-age=30"))
		kid, err := wire.KeyID(pubA)
		Expect(err).NotTo(HaveOccurred())
		Expect(r.set.Keys[0]).To(Equal(wire.JWK{Kty: "OKP", Crv: "Ed25519", X: r.set.Keys[0].X, Kid: kid, Use: "sig", Alg: "EdDSA"}))
		Expect(r.raw).NotTo(ContainSubstring("hmac"), "config names are not published")

		By("verifying a message signed with a's private key against the fetched keys")
		keys, err := r.set.PublicKeys()
		Expect(err).NotTo(HaveOccurred())
		now := time.Now()
		sig, err := wire.Sign([]string{privA}, "msg-1", now, []byte(`{}`))
		Expect(err).NotTo(HaveOccurred())
		h := http.Header{}
		h.Set(wire.HeaderWebhookID, "msg-1")
		h.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(wire.HeaderWebhookSignature, sig)
		Expect(wire.VerifyAny(keys, h, []byte(`{}`))).To(Succeed())

		By("keeping organisations apart")
		Eventually(publishedKeys(other)).WithPolling(jwksPolling).Should(Equal([]string{pubOther}))

		By("following status: the previous key goes when the grace period ends")
		b.Status.PreviousPublicKey = ""
		Expect(k8sClient.Status().Update(ctx, b)).To(Succeed())
		Eventually(publishedKeys(org)).WithPolling(jwksPolling).Should(Equal([]string{pubA, pubB}))

		By("dropping a deleted config's keys")
		Expect(k8sClient.Delete(ctx, b)).To(Succeed())
		Eventually(publishedKeys(org)).WithPolling(jwksPolling).Should(Equal([]string{pubA}))
	})

	It("answers an empty set for an organisation without keys or that does not exist, 404 for a bad id, 405 for other methods", func() {
		org := newNamespaceOnly(ctx)
		publish(ctx, org, "hmac", labhookv1alpha1.SignatureHMACSHA256, "", "")
		for _, o := range []string{org, "no-such-organisation"} {
			r := getJWKS(http.MethodGet, o)
			Expect(r.code).To(Equal(http.StatusOK), r.raw)
			Expect(r.raw).To(Equal(`{"keys":[]}` + "\n"))
		}
		Expect(getJWKS(http.MethodHead, org).code).To(Equal(http.StatusOK))
		r := getJWKS(http.MethodGet, "Not_An_Org")
		Expect(r.code).To(Equal(http.StatusNotFound))
		Expect(r.raw).To(ContainSubstring("not an organisation id"))
		r = getJWKS(http.MethodPost, org)
		Expect(r.code).To(Equal(http.StatusMethodNotAllowed))
		Expect(r.header.Get("Allow")).To(Equal("GET, HEAD"))
		Expect(getJWKS(http.MethodGet, org+"/extra").code).To(Equal(http.StatusNotFound))
	})

	It("caps an organisation's keys at 32, and rate-limits each organisation on its own", func() {
		org, quiet := newNamespaceOnly(ctx), newNamespaceOnly(ctx)
		var want []string
		for i := range 20 {
			_, pub := keyPair()
			_, prev := keyPair()
			publish(ctx, org, fmt.Sprintf("c%02d", i), labhookv1alpha1.SignatureEd25519, pub, prev)
			want = append(want, pub)
		}
		_, quietPub := keyPair()
		publish(ctx, quiet, "a", labhookv1alpha1.SignatureEd25519, quietPub, "")

		By("listing at most 32 keys, the current ones first")
		Eventually(publishedKeys(org)).WithPolling(jwksPolling).Should(HaveLen(32))
		keys := publishedKeys(org)(Default)
		Expect(keys[:20]).To(Equal(want))

		By("answering 429 with Retry-After past 5 requests a second (burst 20), while another organisation is served")
		var limited *jwksReply
		for range 200 {
			r := getJWKS(http.MethodGet, org)
			if r.code == http.StatusTooManyRequests {
				limited = &r
				break
			}
			Expect(r.code).To(Equal(http.StatusOK))
		}
		Expect(limited).NotTo(BeNil(), "200 requests in a row were all answered")
		Expect(limited.header.Get("Retry-After")).To(Equal("1"))
		Expect(limited.raw).To(ContainSubstring("at most 5 times a second"))
		Eventually(publishedKeys(quiet)).WithPolling(jwksPolling).Should(Equal([]string{quietPub}))
	})
})
