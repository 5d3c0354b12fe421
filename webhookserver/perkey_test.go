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
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/echo"
	"github.com/labhook/labhook/webhookserver"
)

// perKeyMessage is a message with one VM and one TERMINAL on it.
func perKeyMessage(id, ts string) []byte {
	return []byte(`{"source_message_id": "` + id + `", "type": "RESOURCE", "action": "CREATED", "timestamp": "` + ts + `",
	  "data": {
	    "resources": [{"id": "vm1", "type": "VM", "status": "READY", "name": "vm",
	                   "config": {"network_interface": {"public_ip": "32.17.144.2", "dns": "vm1.labs.example.com"}}}],
	    "interfaces": [{"name": "Shell", "type": "TERMINAL", "region": "us-east-1", "resource_id": "vm1", "config": {"port": 22}}]
	  }}`)
}

// addConfigKey creates an API-key Secret whose key names config
// (labhook.io/webhook-config), and waits until the key is heard: a message
// with it is no longer answered 401.
func addConfigKey(ctx context.Context, ns, name, key, config string) *corev1.Secret {
	GinkgoHelper()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels:      map[string]string{labhookv1alpha1.LabelAPIKey: "true"},
			Annotations: map[string]string{labhookv1alpha1.AnnotationWebhookConfig: config}},
		StringData: map[string]string{labhookv1alpha1.SecretKeyAPIKey: key},
	}
	Expect(k8sClient.Create(ctx, sec)).To(Succeed())
	Eventually(func() int { return post(baseURL, ns, key, []byte(`{}`)).code }).
		WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).ShouldNot(Equal(http.StatusUnauthorized))
	return sec
}

// refs returns spec.webhookConfigRef of vm1 and of its Shell ("" for none),
// after checking that the controllers see both specs as the backend's own.
func refs(ctx context.Context, ns string) (string, string) {
	GinkgoHelper()
	lr := &labhookv1alpha1.LabResource{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vm1"}, lr)).To(Succeed())
	li := &labhookv1alpha1.LabInterface{}
	Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: iface("vm1", "Shell")}, li)).To(Succeed())
	Expect(echo.IsEcho(lr, lr.Spec)).To(BeTrue(), "the spec hash covers webhookConfigRef, so nothing is echoed to the backend")
	Expect(echo.IsEcho(li, li.Spec)).To(BeTrue())
	name := func(r *labhookv1alpha1.LocalObjectReference) string {
		if r == nil {
			return ""
		}
		return r.Name
	}
	return name(lr.Spec.WebhookConfigRef), name(li.Spec.WebhookConfigRef)
}

