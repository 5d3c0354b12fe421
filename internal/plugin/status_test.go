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
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// statusJSON is the part of `status -o json` the tests read.
type statusJSON struct {
	Organisations []struct {
		Organisation   string   `json:"organisation"`
		Problems       []string `json:"problems"`
		WebhookConfigs []struct {
			Name       string `json:"name"`
			Default    bool   `json:"default"`
			State      string `json:"state"`
			Reason     string `json:"reason"`
			Pending    int    `json:"pending"`
			Owed       int    `json:"owed"`
			Backlogged bool   `json:"backlogged"`
		} `json:"webhookConfigs"`
		Messages struct {
			Pending         int            `json:"pending"`
			Failed          int            `json:"failed"`
			Delivered       int            `json:"delivered"`
			PendingByReason map[string]int `json:"pendingByReason"`
			NewestFailed    *struct {
				Name string `json:"name"`
			} `json:"newestFailed"`
		} `json:"outgoingMessages"`
		LabObjects struct {
			LabResources int `json:"labResources"`
			Owed         int `json:"owed"`
		} `json:"labObjects"`
		LastDelivery *metav1.Time `json:"lastDelivery"`
	} `json:"organisations"`
}

func statusOf(ctx context.Context, args ...string) statusJSON {
	r := kubectl(ctx, append([]string{"status", "-o", "json"}, args...)...)
	Expect(r.err).NotTo(HaveOccurred(), r.errOut)
	var s statusJSON
	Expect(json.Unmarshal([]byte(r.out), &s)).To(Succeed(), r.out)
	return s
}

