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
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/webhookserver"
)

// enrollment is seed 001's ONDEMAND_ENROLLMENT STARTED, as labhook sent it
// to org: the manager is not running here, so the test creates the
// OutgoingMessage and records its delivery as the manager would.
func enrollment(ctx context.Context, org, id string) *labhookv1alpha1.OutgoingMessage {
	GinkgoHelper()
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: org},
		Spec:       labhookv1alpha1.OutgoingMessageSpec{Type: "ONDEMAND_ENROLLMENT", Status: "STARTED", EntityIDs: []string{"daf24556"}},
	}
	Expect(k8sClient.Create(ctx, om)).To(Succeed())
	now := metav1.Now()
	om.Status = labhookv1alpha1.OutgoingMessageStatus{Phase: labhookv1alpha1.MessageDelivered, Attempts: 1, DeliveredTime: &now, Target: "demo"}
	Expect(k8sClient.Status().Update(ctx, om)).To(Succeed())
	cached(ctx, om)
	return om
}

// lab is the backend's answer to an enrollment: one VM in phase status,
// with a TERMINAL that logs in with a key.
func lab(id, action, ts, status string) []byte {
	return []byte(`{"source_message_id":"` + id + `","type":"RESOURCE","action":"` + action + `","timestamp":"` + ts + `",
	  "data":{"resources":[{"id":"lab-1","type":"VM","status":"` + status + `","name":"student lab","config":{"network_interface":{"public_ip":"32.17.144.2"}}}],
	          "interfaces":[{"name":"Terminal","type":"TERMINAL","region":"us-east-1","resource_id":"lab-1",
	                         "config":{"port":22,"authentication":{"type":"keypair","data":{"key":"LAB-KEY"}}}}]}}`)
}

