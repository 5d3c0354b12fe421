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
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// validConfig creates a WebhookConfig pointing at url and waits until the
// WebhookConfig controller has tested it and made it valid.
func validConfig(ctx context.Context, ns, name, url string, mutate func(*labhookv1alpha1.WebhookConfig)) *labhookv1alpha1.WebhookConfig {
	whc := &labhookv1alpha1.WebhookConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: labhookv1alpha1.WebhookConfigSpec{URL: url, Default: true}}
	if mutate != nil {
		mutate(whc)
	}
	Expect(k8sClient.Create(ctx, whc)).To(Succeed())
	makeValid(ctx, whc)
	return whc
}

// makeValid waits for the WebhookConfig controller to make whc valid.
var makeValid = func(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) {
	Eventually(func(g Gomega) labhookv1alpha1.WebhookConfigState {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
		return whc.Status.State
	}).Should(Equal(labhookv1alpha1.StateValid))
}

func newMessage(ns, name string, typ labhookv1alpha1.MessageType, status string, ids ...string) *labhookv1alpha1.OutgoingMessage {
	return &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: labhookv1alpha1.OutgoingMessageSpec{Type: typ, Status: status, EntityIDs: ids,
			Context: &apiextensionsv1.JSON{Raw: []byte(`{"b":1,"a":"x"}`)}},
	}
}

func message(ctx context.Context, ns, name string) func() *labhookv1alpha1.OutgoingMessage {
	return func() *labhookv1alpha1.OutgoingMessage {
		om := &labhookv1alpha1.OutgoingMessage{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, om); err != nil {
			return nil
		}
		return om
	}
}

func phaseOf(ctx context.Context, ns, name string) func() labhookv1alpha1.MessagePhase {
	return func() labhookv1alpha1.MessagePhase {
		if om := message(ctx, ns, name)(); om != nil {
			return om.Status.Phase
		}
		return "gone"
	}
}

