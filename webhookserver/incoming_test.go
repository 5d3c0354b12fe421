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
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/echo"
	"github.com/labhook/labhook/webhookserver"
)

func seedExample() []byte {
	GinkgoHelper()
	b, err := os.ReadFile("../config/samples/incoming/seed-example.json")
	Expect(err).NotTo(HaveOccurred())
	return b
}

// message is a small valid message to edit: one VM with a TERMINAL with
// a key, and one URL.
func message(id, ts string) map[string]any {
	var m map[string]any
	Expect(json.Unmarshal([]byte(`{
	  "source_message_id": "`+id+`", "type": "RESOURCE", "action": "CREATED", "timestamp": "`+ts+`",
	  "data": {
	    "resources": [
	      {"id": "vm1", "type": "VM", "status": "READY", "name": "vm",
	       "config": {"network_interface": {"public_ip": "32.17.144.2", "dns": "vm1.labs.example.com"}, "flavour": {"cpu": 2}}},
	      {"id": "url1", "type": "URL", "status": "READY", "config": {"address": "https://my.webpage.com:3131"}}
	    ],
	    "interfaces": [
	      {"name": "Shell", "type": "TERMINAL", "region": "us-east-1", "resource_id": "vm1",
	       "config": {"port": 2022, "authentication": {"type": "keypair", "data": {"key": "SECRET-KEY-MATERIAL"}}}}
	    ]
	  }}`), &m)).To(Succeed())
	return m
}

func encode(m map[string]any) []byte {
	b, err := json.Marshal(m)
	Expect(err).NotTo(HaveOccurred())
	return b
}

// path returns the value at a.b[0].c of m, for editing.
func resources(m map[string]any) []any  { return m["data"].(map[string]any)["resources"].([]any) }
func interfaces(m map[string]any) []any { return m["data"].(map[string]any)["interfaces"].([]any) }
func entry(l []any, i int) map[string]any {
	return l[i].(map[string]any)
}
func config(e map[string]any) map[string]any { return e["config"].(map[string]any) }

// versions maps every LabResource, LabInterface and Secret of ns to its
// resourceVersion.
func versions(ctx context.Context, ns string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	var lrs labhookv1alpha1.LabResourceList
	Expect(k8sClient.List(ctx, &lrs, client.InNamespace(ns))).To(Succeed())
	for _, o := range lrs.Items {
		out["LabResource/"+o.Name] = o.ResourceVersion
	}
	var lis labhookv1alpha1.LabInterfaceList
	Expect(k8sClient.List(ctx, &lis, client.InNamespace(ns))).To(Succeed())
	for _, o := range lis.Items {
		out["LabInterface/"+o.Name] = o.ResourceVersion
	}
	var secrets corev1.SecretList
	Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns))).To(Succeed())
	for _, o := range secrets.Items {
		out["Secret/"+o.Name] = o.ResourceVersion
	}
	return out
}

// iface is the LabInterface name of the interface called name on resource id.
func iface(resourceID, name string) string { return webhookserver.InterfaceName(resourceID, name) }

func operations(r reply) map[string]string {
	out := map[string]string{}
	for _, res := range r.body.Results {
		out[res.Kind+"/"+res.Name] = res.Operation
	}
	return out
}

