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

package plugin_test

import (
	"context"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// inBackground runs the command in a goroutine; the channel gets its result.
func inBackground(ctx context.Context, args ...string) <-chan result {
	done := make(chan result, 1)
	go func() {
		defer GinkgoRecover()
		done <- kubectl(ctx, args...)
	}()
	return done
}

// requested waits for the command to set annotation on the WebhookConfig
// and returns its value.
func requested(ctx context.Context, ns, name, annotation string) string {
	var v string
	Eventually(func(g Gomega) {
		v = getWHC(ctx, ns, name).Annotations[annotation]
		g.Expect(v).NotTo(BeEmpty())
	}).Should(Succeed())
	return v
}

var _ = Describe("test", func() {
	It("requests a test, waits until the manager handled that request, and prints the outcome", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		done := inBackground(ctx, "test", "whc/main", "-n", org, "--wait")
		req := requested(ctx, org, "main", labhookv1alpha1.AnnotationTestRequestedAt)

		By("a status write for an earlier request does not end the wait")
		setWHCStatus(ctx, org, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State, st.LastHandledTestRequest = labhookv1alpha1.StateInvalid, "an-earlier-request"
		})
		Consistently(done).ShouldNot(Receive())

		By("the manager handles the request")
		setWHCStatus(ctx, org, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State, st.LastHandledTestRequest = labhookv1alpha1.StateValid, req
			st.LastTest = &labhookv1alpha1.WebhookConfigTest{Time: metav1.Now(), MessageID: "test-1", HTTPStatus: 204,
				Duration: metav1.Duration{Duration: 12 * time.Millisecond}}
			st.Conditions = condition(metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, "the receiver answered 204")
		})
		var r result
		Eventually(done).Should(Receive(&r))
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(Equal("webhookconfig/main: valid (TestSucceeded)\n  test message test-1: HTTP 204 in 12ms\n"))
	})

	It("exits non-zero with the reason when the test fails", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		done := inBackground(ctx, "test", "webhookconfig/main", "-n", org, "--wait", "-o", "json")
		req := requested(ctx, org, "main", labhookv1alpha1.AnnotationTestRequestedAt)
		setWHCStatus(ctx, org, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State, st.LastHandledTestRequest = labhookv1alpha1.StateInvalid, req
			st.LastTest = &labhookv1alpha1.WebhookConfigTest{Time: metav1.Now(), MessageID: "test-2", HTTPStatus: 500}
			st.Conditions = condition(metav1.ConditionFalse, labhookv1alpha1.ReasonHTTPStatus, "the receiver answered 500")
		})
		var r result
		Eventually(done).Should(Receive(&r))
		Expect(r.err).To(MatchError("webhookconfig/main is invalid"))
		var out struct {
			Handled bool   `json:"handled"`
			State   string `json:"state"`
			Reason  string `json:"reason"`
		}
		Expect(json.Unmarshal([]byte(r.out), &out)).To(Succeed())
		Expect(out.Handled).To(BeTrue())
		Expect(out.State).To(Equal("invalid"))
		Expect(out.Reason).To(Equal("HTTPStatus"))
	})

	It("says when nobody handled the request in time", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		r := kubectl(ctx, "test", "whc/main", "-n", org, "--wait", "--timeout", "1s")
		Expect(r.err).To(MatchError(ContainSubstring("webhookconfig/main: the test was not handled within 1s (is the labhook manager running?")))
		Expect(getWHC(ctx, org, "main").Annotations).To(HaveKey(labhookv1alpha1.AnnotationTestRequestedAt))
	})

	It("only requests, without --wait", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		r := kubectl(ctx, "test", "whc/main", "-n", org)
		Expect(r.err).NotTo(HaveOccurred())
		v := getWHC(ctx, org, "main").Annotations[labhookv1alpha1.AnnotationTestRequestedAt]
		Expect(r.out).To(Equal("webhookconfig/main test requested (labhook.io/test-requested-at=" + v + ")\n"))

		By("a second request is a new value")
		Expect(kubectl(ctx, "test", "whc/main", "-n", org).err).NotTo(HaveOccurred())
		Expect(getWHC(ctx, org, "main").Annotations[labhookv1alpha1.AnnotationTestRequestedAt]).NotTo(Equal(v))
	})

	It("refuses to test a deactivated config, and changes nothing", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "off", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Deactivated = true })
		r := kubectl(ctx, "test", "whc/off", "-n", org, "--wait")
		Expect(r.err).To(MatchError(ContainSubstring("webhookconfig/off in " + org + " is deactivated (spec.deactivated: true)")))
		Expect(getWHC(ctx, org, "off").Annotations).NotTo(HaveKey(labhookv1alpha1.AnnotationTestRequestedAt))
	})

	DescribeTable("reads the config's name as kubectl does",
		func(ctx SpecContext, arg, wantErr string) {
			org := newOrg(ctx)
			createWHC(ctx, org, "main", nil)
			r := kubectl(ctx, "rotate", arg, "-n", org, "--wait=false")
			if wantErr == "" {
				Expect(r.err).NotTo(HaveOccurred())
				Expect(getWHC(ctx, org, "main").Annotations).To(HaveKey(labhookv1alpha1.AnnotationRotateSecretRequestedAt))
				return
			}
			Expect(r.err).To(MatchError(ContainSubstring(wantErr)))
			Expect(getWHC(ctx, org, "main").Annotations).NotTo(HaveKey(labhookv1alpha1.AnnotationRotateSecretRequestedAt))
		},
		Entry("short name", "whc/main", ""),
		Entry("plural with group", "webhookconfigs.labhook.io/main", ""),
		Entry("bare name", "main", ""),
		Entry("another kind", "om/main", `"om/main": expected whc/NAME (kind WebhookConfig)`),
		Entry("an invalid name", "whc/Main_1", `"whc/Main_1": WebhookConfig name "Main_1" is invalid`),
		Entry("a config that does not exist", "whc/other", `webhookconfig/other in org-`),
	)
})