func readyReason(ctx context.Context, ns, name string) func() string {
	return func() string {
		if om := message(ctx, ns, name)(); om != nil {
			if c := meta.FindStatusCondition(om.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil {
				return c.Reason
			}
		}
		return ""
	}
}

func counterValue(name, label, value string) float64 {
	mfs, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label, value) {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func histogramCount(name string) uint64 {
	mfs, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func gaugeValue(name string) float64 {
	mfs, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

var _ = Describe("OutgoingMessage delivery", func() {
	var (
		ctx  context.Context
		ns   string
		rc   *receiver
		opts = testOptions()
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		rc = newReceiver()
		opts = testOptions()
	})

	It("POSTs the seed body, signed, with exactly one API write per delivered message", func() {
		startManager(ns, opts)
		whc := validConfig(ctx, ns, "backend", rc.URL, nil)

		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &labhookv1alpha1.OutgoingMessageList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		var mu sync.Mutex
		writes := map[string]int{}
		go func() {
			for ev := range w.ResultChan() {
				if om, ok := ev.Object.(*labhookv1alpha1.OutgoingMessage); ok && ev.Type == watch.Modified {
					mu.Lock()
					writes[om.Name]++
					mu.Unlock()
				}
			}
		}()

		before := counterValue("labhook_deliveries_total", "result", "success")
		beforeCount := histogramCount("labhook_delivery_duration_seconds")
		const n = 20
		for i := range n {
			Expect(k8sClient.Create(ctx, newMessage(ns, fmt.Sprintf("msg-%02d", i), "EVENT", "STARTED", fmt.Sprintf("ev-%d", i)))).To(Succeed())
		}
		Eventually(rc.distinctIDs).Should(HaveLen(n), "at least once: every message arrives")
		for i := range n {
			Eventually(phaseOf(ctx, ns, fmt.Sprintf("msg-%02d", i))).Should(Equal(labhookv1alpha1.MessageDelivered))
		}
		Consistently(func() int {
			mu.Lock()
			defer mu.Unlock()
			total := 0
			for _, c := range writes {
				total += c
			}
			return total
		}, "1s").Should(Equal(n), "API writes for %d delivered messages", n)
		GinkgoWriter.Printf("API writes per delivered message: %v\n", writes)

		By("the body is the seed's, byte for byte stable, and verifies with the config's secret")
		d := rc.deliveries()[0]
		om := message(ctx, ns, d.msg.MessageID)()
		Expect(string(d.body)).To(Equal(fmt.Sprintf(
			`{"message_id":%q,"type":"EVENT","status":"STARTED","entity_ids":[%q],"timestamp":%q,"context":{"a":"x","b":1},"callback":%q}`,
			om.Name, om.Spec.EntityIDs[0], wire.FormatTimestamp(om.CreationTimestamp.Time), opts.CallbackURL)))
		Expect(d.header.Get("webhook-id")).To(Equal(om.Name))
		Expect(d.header.Get("User-Agent")).To(Equal("labhook/test"))
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: whc.Status.SecretName}, secret)).To(Succeed())
		Expect(wire.Verify(string(secret.Data[labhookv1alpha1.SecretKeySigning]), d.header, d.body)).To(Succeed())

		By("status tells the story")
		Expect(om.Status.Attempts).To(BeEquivalentTo(1))
		Expect(om.Status.Target).To(Equal("backend"))
		Expect(om.Status.History).To(HaveLen(1))
		Expect(om.Status.DeliveredTime).NotTo(BeNil())
		Expect(counterValue("labhook_deliveries_total", "result", "success") - before).To(BeNumerically(">=", n))
		Expect(histogramCount("labhook_delivery_duration_seconds") - beforeCount).To(BeNumerically(">=", n))
	})

	It("delivers what the lab controllers produce", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		Expect(k8sClient.Create(ctx, vm(ns, "r1", "25f377ac"))).To(Succeed())
		Eventually(func() []string {
			var out []string
			for _, d := range rc.deliveries() {
				out = append(out, d.msg.Type+" "+d.msg.Status)
			}
			return out
		}).Should(Equal([]string{"RESOURCE CREATED"}))
	})

	It("retries on the schedule and honours Retry-After", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		// Each message has its own config: a receiver that answers one
		// message makes everything owed to it due at once (recovery), which
		// would cut the other's schedule short.
		rc2 := newReceiver()
		validConfig(ctx, ns, "other", rc2.URL, func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Default = false })
		respond := func(m wire.OutgoingMessage, seen int, w http.ResponseWriter) {
			switch {
			case m.MessageID == "retry-after" && seen == 0:
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusServiceUnavailable)
			case m.MessageID == "flaky" && seen < 3:
				w.WriteHeader(http.StatusInternalServerError)
			default:
				w.WriteHeader(http.StatusOK)
			}
		}
		rc.setRespond(respond)
		rc2.setRespond(respond)
		Expect(k8sClient.Create(ctx, newMessage(ns, "flaky", "EVENT", "ENDED", "e1"))).To(Succeed())
		ra := newMessage(ns, "retry-after", "EVENT", "ENDED", "e2")
		ra.Spec.WebhookConfigRef = &labhookv1alpha1.LocalObjectReference{Name: "other"}
		Expect(k8sClient.Create(ctx, ra)).To(Succeed())
		Eventually(phaseOf(ctx, ns, "flaky")).Should(Equal(labhookv1alpha1.MessageDelivered))
		Eventually(phaseOf(ctx, ns, "retry-after")).Should(Equal(labhookv1alpha1.MessageDelivered))

		at := func(id string) []time.Time {
			var out []time.Time
			for _, d := range append(rc.deliveries(), rc2.deliveries()...) {
				if d.msg.MessageID == id {
					out = append(out, d.at)
				}
			}
			return out
		}
		flaky := at("flaky")
		Expect(flaky).To(HaveLen(4))
		for i := 1; i < 4; i++ {
			// schedule[i] with -10% jitter at most (status rounds the
			// next attempt time up to the second, so gaps are longer here).
			Expect(flaky[i].Sub(flaky[i-1])).To(BeNumerically(">=", opts.RetrySchedule[i]*9/10), "gap before attempt %d", i+1)
		}
		om := message(ctx, ns, "flaky")()
		Expect(om.Status.Attempts).To(BeEquivalentTo(4))
		Expect(om.Status.History).To(HaveLen(4))
		Expect(om.Status.History[0].HTTPStatus).To(BeEquivalentTo(500))
		Expect(om.Status.History[0].Error).NotTo(BeEmpty())

		raAt := at("retry-after")
		Expect(raAt).To(HaveLen(2))
		Expect(raAt[1].Sub(raAt[0])).To(BeNumerically(">=", 1900*time.Millisecond), "Retry-After: 2 beats the 100ms schedule")
	})

	It("keeps creation order per entity while an earlier message is retried", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		rc.setRespond(func(m wire.OutgoingMessage, seen int, w http.ResponseWriter) {
			if m.MessageID == "a-first" && seen < 3 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		for _, name := range []string{"a-first", "c-second", "b-third"} {
			om := newMessage(ns, name, "EVENT_WORKSPACE", "CREATED", "ws-1")
			om.Annotations = map[string]string{labhookv1alpha1.AnnotationCreatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
			Expect(k8sClient.Create(ctx, om)).To(Succeed())
		}
		Expect(k8sClient.Create(ctx, newMessage(ns, "other", "EVENT_WORKSPACE", "CREATED", "ws-2"))).To(Succeed())
		Eventually(readyReason(ctx, ns, "b-third")).Should(Equal(labhookv1alpha1.ReasonWaitingForEarlier))
		Eventually(phaseOf(ctx, ns, "b-third")).Should(Equal(labhookv1alpha1.MessageDelivered))

		var order []string
		for _, d := range rc.deliveries() {
			order = append(order, d.msg.MessageID)
		}
		Expect(order).To(HaveLen(7), "a-first fails three times")
		Expect(order[4:]).To(Equal([]string{"a-first", "c-second", "b-third"}), "a-first succeeds, then the rest in creation order")
		Expect(order[:4]).To(ContainElement("other"), "another entity is not held up")
	})

	It("fails after retry.maxAttempts with a Warning event, and redelivers on request", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Retry.MaxAttempts = 3 })
		rc.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) })
		Expect(k8sClient.Create(ctx, newMessage(ns, "doomed", "CLASS", "DELETED", "c1"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "doomed")).Should(Equal(labhookv1alpha1.MessageFailed))
		Expect(readyReason(ctx, ns, "doomed")()).To(Equal(labhookv1alpha1.ReasonExhausted))
		Consistently(rc.ids).Should(HaveLen(3), "maxAttempts bounds the attempts: nothing more is sent")
		Eventually(func(g Gomega) []string {
			var evs eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
			var out []string
			for _, e := range evs.Items {
				if e.Regarding.Name == "doomed" {
					out = append(out, e.Type+" "+e.Reason)
				}
			}
			return out
		}).Should(Equal([]string{"Warning " + labhookv1alpha1.ReasonExhausted}))

		rc.setRespond(nil)
		update(ctx, message(ctx, ns, "doomed")(), func(om *labhookv1alpha1.OutgoingMessage) {
			om.Annotations = map[string]string{labhookv1alpha1.AnnotationRedeliverRequestedAt: "2026-01-01T00:00:00Z"}
		})
		Eventually(phaseOf(ctx, ns, "doomed")).Should(Equal(labhookv1alpha1.MessageDelivered))
		om := message(ctx, ns, "doomed")()
		Expect(om.Status.Attempts).To(BeEquivalentTo(1))
		Expect(om.Status.History).To(HaveLen(4))
		Expect(om.Status.LastHandledRedeliverRequest).To(Equal("2026-01-01T00:00:00Z"))
		Expect(len(rc.ids())).To(BeNumerically(">=", 4), "the redelivery arrived, at least once")
	})

	It("fails once the next attempt would be past retry.maxAge", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, func(w *labhookv1alpha1.WebhookConfig) {
			w.Spec.Retry.MaxAge = "2s"
		})
		rc.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		Expect(k8sClient.Create(ctx, newMessage(ns, "old", "EVENT", "EXTENDED", "e1"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "old")).Should(Equal(labhookv1alpha1.MessageFailed))
		om := message(ctx, ns, "old")()
		Expect(om.Status.Attempts).To(BeNumerically("<", 8), "maxAge, not maxAttempts, ended it")
		Expect(om.Status.LastAttempt.Time.Sub(om.Status.History[0].Time.Time)).To(BeNumerically("<=", 2*time.Second))
	})

	It("waits as Pending until a config becomes valid, and respects eventTypes", func() {
		startManager(ns, opts)
		Expect(k8sClient.Create(ctx, newMessage(ns, "early", "ONDEMAND_COURSE", "CREATED", "course-1"))).To(Succeed())
		Eventually(readyReason(ctx, ns, "early")).Should(Equal(labhookv1alpha1.ReasonNoUsableConfig))
		Expect(phaseOf(ctx, ns, "early")()).To(Equal(labhookv1alpha1.MessagePending))
		Consistently(func() []string { return rc.ids() }, "500ms").Should(BeEmpty())

		validConfig(ctx, ns, "backend", rc.URL, func(w *labhookv1alpha1.WebhookConfig) {
			w.Spec.EventTypes = []labhookv1alpha1.MessageType{"ONDEMAND_COURSE", "EVENT"}
		})
		Eventually(phaseOf(ctx, ns, "early")).Should(Equal(labhookv1alpha1.MessageDelivered))

		Expect(k8sClient.Create(ctx, newMessage(ns, "filtered", "CLASS", "CREATED", "class-1"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "filtered")).Should(Equal(labhookv1alpha1.MessageFailed))
		Expect(readyReason(ctx, ns, "filtered")()).To(Equal(labhookv1alpha1.ReasonWebhookConfigFilter))
		Expect(rc.ids()).To(Equal([]string{"early"}))
	})

	It("deletes Delivered messages after the retention, and the oldest beyond the per-namespace cap", func() {
		opts.MessageRetention = 2 * time.Second
		opts.FailedRetention = 2 * time.Second
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, func(w *labhookv1alpha1.WebhookConfig) {
			w.Spec.EventTypes = []labhookv1alpha1.MessageType{"EVENT"}
		})
		Expect(k8sClient.Create(ctx, newMessage(ns, "short-lived", "EVENT", "STARTED", "e1"))).To(Succeed())
		Expect(k8sClient.Create(ctx, newMessage(ns, "filtered", "CLASS", "CREATED", "c1"))).To(Succeed())
		Eventually(phaseOf(ctx, ns, "short-lived")).Should(Equal(labhookv1alpha1.MessageDelivered))
		Eventually(phaseOf(ctx, ns, "filtered")).Should(Equal(labhookv1alpha1.MessageFailed))
		Eventually(phaseOf(ctx, ns, "short-lived")).Should(Equal(labhookv1alpha1.MessagePhase("gone")))
		Eventually(phaseOf(ctx, ns, "filtered")).Should(Equal(labhookv1alpha1.MessagePhase("gone")))
	})

	It("keeps at most --max-retained-messages Delivered messages, the newest", func() {
		opts.MaxRetainedMessages = 3
		opts.MonitorInterval = 200 * time.Millisecond
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		for i := range 6 {
			Expect(k8sClient.Create(ctx, newMessage(ns, fmt.Sprintf("m%d", i), "EVENT", "STARTED", "e1"))).To(Succeed())
		}
		Eventually(rc.distinctIDs).Should(HaveLen(6), "at least once: every message arrives")
		Eventually(func(g Gomega) []string {
			var list labhookv1alpha1.OutgoingMessageList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			var names []string
			for _, m := range list.Items {
				names = append(names, m.Name)
			}
			return names
		}).Should(ConsistOf("m3", "m4", "m5"))
	})

	It("invalidates a valid config after --invalidate-after of failures, and marks a backlog", func() {
		opts.InvalidateAfter = time.Second
		opts.BacklogWarning = 2
		opts.MonitorInterval = 200 * time.Millisecond
		startManager(ns, opts)
		whc := validConfig(ctx, ns, "backend", rc.URL, func(w *labhookv1alpha1.WebhookConfig) { w.Spec.Retry.MaxAttempts = 100 })
		rc.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
		})
		rc.status.Store(http.StatusInternalServerError) // re-tests fail too: the config stays invalid
		for i := range 3 {
			Expect(k8sClient.Create(ctx, newMessage(ns, fmt.Sprintf("m%d", i), "EVENT", "STARTED", fmt.Sprintf("e%d", i)))).To(Succeed())
		}
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			if c := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionBacklogged); c != nil {
				return string(c.Status)
			}
			return ""
		}).Should(Equal("True"))
		Eventually(func(g Gomega) labhookv1alpha1.WebhookConfigState {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			return whc.Status.State
		}).Should(Equal(labhookv1alpha1.StateInvalid))
		Expect(whc.Status.Deliveries).NotTo(BeNil())
		Expect(whc.Status.Deliveries.FailingSince).NotTo(BeNil())
		Expect(whc.Status.Deliveries.LastError).To(ContainSubstring("500"))
		for i := range 3 {
			Expect(phaseOf(ctx, ns, fmt.Sprintf("m%d", i))()).To(Equal(labhookv1alpha1.MessagePending))
		}
		Eventually(func() float64 { return gaugeValue("labhook_messages_pending") }).Should(BeNumerically("==", 3))
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			return whc.Labels[labhookv1alpha1.LabelState]
		}).Should(Equal("invalid"))

		By("the receiver recovering: a re-test passes and the waiting messages go out")
		rc.setRespond(nil)
		rc.status.Store(http.StatusNoContent)
		for i := range 3 {
			Eventually(phaseOf(ctx, ns, fmt.Sprintf("m%d", i))).Should(Equal(labhookv1alpha1.MessageDelivered))
		}
		Eventually(func(g Gomega) *metav1.Time {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			return whc.Status.Deliveries.FailingSince
		}).Should(BeNil())
		Expect(whc.Status.Deliveries.LastSuccessTime).NotTo(BeNil())
		Expect(whc.Status.State).To(Equal(labhookv1alpha1.StateValid))
		Eventually(func(g Gomega) metav1.ConditionStatus {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			return meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionBacklogged).Status
		}).Should(Equal(metav1.ConditionFalse))
	})

	It("loses no message when the manager stops in the middle of delivering", func() {
		opts.MaxConcurrentDeliveries = 16
		stop := startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		// After 100 requests the receiver stops answering until the crash is
		// over, so the manager dies with deliveries in flight: those POSTs
		// arrived, but their outcome was never recorded.
		const n = 300
		var answered atomic.Int32
		release := make(chan struct{})
		rc.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			if answered.Add(1) > 100 {
				<-release
			}
			w.WriteHeader(http.StatusOK)
		})
		for i := range n {
			Expect(k8sClient.Create(ctx, newMessage(ns, fmt.Sprintf("crash-%03d", i), "EVENT", "STARTED", fmt.Sprintf("e%d", i)))).To(Succeed())
		}
		Eventually(func() int { return len(rc.ids()) }).Should(BeNumerically(">", 100))
		stop()
		stoppedAt := len(rc.ids())
		close(release)

		restarted := time.Now()
		startManager(ns, opts)
		Eventually(func() int {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			return len(rc.seen)
		}, "60s").Should(Equal(n), "every message_id arrives at least once")
		for i := range n {
			Eventually(phaseOf(ctx, ns, fmt.Sprintf("crash-%03d", i))).Should(Equal(labhookv1alpha1.MessageDelivered))
		}
		elapsed := time.Since(restarted)
		ds := rc.deliveries()
		firstAfter := ds[stoppedAt].at
		lastAt := ds[len(ds)-1].at
		dups := len(rc.ids()) - n
		GinkgoWriter.Printf("crash test: %d POSTs had arrived at the stop, %d POSTs for %d messages, duplicates: %d; "+
			"the new manager finished in %s, %d POSTs between its first and last in %s\n",
			stoppedAt, len(rc.ids()), n, dups, elapsed.Round(time.Millisecond), len(ds)-stoppedAt, lastAt.Sub(firstAfter).Round(time.Millisecond))
		AddReportEntry("crash duplicates", dups)
	})
})