var _ = Describe("The incoming endpoint", func() {
	It("turns the seed example into 4 LabResources, 5 LabInterfaces and 2 credential Secrets, with credentials only in Secrets", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		r := post(baseURL, org, key, seedExample())
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.body.SourceMessageID).To(Equal("dfede374"))
		Expect(operations(r)).To(Equal(map[string]string{
			"LabResource/25f377ac": "created", "LabResource/56ea830e": "created",
			"LabResource/619a8bbe": "created", "LabResource/acf1109b": "created",
			"LabInterface/" + iface("25f377ac", "Server"): "created", "LabInterface/" + iface("25f377ac", "Server Web Application"): "created",
			"LabInterface/" + iface("56ea830e", "Agent"): "created", "LabInterface/" + iface("619a8bbe", "Client"): "created",
			"LabInterface/" + iface("acf1109b", "Hosted Service"): "created",
		}))
		Expect(r.raw).To(ContainSubstring(`"reply_to":null`), "dfede374 names no message labhook sent to this organisation")

		server := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "25f377ac"}, server)).To(Succeed())
		Expect(server.Spec.ID).To(Equal("25f377ac"))
		Expect(server.Spec.Type).To(Equal(labhookv1alpha1.ResourceTypeVM))
		Expect(server.Spec.Name).To(Equal("server"))
		Expect(server.Spec.Config.NetworkInterfaces).To(Equal([]labhookv1alpha1.NetworkInterface{
			{PublicIP: "32.17.144.2", PrivateIP: "10.0.0.6", DNS: "5108e970-labs.mycompany.com"}}))
		Expect(server.Status.Phase).To(Equal(labhookv1alpha1.PhaseStarting))
		Expect(server.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationSourceMessageID, "dfede374"))
		Expect(server.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationSourceTimestamp, "2020-10-05T08:39:09+00:00"))
		Expect(echo.IsEcho(server, server.Spec)).To(BeTrue(), "the controllers must see this spec as the backend's own")
		Expect(server.ManagedFields).To(ContainElement(HaveField("Manager", labhookv1alpha1.FieldManagerWebhookServer)))

		site := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "acf1109b"}, site)).To(Succeed())
		Expect(site.Spec.Type).To(Equal(labhookv1alpha1.ResourceTypeURL))
		Expect(site.Spec.Config.Address).To(Equal("https://my.webpage.com:3131"))
		Expect(site.Status.Phase).To(Equal(labhookv1alpha1.PhaseReady))

		client619 := &labhookv1alpha1.LabInterface{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("619a8bbe", "Client")}, client619)).To(Succeed())
		Expect(client619.Spec.Name).To(Equal("Client"))
		Expect(client619.Spec.Type).To(Equal(labhookv1alpha1.InterfaceDesktop))
		Expect(client619.Spec.Region).To(Equal("us-east-1"))
		Expect(client619.Spec.ResourceRef.Name).To(Equal("619a8bbe"))
		Expect(*client619.Spec.Config.Port).To(Equal(int32(3389)), `the seed's "3389" is a number in the CR`)
		Expect(client619.Spec.Config.Authentication.Type).To(Equal(labhookv1alpha1.AuthGeneratedUsernamePassword))
		Expect(client619.Spec.Config.Authentication.SecretRef.Name).To(Equal(iface("619a8bbe", "Client") + "-credentials"))
		Expect(echo.IsEcho(client619, client619.Spec)).To(BeTrue())

		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("619a8bbe", "Client") + "-credentials"}, secret)).To(Succeed())
		Expect(secret.Data).To(Equal(map[string][]byte{"username": []byte("Administrator"), "password": []byte("PLACEHOLDER-NOT-A-REAL-PASSWORD")}))
		Expect(secret.Labels).To(HaveKeyWithValue(labhookv1alpha1.LabelLabInterface, iface("619a8bbe", "Client")))
		Expect(secret.OwnerReferences).To(ConsistOf(HaveField("UID", client619.UID)))
		agentSecret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("56ea830e", "Agent") + "-credentials"}, agentSecret)).To(Succeed())
		Expect(agentSecret.Data).To(HaveKey("key"))

		// No credential in any CR, in any form.
		var lrs labhookv1alpha1.LabResourceList
		var lis labhookv1alpha1.LabInterfaceList
		Expect(k8sClient.List(ctx, &lrs, client.InNamespace(org))).To(Succeed())
		Expect(k8sClient.List(ctx, &lis, client.InNamespace(org))).To(Succeed())
		Expect(lrs.Items).To(HaveLen(4))
		Expect(lis.Items).To(HaveLen(5))
		all, _ := json.Marshal([]any{lrs, lis, r.body})
		Expect(string(all)).NotTo(ContainSubstring("PLACEHOLDER"))
		Expect(string(all)).NotTo(ContainSubstring(string(agentSecret.Data["key"])))
	})

	It("converges with config/samples applied first: the same values under two managers are no conflict", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		applySamples(ctx, org, "labhook_v1alpha1_labresource.yaml", "labhook_v1alpha1_labinterface.yaml")
		r := post(baseURL, org, key, seedExample())
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.body.Results).To(HaveLen(9))
		for _, res := range r.body.Results {
			Expect(res.Operation).To(BeElementOf("updated", "unchanged"), "%+v", res)
		}
		Expect(versions(ctx, org)).To(HaveLen(1+4+5+2), "the samples' objects are the seed's objects, and the webhookserver wrote the credentials")
	})

	It("never writes into a Secret it did not create: 409 naming it, and nothing is written", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		applySamples(ctx, org, "interface-credentials.yaml")
		before := versions(ctx, org)
		r := post(baseURL, org, key, seedExample())
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring("Secret " + iface("56ea830e", "Agent") + "-credentials"))
		Expect(r.body.Results).To(BeEmpty())
		Expect(versions(ctx, org)).To(Equal(before), "nothing written, the Secret untouched")
		sec := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("56ea830e", "Agent") + "-credentials"}, sec)).To(Succeed())
		Expect(sec.OwnerReferences).To(BeEmpty())
		Expect(sec.Data).To(Equal(map[string][]byte{"key": []byte("PLACEHOLDER-NOT-A-REAL-PRIVATE-KEY")}))

		// Also a Secret of that name with the label but no owner.
		org2, key2 := newOrg(ctx)
		labelled := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: iface("vm1", "Shell") + "-credentials", Namespace: org2,
				Labels: map[string]string{labhookv1alpha1.LabelLabInterface: iface("vm1", "Shell")}},
			StringData: map[string]string{"unrelated": "value"},
		}
		Expect(k8sClient.Create(ctx, labelled)).To(Succeed())
		cached(ctx, labelled)
		r = post(baseURL, org2, key2, encode(message("foreign", "2026-01-01T10:00:00Z")))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring(iface("vm1", "Shell") + "-credentials"))
		Expect(versions(ctx, org2)).To(HaveLen(2), "the API key and the foreign Secret only")
	})
})