var _ = Describe("rotate", func() {
	It("requests a rotation and prints when the previous secret stops signing", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		done := inBackground(ctx, "rotate", "whc/main", "-n", org)
		req := requested(ctx, org, "main", labhookv1alpha1.AnnotationRotateSecretRequestedAt)
		expires := metav1.NewTime(time.Now().Add(24 * time.Hour).Truncate(time.Second))
		setWHCStatus(ctx, org, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.LastHandledRotateRequest, st.SecretName = req, "main-signing"
			st.Rotation = &labhookv1alpha1.SecretRotation{RotatedTime: metav1.Now(), PreviousExpiresAt: expires}
		})
		var r result
		Eventually(done).Should(Receive(&r))
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring("webhookconfig/main: signing secret rotated (Secret main-signing)\n"))
		Expect(r.out).To(ContainSubstring("the previous secret also signs until " + expires.UTC().Format(time.RFC3339) + " (in 23h"))
	})

	It("exits non-zero with labhook's directions when the secret is the user's own", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "own", func(w *labhookv1alpha1.WebhookConfig) {
			w.Spec.SecretRef = &labhookv1alpha1.LocalObjectReference{Name: "my-secret"}
		})
		done := inBackground(ctx, "rotate", "whc/own", "-n", org, "-o", "yaml")
		req := requested(ctx, org, "own", labhookv1alpha1.AnnotationRotateSecretRequestedAt)
		setWHCStatus(ctx, org, "own", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.LastHandledRotateRequest = req
			st.Conditions = []metav1.Condition{{Type: labhookv1alpha1.ConditionSecretRotation, Status: metav1.ConditionFalse,
				Reason: labhookv1alpha1.ReasonRotationRefused, Message: "not rotated: spec.secretRef names Secret my-secret, which you own",
				LastTransitionTime: metav1.Now()}}
		})
		var r result
		Eventually(done).Should(Receive(&r))
		Expect(r.err).To(MatchError("webhookconfig/own: rotation refused"))
		Expect(r.out).To(ContainSubstring("refused: 'not rotated: spec.secretRef names Secret my-secret, which you own'"))
	})
})