var _ = Describe("status", func() {
	It("says an organisation with nothing configured has no WebhookConfig", func(ctx SpecContext) {
		org := newOrg(ctx)
		r := kubectl(ctx, "status", "-n", org)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring("Organisation " + org + ": 1 problem"))
		Expect(r.out).To(ContainSubstring("no WebhookConfig: nothing is delivered for this organisation"))
		Expect(r.out).To(ContainSubstring("0 Pending, 0 Failed, 0 Delivered"))
	})

	It("answers why an organisation's messages stopped: an invalid default config, Failed and waiting messages, owed objects", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		setWHCStatus(ctx, org, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateInvalid
			next := metav1.NewTime(time.Now().Add(4 * time.Minute))
			st.NextTestTime = &next
			st.LastTest = &labhookv1alpha1.WebhookConfigTest{Time: ago(time.Minute), MessageID: "t1", HTTPStatus: 503}
			st.Deliveries = &labhookv1alpha1.DeliveryStats{Pending: 2, Owed: 1, ConsecutiveFailures: 9,
				LastSuccessTime: ptr(ago(3 * time.Hour)), LastFailureTime: ptr(ago(time.Minute)), LastError: "HTTP 503"}
			st.Conditions = append(condition(metav1.ConditionFalse, labhookv1alpha1.ReasonHTTPStatus, "test message answered HTTP 503"),
				metav1.Condition{Type: labhookv1alpha1.ConditionBacklogged, Status: metav1.ConditionTrue,
					Reason: labhookv1alpha1.ReasonBacklogged, Message: "12000 Pending messages, warning at 10000", LastTransitionTime: metav1.Now()})
		})
		createOM(ctx, org, "failed-1", labhookv1alpha1.OutgoingMessageStatus{
			Phase: labhookv1alpha1.MessageFailed, Target: "main", Attempts: 8,
			LastAttempt: &labhookv1alpha1.DeliveryAttempt{Time: ago(2 * time.Hour), HTTPStatus: 500, Error: "HTTP 500"},
			Conditions:  condition(metav1.ConditionFalse, labhookv1alpha1.ReasonExhausted, "8 attempts failed"),
		})
		createOM(ctx, org, "waiting-1", labhookv1alpha1.OutgoingMessageStatus{
			Phase:      labhookv1alpha1.MessagePending,
			Conditions: condition(metav1.ConditionFalse, labhookv1alpha1.ReasonNoUsableConfig, "webhookconfig main is invalid"),
		})
		createOM(ctx, org, "retrying-1", labhookv1alpha1.OutgoingMessageStatus{
			Phase: labhookv1alpha1.MessagePending, Target: "main", Attempts: 2,
			Conditions: condition(metav1.ConditionFalse, labhookv1alpha1.ReasonRetrying, "HTTP 503"),
		})
		delivered := metav1.NewTime(time.Now().Add(-30 * time.Minute).Truncate(time.Second))
		createOM(ctx, org, "delivered-1", labhookv1alpha1.OutgoingMessageStatus{
			Phase: labhookv1alpha1.MessageDelivered, Target: "main", Attempts: 1, DeliveredTime: &delivered,
			Conditions: condition(metav1.ConditionTrue, labhookv1alpha1.ReasonDelivered, "delivered"),
		})
		// A LabResource whose status is behind its spec owes a message.
		lr := &labhookv1alpha1.LabResource{
			ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: "25f377ac"},
			Spec:       labhookv1alpha1.LabResourceSpec{ID: "25f377ac", Type: "VM", Name: "server"},
		}
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())

		r := kubectl(ctx, "status", "-n", org)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring("Organisation " + org + ": 5 problems"))
		Expect(r.out).To(MatchRegexp(`! WebhookConfig main \(default\) is invalid \(HTTPStatus\): test message answered HTTP 503; next automatic test in [\dms]+; once the receiver is fixed: kubectl labhook test whc/main -n %s --wait`, org))
		Expect(r.out).To(ContainSubstring("! WebhookConfig main (default): Backlogged: 12000 Pending messages, warning at 10000"))
		Expect(r.out).To(ContainSubstring("! 1 OutgoingMessage(s) wait for a usable WebhookConfig (oldest waiting-1: webhookconfig main is invalid)"))
		Expect(r.out).To(ContainSubstring("! 1 OutgoingMessage(s) Failed, their retries exhausted (newest failed-1, EVENT STARTED to main: HTTP 500); once the receiver is fixed: kubectl labhook redeliver --failed -n " + org))
		Expect(r.out).To(ContainSubstring("! 1 lab object(s) owe a message"))
		Expect(r.out).To(MatchRegexp(`main\s+yes\s+invalid\s+False\s+HTTPStatus\s+3h ago\s+\d+s ago\s+9\s+2\s+1\s+yes\s+https://receiver.example.com/main`))
		Expect(r.out).To(ContainSubstring("2 Pending (NoUsableWebhookConfig 1, Retrying 1), 1 Failed, 1 Delivered"))
		Expect(r.out).To(ContainSubstring("1 LabResources, 0 LabInterfaces, 1 owe a message"))
		Expect(r.out).To(MatchRegexp(`LAST DELIVERY\s+3\dm ago`))

		s := statusOf(ctx, "-n", org)
		Expect(s.Organisations).To(HaveLen(1))
		o := s.Organisations[0]
		Expect(o.Organisation).To(Equal(org))
		Expect(o.Problems).To(HaveLen(5))
		Expect(o.WebhookConfigs).To(HaveLen(1))
		Expect(o.WebhookConfigs[0].State).To(Equal("invalid"))
		Expect(o.WebhookConfigs[0].Backlogged).To(BeTrue())
		Expect(o.Messages.Pending).To(Equal(2))
		Expect(o.Messages.Failed).To(Equal(1))
		Expect(o.Messages.PendingByReason).To(Equal(map[string]int{"NoUsableWebhookConfig": 1, "Retrying": 1}))
		Expect(o.Messages.NewestFailed.Name).To(Equal("failed-1"))
		Expect(o.LabObjects.LabResources).To(Equal(1))
		Expect(o.LabObjects.Owed).To(Equal(1))
		Expect(o.LastDelivery.Time).To(BeTemporally("==", delivered.Time))

		y := kubectl(ctx, "status", "-n", org, "-o", "yaml")
		Expect(y.err).NotTo(HaveOccurred())
		var fromYAML statusJSON
		Expect(yaml.Unmarshal([]byte(y.out), &fromYAML)).To(Succeed())
		Expect(fromYAML.Organisations[0].Problems).To(Equal(o.Problems))
	})

	It("names the problems of each kind of config state", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "gone", nil)
		setWHCStatus(ctx, org, "gone", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateInvalid
			st.Conditions = condition(metav1.ConditionFalse, labhookv1alpha1.ReasonEndpointGone, "the receiver answered 410 Gone")
		})
		createWHC(ctx, org, "off", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Default, w.Spec.Deactivated = false, true })
		setWHCStatus(ctx, org, "off", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateDeactivated
			st.Conditions = condition(metav1.ConditionFalse, labhookv1alpha1.ReasonDeactivated, "deactivated")
		})
		createWHC(ctx, org, "flaky", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Default = false })
		setWHCStatus(ctx, org, "flaky", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateValid
			st.Deliveries = &labhookv1alpha1.DeliveryStats{ConsecutiveFailures: 3, LastFailureTime: ptr(ago(time.Minute)), LastError: "timeout"}
			st.Conditions = condition(metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, "valid")
		})
		createWHC(ctx, org, "second", nil) // a second default: conflict
		setWHCStatus(ctx, org, "second", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateNew
			st.Conditions = []metav1.Condition{{Type: labhookv1alpha1.ConditionDefaultConflict, Status: metav1.ConditionTrue,
				Reason: labhookv1alpha1.ReasonDefaultConflict, Message: "WebhookConfig gone is older and is the namespace default",
				LastTransitionTime: metav1.Now()}}
		})

		s := statusOf(ctx, "-n", org)
		o := s.Organisations[0]
		Expect(o.WebhookConfigs[0].Name).To(Equal("gone"), "the default is listed first")
		Expect(o.WebhookConfigs[0].Default).To(BeTrue())
		Expect(o.Problems).To(ConsistOf(
			"WebhookConfig gone (default) is invalid: the receiver answered 410 Gone, so nothing is sent to it until spec.url changes or it is re-tested: kubectl labhook test whc/gone -n "+org+" --wait",
			MatchRegexp(`^WebhookConfig flaky: deliveries failing \(3 in a row, last 6\ds ago: timeout\); it becomes invalid if this lasts --invalidate-after$`),
			"WebhookConfig off is deactivated (spec.deactivated: true): nothing is delivered to it",
			"WebhookConfig second is new: waiting for its test message to be answered",
			"WebhookConfig second: DefaultConflict: WebhookConfig gone is older and is the namespace default",
		))
	})

	It("with -A lists every organisation, then the problems of those that have any", func(ctx SpecContext) {
		healthy, broken := newOrg(ctx), newOrg(ctx)
		createWHC(ctx, healthy, "main", nil)
		setWHCStatus(ctx, healthy, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateValid
			st.Conditions = condition(metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, "valid")
			st.Deliveries = &labhookv1alpha1.DeliveryStats{LastSuccessTime: ptr(ago(2 * time.Minute))}
		})
		createWHC(ctx, broken, "main", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Default = false })
		setWHCStatus(ctx, broken, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateValid
			st.Conditions = condition(metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, "valid")
		})

		r := kubectl(ctx, "status", "-A")
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(MatchRegexp(`ORGANISATION\s+CONFIGS\s+VALID\s+PENDING\s+FAILED\s+OWED\s+LAST DELIVERY\s+STATUS`))
		Expect(r.out).To(MatchRegexp(`(?m)^%s\s+1\s+1\s+0\s+0\s+0\s+2m(\d+s)? ago\s+ok$`, healthy))
		Expect(r.out).To(MatchRegexp(`(?m)^%s\s+1\s+1\s+0\s+0\s+0\s+never\s+1 problem$`, broken))
		Expect(r.out).To(ContainSubstring(fmt.Sprintf("\n%s:\n  ! no default WebhookConfig", broken)))
		Expect(r.out).NotTo(ContainSubstring(healthy + ":\n"))

		s := statusOf(ctx, "-A")
		var names []string
		for _, o := range s.Organisations {
			names = append(names, o.Organisation)
		}
		Expect(names).To(ContainElements(healthy, broken))
	})

	It("prints no terminal control characters a receiver's answer may carry", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "main", nil)
		setWHCStatus(ctx, org, "main", func(st *labhookv1alpha1.WebhookConfigStatus) {
			st.State = labhookv1alpha1.StateValid
			st.Conditions = condition(metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, "valid")
			st.Deliveries = &labhookv1alpha1.DeliveryStats{ConsecutiveFailures: 1, LastFailureTime: ptr(ago(time.Minute)),
				LastError: "HTTP 500: \x1b[2J\x1b]0;owned\x07\r\n  ! all is well\tok \u202egnp.exe"}
		})
		r := kubectl(ctx, "status", "-n", org)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).NotTo(ContainSubstring("\x1b"))
		Expect(r.out).NotTo(ContainSubstring("\r"))
		Expect(r.out).NotTo(ContainSubstring("\u202e"))
		Expect(r.out).NotTo(MatchRegexp(`(?m)^  ! all is well`), "no forged line")
		Expect(r.out).To(ContainSubstring("HTTP 500: ?[2J?]0;owned???  ! all is well?ok ?gnp.exe"))

		By("JSON keeps the text, escaped")
		s := statusOf(ctx, "-n", org)
		Expect(s.Organisations[0].Problems[0]).To(ContainSubstring("\x1b[2J"))
	})

	It("refuses an unknown output format before reading anything", func(ctx SpecContext) {
		r := kubectl(ctx, "status", "-n", "default", "-o", "wide")
		Expect(r.err).To(MatchError(`--output "wide": must be json or yaml (or unset for a table)`))
	})
})

func ptr[T any](v T) *T { return &v }