// cached waits until the API server's watch cache, which the webhookserver
// reads, shows objs as they are now.
func cached(ctx context.Context, objs ...client.Object) {
	GinkgoHelper()
	for _, obj := range objs {
		key := client.ObjectKeyFromObject(obj)
		now := obj.DeepCopyObject().(client.Object)
		Expect(k8sClient.Get(ctx, key, now)).To(Succeed())
		Eventually(func(g Gomega) string {
			seen := obj.DeepCopyObject().(client.Object)
			g.Expect(k8sClient.Get(ctx, key, seen, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}})).To(Succeed())
			return seen.GetResourceVersion()
		}).Should(Equal(now.GetResourceVersion()))
	}
}

// applySamples creates files of config/samples in ns, as kubectl would,
// and waits until the watch cache shows them.
func applySamples(ctx context.Context, ns string, files ...string) {
	GinkgoHelper()
	var created []client.Object
	defer func() { cached(ctx, created...) }()
	for _, f := range files {
		raw, err := os.ReadFile("../config/samples/" + f)
		Expect(err).NotTo(HaveOccurred())
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				Expect(err).To(MatchError(io.EOF))
				break
			}
			u.SetNamespace(ns)
			Expect(k8sClient.Create(ctx, u, client.FieldOwner("kubectl-client-side-apply"))).To(Succeed(), f)
			created = append(created, u)
		}
	}
}