var _ = Describe("redeliver", func() {
	failedAt := func(target string, at time.Duration) labhookv1alpha1.OutgoingMessageStatus {
		return labhookv1alpha1.OutgoingMessageStatus{Phase: labhookv1alpha1.MessageFailed, Target: target, Attempts: 8,
			LastAttempt: &labhookv1alpha1.DeliveryAttempt{Time: ago(at), HTTPStatus: 500},
			Conditions:  condition(metav1.ConditionFalse, labhookv1alpha1.ReasonExhausted, "8 attempts failed")}
	}
	redeliverRequested := func(ctx context.Context, ns, name string) bool {
		_, ok := getOM(ctx, ns, name).Annotations[labhookv1alpha1.AnnotationRedeliverRequestedAt]
		return ok
	}

	It("sends one Failed message again", func(ctx SpecContext) {
		org := newOrg(ctx)
		createOM(ctx, org, "m1", failedAt("main", time.Hour))
		r := kubectl(ctx, "redeliver", "om/m1", "-n", org)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`%s\s+m1\s+EVENT\s+STARTED\s+Failed\s+main\s+60m ago\s+HTTP 500`, org))
		Expect(r.out).To(ContainSubstring("1 message(s) redelivery requested."))
		Expect(redeliverRequested(ctx, org, "m1")).To(BeTrue())
	})

	It("refuses a Pending message, which is being delivered already", func(ctx SpecContext) {
		org := newOrg(ctx)
		createOM(ctx, org, "p1", labhookv1alpha1.OutgoingMessageStatus{Phase: labhookv1alpha1.MessagePending})
		r := kubectl(ctx, "redeliver", "outgoingmessage/p1", "-n", org)
		Expect(r.err).To(MatchError("outgoingmessage/p1 is Pending: it is being delivered already; redeliver sends Delivered or Failed messages again"))
		Expect(redeliverRequested(ctx, org, "p1")).To(BeFalse())
	})

	It("with --failed takes the Failed messages of the scope, for one config and recent ones only when asked", func(ctx SpecContext) {
		a, b := newOrg(ctx), newOrg(ctx)
		createOM(ctx, a, "recent-main", failedAt("main", 10*time.Minute))
		createOM(ctx, a, "recent-other", failedAt("other", 10*time.Minute))
		createOM(ctx, a, "old-main", failedAt("main", 3*time.Hour))
		createOM(ctx, a, "delivered-main", labhookv1alpha1.OutgoingMessageStatus{Phase: labhookv1alpha1.MessageDelivered, Target: "main"})
		createOM(ctx, b, "recent-main", failedAt("main", 10*time.Minute))

		By("--dry-run changes nothing")
		r := kubectl(ctx, "redeliver", "--failed", "-n", a, "--config", "main", "--since", "1h", "--dry-run")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring("1 message(s) would be redelivered (dry run)."))
		Expect(redeliverRequested(ctx, a, "recent-main")).To(BeFalse())

		r = kubectl(ctx, "redeliver", "--failed", "-n", a, "--config", "main", "--since", "1h", "-o", "json")
		Expect(r.err).NotTo(HaveOccurred())
		var res struct {
			Messages []struct{ Name, Namespace string } `json:"messages"`
		}
		Expect(json.Unmarshal([]byte(r.out), &res)).To(Succeed())
		Expect(res.Messages).To(HaveLen(1))
		Expect(res.Messages[0].Name).To(Equal("recent-main"))
		Expect(res.Messages[0].Namespace).To(Equal(a))
		Expect(redeliverRequested(ctx, a, "recent-main")).To(BeTrue())
		for _, n := range []string{"recent-other", "old-main", "delivered-main"} {
			Expect(redeliverRequested(ctx, a, n)).To(BeFalse(), n)
		}
		Expect(redeliverRequested(ctx, b, "recent-main")).To(BeFalse(), "another organisation")

		By("-A reaches every organisation")
		Expect(kubectl(ctx, "redeliver", "--failed", "-A", "--config", "main").err).NotTo(HaveOccurred())
		Expect(redeliverRequested(ctx, b, "recent-main")).To(BeTrue())
		Expect(redeliverRequested(ctx, a, "old-main")).To(BeTrue())
		Expect(redeliverRequested(ctx, a, "recent-other")).To(BeFalse())
	})

	DescribeTable("refuses contradictory requests",
		func(ctx SpecContext, args []string, wantErr string) {
			Expect(kubectl(ctx, append([]string{"redeliver", "-n", "default"}, args...)...).err).To(MatchError(wantErr))
		},
		Entry("nothing named", nil, "name a message (om/NAME) or use --failed"),
		Entry("a name and --failed", []string{"om/x", "--failed"}, "name one message (om/NAME) or use --failed, not both"),
		Entry("a name and --config", []string{"om/x", "--config", "main"}, "name one message (om/NAME) or use --failed, not both"),
		Entry("a negative --since", []string{"--failed", "--since", "-1h"}, "--since -1h0m0s: must be positive"),
		Entry("a WebhookConfig", []string{"whc/x"}, `"whc/x": expected om/NAME (kind OutgoingMessage)`),
	)
})