var _ = Describe("Replies", func() {
	It("records the enrollment conversation: CREATED and UPDATED answer one OutgoingMessage, retries write nothing, an ambiguous body is 409", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		// The webhookserver runs with exactly the ClusterRole its markers
		// generate.
		srv := serverWithRole(ctx, "webhookserver-replies", nil, testOptions())
		enrollment(ctx, org, "4dd6be9e")
		want := &webhookserver.ReplyTo{MessageID: "4dd6be9e", Type: "ONDEMAND_ENROLLMENT", Status: "STARTED"}

		created := lab("4dd6be9e", "CREATED", "2020-10-05T08:39:09+00:00", "STARTING")
		var first reply
		Eventually(func(g Gomega) {
			first = post(srv, org, key, created)
			g.Expect(first.code).To(Equal(http.StatusOK), first.raw)
		}).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(first.body.ReplyTo).To(Equal(want))
		Expect(operations(first)).To(Equal(map[string]string{"LabResource/lab-1": "created", "LabInterface/" + iface("lab-1", "Terminal"): "created"}))
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "lab-1"}, lr)).To(Succeed())
		Expect(lr.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationReplyTo, "4dd6be9e"))
		li := &labhookv1alpha1.LabInterface{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: iface("lab-1", "Terminal")}, li)).To(Succeed())
		Expect(li.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationReplyTo, "4dd6be9e"))
		om := &labhookv1alpha1.OutgoingMessage{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "4dd6be9e"}, om)).To(Succeed())
		Expect(om.Status.Replies).NotTo(BeNil())
		Expect(om.Status.Replies.Count).To(Equal(int32(1)))
		Expect(om.Status.Replies.LastAction).To(Equal("CREATED"))

		// A retry of the same POST, here and on another replica: the first
		// answer, and nothing written, the OutgoingMessage included.
		before := versions(ctx, org)
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "4dd6be9e"}, om)).To(Succeed())
		omVersion := om.ResourceVersion
		again := post(srv, org, key, created)
		Expect(again.code).To(Equal(http.StatusOK))
		Expect(again.raw).To(Equal(first.raw))
		other := serverWithRole(ctx, "webhookserver-replies-2", nil, testOptions())
		Eventually(func(g Gomega) {
			r := post(other, org, key, created)
			g.Expect(r.code).To(Equal(http.StatusOK), r.raw)
			g.Expect(r.raw).To(Equal(first.raw))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		Expect(versions(ctx, org)).To(Equal(before))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "4dd6be9e"}, om)).To(Succeed())
		Expect(om.ResourceVersion).To(Equal(omVersion), "a retry is not counted again")

		// The lab is ready: a second reply to the same message.
		updated := post(srv, org, key, lab("4dd6be9e", "UPDATED", "2020-10-05T08:45:00+00:00", "READY"))
		Expect(updated.code).To(Equal(http.StatusOK), updated.raw)
		Expect(updated.body.ReplyTo).To(Equal(want))
		Expect(operations(updated)).To(HaveKeyWithValue("LabResource/lab-1", "updated"))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "lab-1"}, lr)).To(Succeed())
		Expect(lr.Status.Phase).To(Equal(labhookv1alpha1.PhaseReady))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "4dd6be9e"}, om)).To(Succeed())
		Expect(om.Status.Replies.Count).To(Equal(int32(2)))
		Expect(om.Status.Replies.LastAction).To(Equal("UPDATED"))
		Expect(om.Status.Replies.LastTime.UTC()).To(Equal(time.Date(2020, 10, 5, 8, 45, 0, 0, time.UTC)))
		Expect(om.Status.Replies.Objects).To(ConsistOf(
			labhookv1alpha1.ObjectReference{Kind: "LabResource", Name: "lab-1"},
			labhookv1alpha1.ObjectReference{Kind: "LabInterface", Name: iface("lab-1", "Terminal")}))
		Expect(om.Status.Phase).To(Equal(labhookv1alpha1.MessageDelivered), "the manager's status fields are left alone")
		Expect(om.Status.Attempts).To(Equal(int32(1)))
		Expect(om.Status.Target).To(Equal("demo"))

		// The CREATED retried now, on the replica that answered it: the
		// first answer; on one that never saw it, its objects have moved
		// on: stale. Either way nothing is written or counted.
		before = versions(ctx, org)
		omVersion = om.ResourceVersion
		Expect(post(srv, org, key, created).raw).To(Equal(first.raw))
		late := post(startServer(cfg, testOptions()), org, key, created)
		Expect(late.code).To(Equal(http.StatusOK), late.raw)
		Expect(operations(late)).To(HaveKeyWithValue("LabResource/lab-1", "stale"))
		Expect(versions(ctx, org)).To(Equal(before))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "4dd6be9e"}, om)).To(Succeed())
		Expect(om.ResourceVersion).To(Equal(omVersion))

		// Another body with the same source_message_id, action and
		// timestamp is ambiguous.
		r := post(srv, org, key, lab("4dd6be9e", "UPDATED", "2020-10-05T08:45:00+00:00", "ERROR"))
		Expect(r.code).To(Equal(http.StatusConflict), r.raw)
		Expect(r.body.Error).To(And(ContainSubstring(`"4dd6be9e"`), ContainSubstring("ambiguous")))
		Expect(versions(ctx, org)).To(Equal(before))
	})

	It("answers reply_to null for an id labhook never sent, and never marks another organisation's message", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		other, otherKey := newOrg(ctx)
		enrollment(ctx, org, "e-1")

		r := post(baseURL, org, key, lab("not-ours", "CREATED", "2026-01-01T10:00:00Z", "STARTING"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.raw).To(ContainSubstring(`"reply_to":null`))
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "lab-1"}, lr)).To(Succeed())
		Expect(lr.Annotations).NotTo(HaveKey(labhookv1alpha1.AnnotationReplyTo))

		// The other organisation answers org's message id: for it, that id
		// names nothing.
		r = post(baseURL, other, otherKey, lab("e-1", "CREATED", "2026-01-01T10:00:00Z", "STARTING"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.raw).To(ContainSubstring(`"reply_to":null`))
		om := &labhookv1alpha1.OutgoingMessage{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "e-1"}, om)).To(Succeed())
		Expect(om.Status.Replies).To(BeNil())
	})

	It("knows a lab message by the status.lastMessage of the object it was about", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		other, otherKey := newOrg(ctx)
		Expect(post(baseURL, org, key, lab("first", "CREATED", "2026-01-01T10:00:00Z", "STARTING")).code).To(Equal(http.StatusOK))
		// The manager POSTed RESOURCE RESTARTED about lab-1 at once, with
		// no OutgoingMessage, and recorded it.
		lr := &labhookv1alpha1.LabResource{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "lab-1"}, lr)).To(Succeed())
		lr.Status.LastMessage = &labhookv1alpha1.LastMessage{ID: "lab-1-restarted-1", Type: "RESOURCE", Status: "RESTARTED", Phase: labhookv1alpha1.MessageDelivered}
		Expect(k8sClient.Status().Update(ctx, lr)).To(Succeed())
		// The webhookserver reads from the API server's watch cache: wait
		// until it shows the record (a reply that overtakes the record
		// finds nothing).
		Eventually(func(g Gomega) {
			cached := &labhookv1alpha1.LabResource{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "lab-1"}, cached,
				&client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}})).To(Succeed())
			g.Expect(cached.Status.LastMessage).NotTo(BeNil())
		}).Should(Succeed())

		r := post(baseURL, org, key, lab("lab-1-restarted-1", "UPDATED", "2026-01-01T10:05:00Z", "READY"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.body.ReplyTo).To(Equal(&webhookserver.ReplyTo{MessageID: "lab-1-restarted-1", Type: "RESOURCE", Status: "RESTARTED"}))
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: org, Name: "lab-1"}, lr)).To(Succeed())
		Expect(lr.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationReplyTo, "lab-1-restarted-1"))

		r = post(baseURL, other, otherKey, lab("lab-1-restarted-1", "CREATED", "2026-01-01T10:05:00Z", "READY"))
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.raw).To(ContainSubstring(`"reply_to":null`), "only the organisation's own objects count")

		// A reply about another object (a replacement, lab-2): found
		// through the selectable field with --find-replies-in-namespace,
		// in the organisation's namespace only.
		replacement := []byte(`{"source_message_id":"lab-1-restarted-1","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T10:06:00Z",
		  "data":{"resources":[{"id":"lab-2","type":"VM","status":"STARTING"}]}}`)
		opts := testOptions()
		opts.FindRepliesInNamespace = true
		wide := startServer(cfg, opts)
		r = post(wide, other, otherKey, replacement)
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.raw).To(ContainSubstring(`"reply_to":null`), "the other organisation's namespace has no such message")
		r = post(wide, org, key, replacement)
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.body.ReplyTo).To(Equal(&webhookserver.ReplyTo{MessageID: "lab-1-restarted-1", Type: "RESOURCE", Status: "RESTARTED"}))
		replacement = []byte(strings.NewReplacer("lab-2", "lab-3", "10:06:00Z", "10:07:00Z").Replace(string(replacement)))
		r = post(baseURL, org, key, replacement)
		Expect(r.code).To(Equal(http.StatusOK), r.raw)
		Expect(r.raw).To(ContainSubstring(`"reply_to":null`), "by default only the objects a reply names are searched")
	})
})
