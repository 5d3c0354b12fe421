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
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/echo"
	"github.com/labhook/labhook/webhookserver"
)

// held is a request whose body is still being sent, so it stays in
// progress until finished.
type held struct {
	pw   *io.PipeWriter
	rest string
	done chan reply
}

// hold starts a POST of a body of length bytes (-1: unannounced) and sends
// only its first bytes.
func hold(base, org, key string, length int) *held {
	GinkgoHelper()
	head := `{"source_message_id":`
	size := max(length, 64)
	h := &held{rest: strings.Repeat(" ", size-len(head)-4) + `"x"}`, done: make(chan reply, 1)}
	pr, pw := io.Pipe()
	h.pw = pw
	req, err := http.NewRequest(http.MethodPost, base+webhookserver.IncomingPath, pr)
	Expect(err).NotTo(HaveOccurred())
	req.ContentLength = int64(length)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+org+":"+key)
	go func() {
		defer GinkgoRecover()
		h.done <- do(httpClient, req)
	}()
	_, err = pw.Write([]byte(head))
	Expect(err).NotTo(HaveOccurred())
	return h
}

// gaugeG reads a gauge of the webhookservers in this process, for a polled
// function.
func gaugeG(g Gomega, name string) float64 {
	GinkgoHelper()
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// finish sends the rest of the body and returns the answer.
func (h *held) finish() reply {
	GinkgoHelper()
	_, err := h.pw.Write([]byte(h.rest))
	Expect(err).NotTo(HaveOccurred())
	Expect(h.pw.Close()).To(Succeed())
	return <-h.done
}

var _ = Describe("Tenancy", func() {
	It("deletes only the entity a DELETED names, and refuses to write another entity's object (identity, not names)", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		// A GitOps-managed LabResource named web whose id is 9f9f9f9f.
		web := &labhookv1alpha1.LabResource{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: org},
			Spec:       labhookv1alpha1.LabResourceSpec{ID: "9f9f9f9f", Type: labhookv1alpha1.ResourceTypeVM},
		}
		Expect(k8sClient.Create(ctx, web, client.FieldOwner("gitops"))).To(Succeed())
		// And an interface at the name the webhookserver would give vm1's
		// Shell, that is another interface.
		other := &labhookv1alpha1.LabInterface{
			ObjectMeta: metav1.ObjectMeta{Name: iface("vm1", "Shell"), Namespace: org},
			Spec: labhookv1alpha1.LabInterfaceSpec{Name: "Other", Type: labhookv1alpha1.InterfaceWebPage, Region: "us-east-1",
				ResourceRef: labhookv1alpha1.LocalObjectReference{Name: "vm1"}},
		}
		Expect(k8sClient.Create(ctx, other, client.FieldOwner("gitops"))).To(Succeed())
		cached(ctx, web, other)
		before := versions(ctx, org)

		r := post(baseURL, org, key, []byte(`{"source_message_id":"del","type":"RESOURCE","action":"DELETED","timestamp":"2026-01-01T10:00:00Z",
		  "data":{"resources":[{"id":"web"}],"interfaces":[{"resource_id":"vm1","name":"Shell"}]}}`))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(operations(r)).To(Equal(map[string]string{"LabResource/web": "not_found", "LabInterface/" + iface("vm1", "Shell"): "not_found"}))
		Consistently(versionsOf(ctx, org)).Should(Equal(before), "nothing deleted, nothing marked")

		r = post(baseURL, org, key, []byte(`{"source_message_id":"cr","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T10:00:00Z",
		  "data":{"resources":[{"id":"web","type":"VM","status":"READY"}]}}`))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(And(ContainSubstring("LabResource web"), ContainSubstring(`"9f9f9f9f"`), ContainSubstring("another entity")))
		r = post(baseURL, org, key, encode(message("cr2", "2026-01-01T10:00:00Z")))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(And(ContainSubstring("LabInterface "+iface("vm1", "Shell")), ContainSubstring(`"Other"`)))
		Expect(r.body.Results).To(BeEmpty(), "refused before any write")
		Consistently(versionsOf(ctx, org)).Should(Equal(before))
	})

	It("gives different entities different object names", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		r := post(baseURL, org, key, []byte(`{"source_message_id":"names","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T10:00:00Z",
		  "data":{"resources":[{"id":"vm1","type":"VM","status":"READY"},{"id":"a","type":"VM","status":"READY"},{"id":"a-b","type":"VM","status":"READY"},
		                       {"id":"Web App","type":"VM","status":"READY"},{"id":"web-app","type":"VM","status":"READY"},{"id":"WEB_APP","type":"VM","status":"READY"}],
		          "interfaces":[{"name":"Web App","type":"WEB_PAGE","region":"us-east-1","resource_id":"vm1"},
		                        {"name":"web-app","type":"WEB_PAGE","region":"us-east-1","resource_id":"vm1"},
		                        {"name":"WEB_APP","type":"WEB_PAGE","region":"us-east-1","resource_id":"vm1"},
		                        {"name":"b-c","type":"WEB_PAGE","region":"us-east-1","resource_id":"a"},
		                        {"name":"c","type":"WEB_PAGE","region":"us-east-1","resource_id":"a-b"}]}}`))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		var lrs labhookv1alpha1.LabResourceList
		Expect(k8sClient.List(ctx, &lrs, client.InNamespace(org))).To(Succeed())
		ids := map[string]string{}
		for _, lr := range lrs.Items {
			ids[lr.Spec.ID] = lr.Name
		}
		Expect(ids).To(HaveLen(6))
		Expect(ids).To(HaveKeyWithValue("web-app", "web-app"), "an id that is a DNS label is its own name")
		Expect(ids["Web App"]).To(And(HavePrefix("web-app."), Not(Equal(ids["WEB_APP"]))))
		var lis labhookv1alpha1.LabInterfaceList
		Expect(k8sClient.List(ctx, &lis, client.InNamespace(org))).To(Succeed())
		got := map[string]string{}
		for _, li := range lis.Items {
			got[li.Spec.ResourceRef.Name+"/"+li.Spec.Name] = li.Name
		}
		Expect(got).To(HaveLen(5), "five interfaces, five objects")
		Expect(got).To(HaveKey("a/b-c"))
		Expect(got).To(HaveKey("a-b/c"))
	})

	It("decides staleness before writing credentials: an older message never rewrites a newer password", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		withKey := func(id, ts, k string) []byte {
			m := message(id, ts)
			shellKey(m)["key"] = k
			return encode(m)
		}
		Expect(post(baseURL, org, key, withKey("newer", "2026-01-01T10:00:00Z", "NEW-KEY")).code).To(Equal(http.StatusOK))
		name := types.NamespacedName{Namespace: org, Name: iface("vm1", "Shell") + "-credentials"}
		sec := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, name, sec)).To(Succeed())
		rv := sec.ResourceVersion

		r := post(baseURL, org, key, withKey("older", "2026-01-01T09:00:00Z", "OLD-KEY"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(operations(r)).To(HaveKeyWithValue("LabInterface/"+iface("vm1", "Shell"), "stale"))
		Expect(k8sClient.Get(ctx, name, sec)).To(Succeed())
		Expect(string(sec.Data["key"])).To(Equal("NEW-KEY"))
		Expect(sec.ResourceVersion).To(Equal(rv), "the Secret was not written at all")

		// A later message does change them, and the same credentials again
		// write nothing.
		Expect(post(baseURL, org, key, withKey("later", "2026-01-01T11:00:00Z", "LATER-KEY")).code).To(Equal(http.StatusOK))
		Expect(k8sClient.Get(ctx, name, sec)).To(Succeed())
		Expect(string(sec.Data["key"])).To(Equal("LATER-KEY"))
		rv = sec.ResourceVersion
		Expect(post(baseURL, org, key, withKey("again", "2026-01-01T12:00:00Z", "LATER-KEY")).code).To(Equal(http.StatusOK))
		Expect(k8sClient.Get(ctx, name, sec)).To(Succeed())
		Expect(sec.ResourceVersion).To(Equal(rv))
	})

	It("does not write to an object that is being deleted: 409 with Retry-After, and nothing written", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		Expect(post(baseURL, org, key, encode(message("first", "2026-01-01T10:00:00Z"))).code).To(Equal(http.StatusOK))
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, lr)).To(Succeed())
		lr.Finalizers = []string{"test.labhook.io/hold"}
		Expect(k8sClient.Update(ctx, lr)).To(Succeed())
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		before := versions(ctx, org)

		m := message("second", "2026-01-01T11:00:00Z")
		entry(resources(m), 1)["name"] = "renamed"
		r := post(baseURL, org, key, encode(m))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(ContainSubstring("LabResource vm1 is being deleted"))
		Expect(r.header.Get("Retry-After")).NotTo(BeEmpty())
		Consistently(versionsOf(ctx, org)).Should(Equal(before), "url1 was not written either")

		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "vm1"}, lr)).To(Succeed())
		lr.Finalizers = nil
		Expect(k8sClient.Update(ctx, lr)).To(Succeed())
		Eventually(func(g Gomega) int { return postG(g, baseURL, org, key, encode(m)).code }).Should(Equal(http.StatusOK))
	})

	It("takes the deletion mark off when a delete fails, so a later deletion by someone else is not taken for the backend's", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		Expect(post(baseURL, org, key, encode(message("c", "2026-01-01T10:00:00Z"))).code).To(Equal(http.StatusOK))
		noDelete := serverWithRole(ctx, "webhookserver-no-delete", func(role *rbacv1.ClusterRole) {
			for i := range role.Rules {
				role.Rules[i].Verbs = slices.DeleteFunc(role.Rules[i].Verbs, func(v string) bool { return v == "delete" })
			}
		}, testOptions())
		r := post(noDelete, org, key, []byte(`{"source_message_id":"d","type":"RESOURCE","action":"DELETED","timestamp":"2026-01-01T11:00:00Z","data":{"resources":[{"id":"url1"}]}}`))
		Expect(r.code).To(Equal(http.StatusInternalServerError), r.raw)
		Expect(r.body.Error).To(ContainSubstring("RBAC"))

		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "url1"}, lr)).To(Succeed())
		Expect(lr.Annotations).NotTo(HaveKey(labhookv1alpha1.AnnotationSourceDeleted))
		Expect(lr.Annotations).NotTo(HaveKey(labhookv1alpha1.AnnotationSourceDeletedAt))
		// Someone deletes it later (a finalizer stands in for the
		// controllers): that deletion is not the backend's.
		lr.Finalizers = []string{"test.labhook.io/hold"}
		Expect(k8sClient.Update(ctx, lr)).To(Succeed())
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "url1"}, lr)).To(Succeed())
		Expect(lr.DeletionTimestamp).NotTo(BeNil())
		Expect(echo.IsEchoDelete(lr)).To(BeFalse())
		lr.Finalizers = nil
		Expect(k8sClient.Update(ctx, lr)).To(Succeed())
	})

	It("answers a ResourceQuota refusal with 403 naming the quota", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		count := corev1.ResourceName("count/labresources.labhook.io")
		rq := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "lab-quota", Namespace: org},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{count: resource.MustParse("1")}},
		}
		Expect(k8sClient.Create(ctx, rq)).To(Succeed())
		// No kube-controller-manager here: write the usage it would.
		rq.Status = corev1.ResourceQuotaStatus{Hard: rq.Spec.Hard, Used: corev1.ResourceList{count: resource.MustParse("0")}}
		Expect(k8sClient.Status().Update(ctx, rq)).To(Succeed())

		r := post(baseURL, org, key, encode(message("quota", "2026-01-01T10:00:00Z")))
		Expect(r.code).To(Equal(http.StatusForbidden), r.raw)
		Expect(r.body.Error).To(And(ContainSubstring("lab-quota"), ContainSubstring("ResourceQuota"), ContainSubstring(org)))
		Expect(r.body.Error).NotTo(ContainSubstring("serviceaccount"))
		Expect(r.body.Results).To(HaveLen(1), "one LabResource fitted in the quota")
	})

	It("keeps each organisation within its API budget: a message over it is 429, another organisation's is answered meanwhile", func(ctx SpecContext) {
		big, bigKey := newOrg(ctx)
		small, smallKey := newOrg(ctx)
		opts := testOptions()
		opts.OrgAPIQPS, opts.OrgAPIBurst = 5, 5
		opts.RequestTimeout = 2 * time.Second
		srv := startServer(cfg, opts)
		var l []string
		for i := range 30 {
			l = append(l, fmt.Sprintf(`{"id":"r%d","type":"VM","status":"READY"}`, i))
		}
		bigDone := make(chan reply, 1)
		go func() {
			defer GinkgoRecover()
			bigDone <- post(srv, big, bigKey, []byte(`{"source_message_id":"big","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T10:00:00Z",
			  "data":{"resources":[`+strings.Join(l, ",")+`]}}`))
		}()
		r := post(srv, small, smallKey, []byte(`{"source_message_id":"small","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T10:00:00Z",
		  "data":{"resources":[{"id":"s1","type":"VM","status":"READY"}]}}`))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		r = <-bigDone
		Expect(r.code).To(Equal(http.StatusTooManyRequests), r.raw)
		Expect(r.body.Error).To(And(ContainSubstring(big), ContainSubstring("budget of 5 Kubernetes API calls per second")))
		Expect(r.header.Get("Retry-After")).NotTo(BeEmpty())
	})

	It("caps requests and body bytes in progress per organisation (429) and in all (503), with Retry-After", func(ctx SpecContext) {
		a, aKey := newOrg(ctx)
		b, bKey := newOrg(ctx)
		c, cKey := newOrg(ctx)
		// admitted holds a request and waits until the server has admitted
		// it (the in-progress gauges, which only this spec moves).
		admitted := func(srv, org, key string, length, requests int, bytes float64) *held {
			GinkgoHelper()
			h := hold(srv, org, key, length)
			Eventually(func(g Gomega) []float64 {
				return []float64{gaugeG(g, "labhook_incoming_requests_in_progress"), gaugeG(g, "labhook_incoming_body_bytes_in_progress")}
			}).Should(Equal([]float64{float64(requests), bytes}))
			return h
		}

		opts := testOptions()
		opts.MaxConcurrentRequestsPerOrg, opts.MaxConcurrentRequests = 1, 2
		srv := startServer(cfg, opts)
		a1 := admitted(srv, a, aKey, 100, 1, 100)
		r := hold(srv, a, aKey, 100).finish()
		Expect(r.code).To(Equal(http.StatusTooManyRequests), r.raw)
		Expect(r.body.Error).To(ContainSubstring("--max-concurrent-requests-per-org"))
		Expect(r.header.Get("Retry-After")).To(Equal("2"))
		Expect(post(srv, b, bKey, encode(message("b", "2026-01-01T10:00:00Z"))).code).To(Equal(http.StatusOK), "another organisation is served meanwhile")
		b1 := admitted(srv, b, bKey, 100, 2, 200)
		r = post(srv, c, cKey, []byte(`{}`))
		Expect(r.code).To(Equal(http.StatusServiceUnavailable), r.raw)
		Expect(r.body.Error).To(ContainSubstring("--max-concurrent-requests"))
		Expect(r.header.Get("Retry-After")).To(Equal("2"))
		Expect(a1.finish().code).To(Equal(http.StatusBadRequest))
		Expect(b1.finish().code).To(Equal(http.StatusBadRequest))
		Expect(post(srv, c, cKey, []byte(`{}`)).code).To(Equal(http.StatusBadRequest), "the slots are free again")

		opts = testOptions()
		opts.MaxInflightBytesPerOrg = 1 << 20
		srv = startServer(cfg, opts)
		a1 = admitted(srv, a, aKey, 700<<10, 1, 700<<10)
		r = hold(srv, a, aKey, 700<<10).finish()
		Expect(r.code).To(Equal(http.StatusTooManyRequests), r.raw)
		Expect(r.body.Error).To(ContainSubstring("--max-inflight-bytes-per-org"))
		Expect(a1.finish().code).To(Equal(http.StatusBadRequest))
		// A body of unknown length reserves --max-body-bytes.
		b1 = admitted(srv, b, bKey, -1, 1, 1<<20)
		Expect(post(srv, b, bKey, []byte(`{}`)).code).To(Equal(http.StatusTooManyRequests))
		Expect(b1.finish().code).To(Equal(http.StatusBadRequest))
	})

	It("throttles failed API-key attempts per organisation and per address with 429 and Retry-After", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		opts := testOptions()
		opts.AuthFailureRate, opts.AuthFailureBurst = 0.05, 3
		srv := startServer(cfg, opts)
		body := encode(message("t", "2026-01-01T10:00:00Z"))
		for range 3 {
			Expect(post(srv, org, "wrong", body).code).To(Equal(http.StatusUnauthorized))
		}
		r := post(srv, org, "wrong", body)
		Expect(r.code).To(Equal(http.StatusTooManyRequests), r.raw)
		Expect(r.header.Get("Retry-After")).To(MatchRegexp(`^[1-9][0-9]*$`))
		r = post(srv, org, key, body)
		Expect(r.code).To(Equal(http.StatusTooManyRequests), "a throttled attempt is not even checked, so guessing learns nothing: %s", r.raw)
		Expect(post(baseURL, org, key, body).code).To(Equal(http.StatusOK), "another replica (the shared test server) does not throttle")
	})
})