// bothRefs is the reference vm1 and its Shell share.
func bothRefs(ctx context.Context, ns string) string {
	GinkgoHelper()
	lrRef, ifaceRef := refs(ctx, ns)
	Expect(ifaceRef).To(Equal(lrRef), "a resource and its interface follow the same key")
	return lrRef
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var _ = Describe("A webhook config per key", func() {
	It("writes the key's WebhookConfig into spec.webhookConfigRef in the same apply; a key that names none takes it out again", func(ctx SpecContext) {
		org, plainKey := newOrg(ctx)
		addConfigKey(ctx, org, "emea-key", "emea-"+org, "emea")

		r := post(baseURL, org, "emea-"+org, perKeyMessage("pk1", "2026-01-01T10:00:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(bothRefs(ctx, org)).To(Equal("emea"))
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, lr)).To(Succeed())
		Expect(lr.ManagedFields).To(ConsistOf(
			And(HaveField("Manager", labhookv1alpha1.FieldManagerWebhookServer), HaveField("Subresource", "")),
			And(HaveField("Manager", labhookv1alpha1.FieldManagerWebhookServer), HaveField("Subresource", "status"))),
			"one apply wrote the spec with its reference")

		By("a later message with a key that names no config: the organisation's default applies again")
		r = post(baseURL, org, plainKey, perKeyMessage("pk2", "2026-01-01T10:01:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(operations(r)).To(HaveKeyWithValue("LabResource/vm1", "updated"))
		lrRef, ifaceRef := refs(ctx, org)
		Expect(lrRef).To(BeEmpty())
		Expect(ifaceRef).To(BeEmpty())

		By("a retry of that message with the per-key key is a replay: nothing is written")
		before := versions(ctx, org)
		r = post(baseURL, org, "emea-"+org, perKeyMessage("pk2", "2026-01-01T10:01:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(versions(ctx, org)).To(Equal(before))
	})

	It("refuses with 403 naming the Secret and its annotation a key whose config name is not an object name, such as another organisation's namespace/name; nothing is written", func(ctx SpecContext) {
		org, _ := newOrg(ctx)
		other, _ := newOrg(ctx)
		for i, value := range []string{"EMEA config", other + "/emea", strings.Repeat("a", 100<<10), ""} {
			key := "bad-" + org + "-" + string(rune('a'+i))
			name := "bad-key-" + string(rune('a'+i))
			addConfigKey(ctx, org, name, key, value)
			r := post(baseURL, org, key, perKeyMessage("pk-bad", "2026-01-01T10:00:00Z"))
			if value == "" {
				// An empty annotation names no config: the default applies.
				Expect(r.code).To(Equal(http.StatusOK), r.raw)
				Expect(bothRefs(ctx, org)).To(BeEmpty())
				continue
			}
			Expect(r.code).To(Equal(http.StatusForbidden), r.raw)
			Expect(r.header.Get("WWW-Authenticate")).To(BeEmpty(), "the key is right; it is its Secret that needs fixing")
			Expect(r.body.Error).To(And(ContainSubstring("Secret "+name), ContainSubstring(labhookv1alpha1.AnnotationWebhookConfig)))
			Expect(r.body.Details).NotTo(BeEmpty())
			Expect(r.body.Details[0].Field).To(Equal("Secret " + name + " metadata.annotations[" + labhookv1alpha1.AnnotationWebhookConfig + "]"))
			Expect(r.body.Details[0].Message).To(ContainSubstring("Invalid value"))
			var lrs labhookv1alpha1.LabResourceList
			Expect(k8sClient.List(ctx, &lrs, client.InNamespace(org))).To(Succeed())
			Expect(lrs.Items).To(BeEmpty())
		}
	})

	It("refuses with 403 a key that is in two Secrets naming different configs", func(ctx SpecContext) {
		org, _ := newOrg(ctx)
		key := "twice-" + org
		addConfigKey(ctx, org, "key-a", key, "emea")
		addConfigKey(ctx, org, "key-b", key, "apac")
		// Once the cache has both (an empty message is refused before it is read).
		Eventually(func() int { return post(baseURL, org, key, []byte(`{}`)).code }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(http.StatusForbidden))
		r := post(baseURL, org, key, perKeyMessage("pk-twice", "2026-01-01T10:00:00Z"))
		Expect(r.code).To(Equal(http.StatusForbidden), r.raw)
		Expect(r.body.Error).To(ContainSubstring("Secrets key-a, key-b"))
		var lrs labhookv1alpha1.LabResourceList
		Expect(k8sClient.List(ctx, &lrs, client.InNamespace(org))).To(Succeed())
		Expect(lrs.Items).To(BeEmpty())
	})

	It("keeps the binding through a rotation: a new Secret with the same annotation, then new key data in place", func(ctx SpecContext) {
		org, _ := newOrg(ctx)
		old := addConfigKey(ctx, org, "emea-1", "first-"+org, "emea")
		Expect(post(baseURL, org, "first-"+org, perKeyMessage("rot1", "2026-01-01T10:00:00Z")).code).To(Equal(http.StatusOK))
		Expect(bothRefs(ctx, org)).To(Equal("emea"))

		By("a new Secret with the same annotation, and the old one deleted")
		rotated := addConfigKey(ctx, org, "emea-2", "second-"+org, "emea")
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Eventually(func() int { return post(baseURL, org, "first-"+org, []byte(`{}`)).code }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(http.StatusUnauthorized))
		r := post(baseURL, org, "second-"+org, perKeyMessage("rot2", "2026-01-01T10:01:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(bothRefs(ctx, org)).To(Equal("emea"))

		By("the Secret's key replaced in place, by its hash")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rotated), rotated)).To(Succeed())
		rotated.Data = map[string][]byte{labhookv1alpha1.SecretKeyAPIKeySHA256: []byte(sha256Hex("third-" + org))}
		Expect(k8sClient.Update(ctx, rotated)).To(Succeed())
		Eventually(func() int { return post(baseURL, org, "third-"+org, []byte(`{}`)).code }).
			WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(http.StatusBadRequest))
		r = post(baseURL, org, "third-"+org, perKeyMessage("rot3", "2026-01-01T10:02:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(bothRefs(ctx, org)).To(Equal("emea"))
	})

	It("leaves a webhookConfigRef another field manager owns alone, and the message is applied whole", func(ctx SpecContext) {
		org, plainKey := newOrg(ctx)
		addConfigKey(ctx, org, "emea-key", "emea-"+org, "emea")
		gitops := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": "LabResource",
			"metadata": map[string]any{"name": "vm1", "namespace": org},
			"spec":     map[string]any{"id": "vm1", "type": "VM", "webhookConfigRef": map[string]any{"name": "pinned"}},
		}}
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(gitops), client.FieldOwner("gitops"))).To(Succeed())
		cached(ctx, &labhookv1alpha1.LabResource{ObjectMeta: metav1.ObjectMeta{Name: "vm1", Namespace: org}})

		r := post(baseURL, org, "emea-"+org, perKeyMessage("git1", "2026-01-01T10:00:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(operations(r)).To(Equal(map[string]string{"LabResource/vm1": "updated", "LabInterface/" + iface("vm1", "Shell"): "created"}))
		lrRef, ifaceRef := refs(ctx, org)
		Expect(lrRef).To(Equal("pinned"), "the pipeline's reference stays")
		Expect(ifaceRef).To(Equal("emea"), "the interface no one else manages follows the key")

		By("a key that names no config leaves the pipeline's reference too")
		r = post(baseURL, org, plainKey, perKeyMessage("git2", "2026-01-01T10:01:00Z"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		lrRef, ifaceRef = refs(ctx, org)
		Expect(lrRef).To(Equal("pinned"))
		Expect(ifaceRef).To(BeEmpty())
	})

	It("tells the API server's conflict on webhookConfigRef alone, which it judges again, from one on other fields, which is 409", func(ctx SpecContext) {
		org, _ := newOrg(ctx)
		apply := func(manager string, spec map[string]any) error {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": "LabResource",
				"metadata": map[string]any{"name": "vm1", "namespace": org}, "spec": spec,
			}}
			return k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager))
		}
		Expect(apply("gitops", map[string]any{"id": "vm1", "type": "VM", "name": "vm", "webhookConfigRef": map[string]any{"name": "pinned"}})).To(Succeed())
		err := apply(labhookv1alpha1.FieldManagerWebhookServer, map[string]any{"id": "vm1", "type": "VM", "name": "vm", "webhookConfigRef": map[string]any{"name": "emea"}})
		Expect(err).To(HaveOccurred())
		Expect(webhookserver.IsRefConflict(err)).To(BeTrue(), "%v", err)
		err = apply(labhookv1alpha1.FieldManagerWebhookServer, map[string]any{"id": "vm1", "type": "VM", "name": "other", "webhookConfigRef": map[string]any{"name": "emea"}})
		Expect(err).To(HaveOccurred())
		Expect(webhookserver.IsRefConflict(err)).To(BeFalse(), "a conflict on spec.name too is the other manager's to settle: %v", err)
	})
})