var _ = Describe("The incoming endpoint, continued", func() {

	It("answers a replay with the first result and writes nothing, also after a restart", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		first := post(baseURL, org, key, seedExample())
		Expect(first.code).To(Equal(http.StatusOK), first.raw)
		before := versions(ctx, org)
		Expect(before).To(HaveLen(4 + 5 + 3)) // and the API key

		again := post(baseURL, org, key, seedExample())
		Expect(again.code).To(Equal(http.StatusOK))
		Expect(again.raw).To(Equal(first.raw), "the first result, as it was")
		Expect(versions(ctx, org)).To(Equal(before))

		// A new webhookserver has no memory of the message: the objects do,
		// and what the message did to each.
		other := startServer(cfg, testOptions())
		restarted := post(other, org, key, seedExample())
		Expect(restarted.code).To(Equal(http.StatusOK), restarted.raw)
		Expect(restarted.raw).To(Equal(first.raw), "the first answer, rebuilt from the objects")
		Expect(versions(ctx, org)).To(Equal(before), "resourceVersions are unchanged")
	})

	It("refuses a body that differs with the same source_message_id, action and timestamp as ambiguous, also after a restart", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		m := message("reuse-1", "2026-01-01T10:00:00Z")
		Expect(post(baseURL, org, key, encode(m)).code).To(Equal(http.StatusOK))
		before := versions(ctx, org)
		entry(resources(m), 0)["name"] = "renamed"
		r := post(baseURL, org, key, encode(m))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring(`"reuse-1"`))
		Expect(r.body.Error).To(ContainSubstring("ambiguous"))

		other := startServer(cfg, testOptions())
		r = post(other, org, key, encode(m))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring("different body"))
		Expect(versions(ctx, org)).To(Equal(before))
	})

	It("skips, as stale, a message older than what an object reflects", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		newer := message("new", "2026-01-01T10:00:00Z")
		entry(resources(newer), 0)["name"] = "newer"
		Expect(post(baseURL, org, key, encode(newer)).code).To(Equal(http.StatusOK))
		before := versions(ctx, org)

		older := message("old", "2026-01-01T09:59:59+00:00")
		entry(resources(older), 0)["name"] = "older"
		entry(resources(older), 0)["status"] = "STOPPED"
		r := post(baseURL, org, key, encode(older))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(operations(r)).To(HaveKeyWithValue("LabResource/vm1", "stale"))
		Expect(operations(r)).To(HaveKeyWithValue("LabInterface/"+iface("vm1", "Shell"), "stale"))
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, lr)).To(Succeed())
		Expect(lr.Spec.Name).To(Equal("newer"))
		Expect(lr.Status.Phase).To(Equal(labhookv1alpha1.PhaseReady))
		after := versions(ctx, org)
		Expect(after["LabResource/vm1"]).To(Equal(before["LabResource/vm1"]))

		// A later message applies, and says what changed.
		later := message("later", "2026-01-01T10:00:01Z")
		entry(resources(later), 0)["status"] = "STOPPED"
		r = post(baseURL, org, key, encode(later))
		Expect(operations(r)).To(HaveKeyWithValue("LabResource/vm1", "updated"))
		Expect(operations(r)).To(HaveKeyWithValue("LabResource/url1", "unchanged"))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, lr)).To(Succeed())
		Expect(lr.Spec.Name).To(Equal("vm"))
		Expect(lr.Status.Phase).To(Equal(labhookv1alpha1.PhaseStopped))
		Expect(lr.Spec.Config.Extra.Raw).To(MatchJSON(`{"flavour":{"cpu":2}}`), "unknown config keys are kept in config.extra")
	})

	It("deletes interfaces, then resources, for DELETED, marking them so their DELETED messages are not echoed", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		Expect(post(baseURL, org, key, encode(message("c", "2026-01-01T10:00:00Z"))).code).To(Equal(http.StatusOK))
		// A finalizer stands in for the controllers, so the marks can be seen.
		li := &labhookv1alpha1.LabInterface{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("vm1", "Shell")}, li)).To(Succeed())
		li.Finalizers = []string{"test.labhook.io/hold"}
		Expect(k8sClient.Update(ctx, li)).To(Succeed())

		del := []byte(`{"source_message_id":"d","type":"RESOURCE","action":"DELETED","timestamp":"2026-01-01T11:00:00Z",
		  "data":{"resources":[{"id":"vm1"},{"id":"gone"}],"interfaces":[{"resource_id":"vm1","name":"Shell"}]}}`)
		r := post(baseURL, org, key, del)
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.body.Results).To(HaveLen(3))
		Expect(r.body.Results[0]).To(HaveField("Kind", "LabInterface"), "interfaces go first")
		Expect(operations(r)).To(Equal(map[string]string{
			"LabInterface/" + iface("vm1", "Shell"): "deleted", "LabResource/vm1": "deleted", "LabResource/gone": "not_found",
		}))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("vm1", "Shell")}, li)).To(Succeed())
		Expect(li.DeletionTimestamp).NotTo(BeNil())
		Expect(echo.IsEchoDelete(li)).To(BeTrue())
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, &labhookv1alpha1.LabResource{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "url1"}, &labhookv1alpha1.LabResource{})).To(Succeed())

		// The same DELETED again is a retry; another body with the same
		// source_message_id, action and timestamp is ambiguous.
		Expect(post(baseURL, org, key, del).code).To(Equal(http.StatusOK))
		cached(ctx, li)
		other := bytes.Replace(del, []byte(`{"id":"gone"}`), []byte(`{"id":"url1"}`), 1)
		r = post(startServer(cfg, testOptions()), org, key, other)
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring("ambiguous"))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "url1"}, &labhookv1alpha1.LabResource{})).To(Succeed(), "nothing deleted")

		li.Finalizers = nil
		Expect(k8sClient.Update(ctx, li)).To(Succeed())
	})

	Describe("authentication", func() {
		It("gives the same 401 for no key, a wrong key, another organisation's key and an unknown organisation", func(ctx SpecContext) {
			org, key := newOrg(ctx)
			other, otherKey := newOrg(ctx)
			body := encode(message("auth", "2026-01-01T10:00:00Z"))
			var answers []string
			for _, c := range []struct{ org, key string }{
				{"", ""}, {org, "wrong"}, {org, otherKey}, {other, key}, {"no-such-org", key}, {org, ""}, {"Bad Org", key},
			} {
				r := post(baseURL, c.org, c.key, body)
				Expect(r.code).To(Equal(http.StatusUnauthorized), "%+v: %s", c, r.raw)
				Expect(r.header.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
				answers = append(answers, r.raw)
			}
			for _, a := range answers {
				Expect(a).To(Equal(answers[0]), "every failure looks the same")
			}
			req, _ := http.NewRequest(http.MethodPost, baseURL+webhookserver.IncomingPath, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Basic "+org+":"+key)
			Expect(do(httpClient, req).code).To(Equal(http.StatusUnauthorized))
			Expect(versions(ctx, org)).To(HaveLen(1), "nothing but the API key")
		})

		It("accepts a key stored as its SHA-256, and two live keys at once", func(ctx SpecContext) {
			org, key := newOrg(ctx)
			sum := sha256.Sum256([]byte("hashed-key"))
			addKey(ctx, org, "hashed", labhookv1alpha1.SecretKeyAPIKeySHA256, hex.EncodeToString(sum[:]))
			addKey(ctx, org, "second", labhookv1alpha1.SecretKeyAPIKey, "second-key")
			Eventually(func() int {
				return post(baseURL, org, "hashed-key", encode(message("h1", "2026-01-01T10:00:00Z"))).code
			}).Should(Equal(http.StatusOK))
			Eventually(func() int {
				return post(baseURL, org, "second-key", encode(message("h2", "2026-01-01T10:00:01Z"))).code
			}).Should(Equal(http.StatusOK))
			Expect(post(baseURL, org, key, encode(message("h3", "2026-01-01T10:00:02Z"))).code).To(Equal(http.StatusOK))
			Expect(post(baseURL, org, hex.EncodeToString(sum[:]), encode(message("h4", "2026-01-01T10:00:03Z"))).code).
				To(Equal(http.StatusUnauthorized), "the stored hash is not itself a key")

			// A key whose Secret is deleted stops working.
			Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "second", Namespace: org}})).To(Succeed())
			Eventually(func() int {
				return post(baseURL, org, "second-key", encode(message("h5", "2026-01-01T10:00:04Z"))).code
			}).Should(Equal(http.StatusUnauthorized))
		})
	})

	Describe("limits", func() {
		It("answers 405 with Allow, 415, 413 and 404", func(ctx SpecContext) {
			org, key := newOrg(ctx)
			req, _ := http.NewRequest(http.MethodGet, baseURL+webhookserver.IncomingPath, nil)
			r := do(httpClient, req)
			Expect(r.code).To(Equal(http.StatusMethodNotAllowed))
			Expect(r.header.Get("Allow")).To(Equal("POST"))

			req, _ = http.NewRequest(http.MethodPost, baseURL+webhookserver.IncomingPath, strings.NewReader("source_message_id=x"))
			req.Header.Set("Authorization", "Bearer "+org+":"+key)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			Expect(do(httpClient, req).code).To(Equal(http.StatusUnsupportedMediaType))

			big := message("big", "2026-01-01T10:00:00Z")
			config(entry(resources(big), 0))["padding"] = strings.Repeat("x", 1<<20)
			r = post(baseURL, org, key, encode(big))
			Expect(r.code).To(Equal(http.StatusRequestEntityTooLarge), r.raw)
			// Also when the length is not announced.
			req, _ = http.NewRequest(http.MethodPost, baseURL+webhookserver.IncomingPath, struct{ *strings.Reader }{strings.NewReader(string(encode(big)))})
			req.Header.Set("Authorization", "Bearer "+org+":"+key)
			req.Header.Set("Content-Type", "application/json")
			Expect(do(httpClient, req).code).To(Equal(http.StatusRequestEntityTooLarge))

			req, _ = http.NewRequest(http.MethodGet, baseURL+"/nothing", nil)
			Expect(do(httpClient, req).code).To(Equal(http.StatusNotFound))
			Expect(versions(ctx, org)).To(HaveLen(1))
		})

		It("answers 429 with Retry-After past an organisation's rate limit, and not for another organisation", func(ctx SpecContext) {
			org, key := newOrg(ctx)
			other, otherKey := newOrg(ctx)
			opts := testOptions()
			opts.RateLimit, opts.RateBurst = 0.5, 2
			limited := startServer(cfg, opts)
			codes := []int{}
			var last reply
			for i := range 4 {
				last = post(limited, org, key, encode(message(fmt.Sprintf("rl-%d", i), "2026-01-01T10:00:00Z")))
				codes = append(codes, last.code)
			}
			Expect(codes).To(Equal([]int{200, 200, 429, 429}))
			Expect(last.header.Get("Retry-After")).To(MatchRegexp(`^[1-9][0-9]*$`))
			Expect(post(limited, other, otherKey, encode(message("rl-other", "2026-01-01T10:00:00Z"))).code).To(Equal(http.StatusOK))
		})

		It("answers 503 with Retry-After while the API server cannot be reached, and recovers", func(ctx SpecContext) {
			org, key := newOrg(ctx)
			apiProxy.cut()
			r := post(baseURL, org, key, seedExample())
			apiProxy.restore()
			Expect(r.code).To(Equal(http.StatusServiceUnavailable), r.raw)
			Expect(r.header.Get("Retry-After")).To(Equal("2"))
			Eventually(func() int {
				return post(baseURL, org, key, seedExample()).code
			}).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))
			Expect(versions(ctx, org)).To(HaveLen(1 + 4 + 5 + 2))
		})
	})

	It("answers 409 naming the fields and the manager when another field manager owns them", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		Expect(k8sClient.Create(ctx, &labhookv1alpha1.LabResource{
			ObjectMeta: metav1.ObjectMeta{Name: "vm1", Namespace: org},
			Spec:       labhookv1alpha1.LabResourceSpec{ID: "vm1", Type: labhookv1alpha1.ResourceTypeVM, Name: "from-git"},
		}, client.FieldOwner("gitops"))).To(Succeed())
		r := post(baseURL, org, key, encode(message("ssa", "2026-01-01T10:00:00Z")))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring("gitops"))
		Expect(r.body.Details).To(ContainElement(And(
			HaveField("Field", ContainSubstring(".spec.name")), HaveField("Message", ContainSubstring(`"gitops"`)))))
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, lr)).To(Succeed())
		Expect(lr.Spec.Name).To(Equal("from-git"))
	})

	It("answers a write that fails midway with what was applied, and a corrected message converges", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		earlier := []byte(`{"source_message_id":"vm","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T09:00:00Z",
		  "data":{"resources":[{"id":"url1","type":"VM","status":"READY"}]}}`)
		Expect(post(baseURL, org, key, earlier).code).To(Equal(http.StatusOK))
		// url1 is a VM in the cluster and a URL in the message: the API
		// server refuses the type change, after vm1 was written.
		r := post(baseURL, org, key, encode(message("midway", "2026-01-01T10:00:00Z")))
		Expect(r.code).To(Equal(http.StatusUnprocessableEntity), r.raw)
		Expect(r.body.Results).To(ConsistOf(HaveField("Name", "vm1")))
		Expect(r.body.Details).To(ContainElement(HaveField("Message", ContainSubstring("type is immutable"))))

		Expect(k8sClient.Delete(ctx, &labhookv1alpha1.LabResource{ObjectMeta: metav1.ObjectMeta{Name: "url1", Namespace: org}})).To(Succeed())
		Eventually(func() int {
			return post(baseURL, org, key, encode(message("midway-2", "2026-01-01T10:00:01Z"))).code
		}).Should(Equal(http.StatusOK))
		Expect(versions(ctx, org)).To(HaveLen(1 + 2 + 1 + 1))
	})
})
