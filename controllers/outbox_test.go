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
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/controllers"
)

// gaugeFor reads a gauge's value for one label value, -1 when absent.
func gaugeFor(name, label, value string) float64 {
	mfs, err := metrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label, value) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// labMessages counts the namespace's OutgoingMessages that belong to a lab
// object.
func labMessages(g Gomega, ctx context.Context, ns string) int {
	var list labhookv1alpha1.OutgoingMessageList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.HasLabels{labhookv1alpha1.LabelLabObjectUID})).To(Succeed())
	return len(list.Items)
}

// peak polls f until the test ends and returns its highest value so far.
func peak(f func() int) func() int {
	var mu sync.Mutex
	top := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		for {
			v := f()
			mu.Lock()
			top = max(top, v)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	DeferCleanup(func() { close(stop); <-done })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return top
	}
}

// outage makes rc answer 503 to every message (not to tests) while down.
func outage(rc *receiver) *atomic.Bool {
	var down atomic.Bool
	down.Store(true)
	rc.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return &down
}

func owes(g Gomega, ctx context.Context, lr *labhookv1alpha1.LabResource) bool {
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
	return lr.Status.ObservedGeneration != lr.Generation
}

var _ = Describe("Bounded outbox", func() {
	var (
		ctx  context.Context
		ns   string
		rc   *receiver
		opts controllers.Options
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		rc = newReceiver()
		opts = testOptions()
		opts.ProbeInterval = 300 * time.Millisecond
		opts.MonitorInterval = 200 * time.Millisecond
	})

	It("holds later changes in the object while its message waits, and sends one RESTARTED with the latest time and the last spec", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		down := outage(rc)
		lr := vm(ns, "r1", "c0a1e5")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(func(g Gomega) int { return labMessages(g, ctx, ns) }).Should(Equal(1), "the failed CREATED becomes an OutgoingMessage")

		for i := range 5 {
			update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = fmt.Sprintf("change %d", i) })
		}
		latest := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.RestartRequestedAt = &metav1.Time{Time: time.Now()} })
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.RestartRequestedAt = &latest })
		Consistently(func(g Gomega) int { return labMessages(g, ctx, ns) }, "1s").Should(Equal(1),
			"later changes wait in the object: at most one Pending lab message per entity")
		Expect(owes(Default, ctx, lr)).To(BeTrue())

		down.Store(false)
		Eventually(func(g Gomega) bool { return owes(g, ctx, lr) }).Should(BeFalse())
		Eventually(sent(rc)).Should(Equal([]messageSummary{
			{"RESOURCE", "CREATED", []string{"c0a1e5"}}, {"RESOURCE", "RESTARTED", []string{"c0a1e5"}}}))
		var restarted wire.OutgoingMessage
		for _, d := range rc.deliveries() {
			if d.msg.Status == "RESTARTED" {
				restarted = d.msg
			}
		}
		var c struct {
			Generation int64 `json:"generation"`
			Spec       struct {
				Name               string `json:"name"`
				RestartRequestedAt string `json:"restart_requested_at"`
			} `json:"spec"`
		}
		Expect(json.Unmarshal(restarted.Context, &c)).To(Succeed())
		Expect(c.Spec.Name).To(Equal("change 4"), "the RESTARTED carries the whole, last spec")
		Expect(c.Spec.RestartRequestedAt).To(Equal(wire.FormatTimestamp(latest.Time)), "one RESTARTED, with the latest time")
		Expect(c.Generation).To(Equal(lr.Generation))
		Expect(lr.Status.HandledRestartRequestedAt.Equal(&latest)).To(BeTrue())
	})

	It("never holds more Pending lab messages per config than --max-pending-lab-messages, shows what is owed, and drains promptly once the receiver answers", func() {
		opts.MaxPendingLabMessages = 3
		// Only a probe can bring the messages back soon: their own next
		// attempt is an hour away.
		opts.RetrySchedule = []time.Duration{0, time.Hour}
		startManager(ns, opts)
		whc := validConfig(ctx, ns, "backend", rc.URL, nil)
		down := outage(rc)
		top := peak(func() int { return labMessages(Default, ctx, ns) })
		const n = 8
		lrs := make([]*labhookv1alpha1.LabResource, n)
		for i := range n {
			lrs[i] = vm(ns, fmt.Sprintf("r%d", i), fmt.Sprintf("cap-%d", i))
			Expect(k8sClient.Create(ctx, lrs[i])).To(Succeed())
		}
		Eventually(func(g Gomega) int { return labMessages(g, ctx, ns) }).Should(Equal(3))
		Eventually(func(g Gomega) int32 {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			if whc.Status.Deliveries == nil {
				return -1
			}
			return whc.Status.Deliveries.Owed
		}).Should(BeEquivalentTo(n-3), "3 CREATED wait as OutgoingMessages (recorded in status), 5 are held in their objects")
		Eventually(func() float64 { return gaugeFor("labhook_messages_owed", "namespace", ns) }).Should(BeNumerically("==", n-3))
		probesBefore := len(rc.deliveries())
		time.Sleep(time.Second)
		Expect(len(rc.deliveries())-probesBefore).To(BeNumerically(">=", 2), "a failing config is probed every --probe-interval")
		Expect(labMessages(Default, ctx, ns)).To(Equal(3))

		down.Store(false)
		recovered := time.Now()
		for _, lr := range lrs {
			Eventually(func(g Gomega) bool { return owes(g, ctx, lr) }).WithTimeout(10*time.Second).Should(BeFalse(), lr.Name)
		}
		took := time.Since(recovered)
		Eventually(sent(rc)).Should(HaveLen(n))
		Expect(took).To(BeNumerically("<", 5*time.Second), "everything owed is due at once after recovery, not at the next scheduled attempt")
		Expect(top()).To(Equal(3), "the cap held")
		Eventually(func(g Gomega) int32 {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(whc), whc)).To(Succeed())
			return whc.Status.Deliveries.Owed
		}).Should(BeZero())
		Eventually(func() float64 { return gaugeFor("labhook_messages_owed", "namespace", ns) }).Should(BeNumerically("<=", 0))
		GinkgoWriter.Printf("recovery: %d resources delivered %s after the receiver came back; peak lab OutgoingMessages %d\n", n, took, top())
	})

	It("makes a config invalid with reason EndpointGone at the first 410, once, and sends nothing more until it is re-tested", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		var gone atomic.Bool
		gone.Store(true)
		rc.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			if gone.Load() {
				w.WriteHeader(http.StatusGone)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		Expect(k8sClient.Create(ctx, newMessage(ns, "first", "EVENT", "STARTED", "e1"))).To(Succeed())
		Eventually(stateOf(ctx, ns, "backend")).Should(Equal([]string{"invalid", "False", labhookv1alpha1.ReasonEndpointGone}))
		Eventually(readyReason(ctx, ns, "first")).Should(Equal(labhookv1alpha1.ReasonEndpointGone))
		Expect(phaseOf(ctx, ns, "first")()).To(Equal(labhookv1alpha1.MessagePending))
		Expect(k8sClient.Create(ctx, newMessage(ns, "second", "EVENT", "STARTED", "e2"))).To(Succeed())
		lr := vm(ns, "r1", "90e")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(readyReason(ctx, ns, "second")).Should(Equal(labhookv1alpha1.ReasonEndpointGone))
		lastTest := getWHC(Default, ctx, ns, "backend").Status.LastTest.DeepCopy()
		Consistently(func() int { return len(rc.deliveries()) }, "2s").Should(Equal(1), "nothing more is sent to a gone endpoint")
		Expect(getWHC(Default, ctx, ns, "backend").Status.LastTest).To(Equal(lastTest), "no re-test by backoff (the backoff is 500ms here)")
		Expect(eventsFor(ctx, ns, "backend")(Default)).To(ContainElement("Warning/" + labhookv1alpha1.ReasonEndpointGone))
		n := 0
		for _, e := range eventsFor(ctx, ns, "backend")(Default) {
			if e == "Warning/"+labhookv1alpha1.ReasonEndpointGone {
				n++
			}
		}
		Expect(n).To(Equal(1), "one Warning event")

		By("an explicit test request brings it back")
		gone.Store(false)
		annotate(ctx, ns, "backend", labhookv1alpha1.AnnotationTestRequestedAt, "now")
		Eventually(stateOf(ctx, ns, "backend")).Should(Equal([]string{"valid", "True", labhookv1alpha1.ReasonTestSucceeded}))
		Eventually(phaseOf(ctx, ns, "first")).Should(Equal(labhookv1alpha1.MessageDelivered))
		Eventually(phaseOf(ctx, ns, "second")).Should(Equal(labhookv1alpha1.MessageDelivered))
		Eventually(func(g Gomega) bool { return owes(g, ctx, lr) }).Should(BeFalse())
		Eventually(sent(rc)).Should(ContainElement(messageSummary{"RESOURCE", "CREATED", []string{"90e"}}))
	})

	It("keeps to a config's rate and concurrency, and a 429 with Retry-After slows that config only", func() {
		startManager(ns, opts)
		var inFlight, top, throttledOnce atomic.Int32
		arrivals := map[string][]time.Time{} // by config
		var mu sync.Mutex
		rc.setRespond(func(m wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			cur := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := top.Load(); cur > p && !top.CompareAndSwap(p, cur); p = top.Load() {
			}
			config, _, _ := strings.Cut(m.EntityIDs[0], "-")
			mu.Lock()
			arrivals[config] = append(arrivals[config], time.Now())
			mu.Unlock()
			switch config {
			case "narrow":
				time.Sleep(200 * time.Millisecond)
			case "throttled":
				if throttledOnce.Add(1) == 1 {
					w.Header().Set("Retry-After", "2")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
			}
			w.WriteHeader(http.StatusNoContent)
		})
		cfg := func(name string, mutate func(*labhookv1alpha1.WebhookConfig)) {
			validConfig(ctx, ns, name, rc.URL, func(w *labhookv1alpha1.WebhookConfig) {
				w.Spec.Default = false
				if mutate != nil {
					mutate(w)
				}
			})
		}
		cfg("rated", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.MaxRequestsPerSecond = ptr.To[int32](10) })
		cfg("narrow", func(w *labhookv1alpha1.WebhookConfig) { w.Spec.MaxConcurrentRequests = ptr.To[int32](2) })
		cfg("throttled", nil)
		cfg("free", nil)
		send := func(config string, from, n int) {
			for i := from; i < from+n; i++ {
				// Distinct entities: one entity's messages would go one by one.
				om := newMessage(ns, fmt.Sprintf("%s-%02d", config, i), "EVENT", "STARTED", fmt.Sprintf("%s-%d", config, i))
				om.Spec.WebhookConfigRef = &labhookv1alpha1.LocalObjectReference{Name: config}
				Expect(k8sClient.Create(ctx, om)).To(Succeed())
			}
		}
		at := func(entity string) []time.Time {
			mu.Lock()
			defer mu.Unlock()
			return append([]time.Time(nil), arrivals[entity]...)
		}

		By("429 with Retry-After: 2 pauses that config, not its neighbour")
		send("throttled", 0, 1)
		Eventually(func() int { return len(at("throttled")) }).Should(Equal(1))
		paused := time.Now()
		send("throttled", 1, 1)
		send("free", 0, 10)
		Eventually(func() int { return len(at("free")) }).WithTimeout(2 * time.Second).Should(Equal(10))
		Expect(time.Since(paused)).To(BeNumerically("<", 1500*time.Millisecond))
		Eventually(func() int { return len(at("throttled")) }).Should(Equal(3))
		th := at("throttled")
		Expect(th[1].Sub(th[0])).To(BeNumerically(">=", 1900*time.Millisecond), "the throttled config waited for its Retry-After")
		Expect(th[2].Sub(th[0])).To(BeNumerically(">=", 1900*time.Millisecond))

		By("spec.maxRequestsPerSecond: 10")
		send("rated", 0, 21)
		Eventually(func() int { return len(at("rated")) }).Should(Equal(21))
		r := at("rated")
		Expect(r[20].Sub(r[0])).To(BeNumerically(">=", 1900*time.Millisecond), "21 requests at 10/s take 2s")

		By("spec.maxConcurrentRequests: 2")
		top.Store(0)
		send("narrow", 0, 10)
		Eventually(func() int { return len(at("narrow")) }).Should(Equal(10))
		Expect(top.Load()).To(BeEquivalentTo(2))
	})

	It("keeps one organisation's slow receiver from delaying another organisation", func() {
		nsB := newNamespace(ctx)
		// A small pool: a's 40 slow messages alone could fill it twice.
		opts.MaxConcurrentDeliveries, opts.MaxConcurrentDeliveriesPerOrganisation, opts.MaxConcurrentRequestsPerConfig = 16, 8, 8
		startManagerFor([]string{ns, nsB}, opts)
		slow := rc
		slow.setRespond(func(_ wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			time.Sleep(5 * time.Second)
			w.WriteHeader(http.StatusNoContent)
		})
		fast := newReceiver()
		validConfig(ctx, ns, "backend", slow.URL, nil)
		validConfig(ctx, nsB, "backend", fast.URL, nil)
		for i := range 40 {
			Expect(k8sClient.Create(ctx, newMessage(ns, fmt.Sprintf("a-%02d", i), "EVENT", "STARTED", fmt.Sprintf("a%d", i)))).To(Succeed())
		}
		Eventually(func() int { return len(slow.deliveries()) }).Should(Equal(8))
		start := time.Now()
		for i := range 10 {
			Expect(k8sClient.Create(ctx, vm(nsB, fmt.Sprintf("b-%02d", i), fmt.Sprintf("b%d", i)))).To(Succeed())
			Expect(k8sClient.Create(ctx, newMessage(nsB, fmt.Sprintf("b-%02d", i), "EVENT", "STARTED", fmt.Sprintf("b%d", i)))).To(Succeed())
		}
		Eventually(func() int { return len(fast.deliveries()) }).WithTimeout(3 * time.Second).Should(Equal(20))
		took := time.Since(start)
		Expect(len(slow.deliveries())).To(Equal(8), "organisation a has at most its share of the pool in flight")
		GinkgoWriter.Printf("fairness: organisation b's 20 messages took %s while a's receiver answers in 5s\n", took)
	})

	It("orders messages by type, config and entity: same-named interfaces of two resources do not wait for each other", func() {
		startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
		var failing atomic.Bool
		failing.Store(true)
		rc.setRespond(func(m wire.OutgoingMessage, _ int, w http.ResponseWriter) {
			if failing.Load() && m.EntityIDs[0] == "res-a" {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		create := func(name string, typ labhookv1alpha1.MessageType, status string, ids ...string) {
			om := newMessage(ns, name, typ, status, ids...)
			om.Annotations = map[string]string{labhookv1alpha1.AnnotationCreatedAt: time.Now().UTC().Format(time.RFC3339Nano)}
			Expect(k8sClient.Create(ctx, om)).To(Succeed())
		}
		create("iface-a", "INTERFACE", "CREATED", "res-a", "Terminal")
		Eventually(readyReason(ctx, ns, "iface-a")).Should(Equal(labhookv1alpha1.ReasonRetrying))
		create("iface-b", "INTERFACE", "CREATED", "res-b", "Terminal")
		create("event-terminal", "EVENT", "STARTED", "Terminal")
		create("res-a-updated", "RESOURCE", "UPDATED", "res-a")
		Eventually(phaseOf(ctx, ns, "iface-b")).Should(Equal(labhookv1alpha1.MessageDelivered),
			"another resource's interface of the same name does not wait")
		Eventually(phaseOf(ctx, ns, "event-terminal")).Should(Equal(labhookv1alpha1.MessageDelivered),
			"an EVENT whose id is an interface's name does not wait")
		Eventually(readyReason(ctx, ns, "res-a-updated")).Should(Equal(labhookv1alpha1.ReasonWaitingForEarlier),
			"a resource and its interfaces keep one order")
		failing.Store(false)
		Eventually(phaseOf(ctx, ns, "res-a-updated")).Should(Equal(labhookv1alpha1.MessageDelivered))
		var order []string
		for _, id := range rc.ids() {
			if id == "iface-a" || id == "res-a-updated" {
				order = append(order, id)
			}
		}
		Expect(order[len(order)-2:]).To(Equal([]string{"iface-a", "res-a-updated"}))
	})

	It("hands what waits for the namespace default to the next default when the older one is deleted", func() {
		startManager(ns, opts)
		older := &labhookv1alpha1.WebhookConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "older"},
			Spec: labhookv1alpha1.WebhookConfigSpec{URL: rc.URL, Default: true, Deactivated: true}}
		Expect(k8sClient.Create(ctx, older)).To(Succeed())
		Eventually(stateOf(ctx, ns, "older")).Should(HaveExactElements("deactivated", "False", labhookv1alpha1.ReasonDeactivated))
		time.Sleep(1100 * time.Millisecond) // creationTimestamp has second precision: newer must be younger
		validConfig(ctx, ns, "newer", rc.URL, nil)
		Expect(k8sClient.Create(ctx, newMessage(ns, "waits", "EVENT", "STARTED", "e1"))).To(Succeed())
		lr := vm(ns, "r1", "def")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(readyReason(ctx, ns, "waits")).Should(Equal(labhookv1alpha1.ReasonNoUsableConfig))
		Consistently(func() []string { return rc.ids() }, "500ms").Should(BeEmpty())

		Expect(k8sClient.Delete(ctx, older)).To(Succeed())
		Eventually(phaseOf(ctx, ns, "waits")).Should(Equal(labhookv1alpha1.MessageDelivered))
		Eventually(func(g Gomega) bool { return owes(g, ctx, lr) }).Should(BeFalse())
		Eventually(sent(rc)).Should(ContainElement(messageSummary{"RESOURCE", "CREATED", []string{"def"}}))
	})

	It("lets a ResourceQuota on count/outgoingmessages.labhook.io refuse a producer with an error that names it", func() {
		quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "outbox"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/outgoingmessages.labhook.io": resource.MustParse("2")}}}
		Expect(k8sClient.Create(ctx, quota)).To(Succeed())
		// envtest runs no quota controller: publish the quota's status as it would.
		quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard,
			Used: corev1.ResourceList{"count/outgoingmessages.labhook.io": resource.MustParse("0")}}
		Expect(k8sClient.Status().Update(ctx, quota)).To(Succeed())
		// The quota admission plugin sees a new quota through its own
		// informer: create until it refuses (two fit, then the third).
		var err error
		n := 0
		Eventually(func() error {
			n++
			err = k8sClient.Create(ctx, newMessage(ns, fmt.Sprintf("m-%d", n), "CLASS", "CREATED", fmt.Sprintf("c%d", n)))
			return err
		}).Should(HaveOccurred())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(And(ContainSubstring("exceeded quota: outbox"), ContainSubstring("count/outgoingmessages.labhook.io")))
		GinkgoWriter.Printf("a producer past the quota gets: %v\n", err)
	})
})
