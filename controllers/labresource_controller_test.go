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
	"sort"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/controllers"
	"github.com/labhook/labhook/internal/echo"
)

// messageSummary is what a test asserts about a produced OutgoingMessage.
type messageSummary struct {
	Type, Status string
	EntityIDs    []string
}

// producedMessages lists the namespace's OutgoingMessages in creation order.
func producedMessages(g Gomega, ctx context.Context, ns string) []labhookv1alpha1.OutgoingMessage {
	var list labhookv1alpha1.OutgoingMessageList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	sort.SliceStable(list.Items, func(i, j int) bool {
		return list.Items[i].Annotations[labhookv1alpha1.AnnotationCreatedAt] < list.Items[j].Annotations[labhookv1alpha1.AnnotationCreatedAt]
	})
	return list.Items
}

func summaries(ctx context.Context, ns string) func(g Gomega) []messageSummary {
	return func(g Gomega) []messageSummary {
		var out []messageSummary
		for _, m := range producedMessages(g, ctx, ns) {
			out = append(out, messageSummary{string(m.Spec.Type), m.Spec.Status, m.Spec.EntityIDs})
		}
		return out
	}
}

func vm(ns, name, id string) *labhookv1alpha1.LabResource {
	return &labhookv1alpha1.LabResource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: labhookv1alpha1.LabResourceSpec{ID: id, Type: labhookv1alpha1.ResourceTypeVM, Name: "server",
			Config: &labhookv1alpha1.LabResourceConfig{NetworkInterfaces: []labhookv1alpha1.NetworkInterface{
				{PublicIP: "32.17.144.2", PrivateIP: "10.0.0.2", DNS: "5108e970-labs.example.com"}}}},
	}
}

// update re-reads obj and applies mutate until the write does not conflict
// with a controller's concurrent write.
func update[T client.Object](ctx context.Context, obj T, mutate func(T)) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return k8sClient.Update(ctx, obj)
	})).To(Succeed())
}

func setPhase(ctx context.Context, lr *labhookv1alpha1.LabResource, phase labhookv1alpha1.ResourcePhase) {
	Eventually(func() error {
		cur := &labhookv1alpha1.LabResource{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), cur); err != nil {
			return err
		}
		cur.Status.Phase = phase
		return k8sClient.Status().Update(ctx, cur)
	}).Should(Succeed())
}

func readyStatus(ctx context.Context, obj client.Object) func() metav1.ConditionStatus {
	return func() metav1.ConditionStatus {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return "gone"
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *labhookv1alpha1.LabResource:
			conds = o.Status.Conditions
		case *labhookv1alpha1.LabInterface:
			conds = o.Status.Conditions
		}
		if c := meta.FindStatusCondition(conds, labhookv1alpha1.ConditionReady); c != nil {
			return c.Status
		}
		return ""
	}
}

// sent lists what rc received, one entry per message id in the order of
// first arrival.
func sent(rc *receiver) func() []messageSummary {
	return func() []messageSummary {
		var out []messageSummary
		seen := map[string]bool{}
		for _, d := range rc.deliveries() {
			if !seen[d.msg.MessageID] {
				seen[d.msg.MessageID] = true
				out = append(out, messageSummary{d.msg.Type, d.msg.Status, d.msg.EntityIDs})
			}
		}
		return out
	}
}

// arrivalsOf returns every arrival of message id at rc.
func arrivalsOf(rc *receiver, id string) []delivery {
	var out []delivery
	for _, d := range rc.deliveries() {
		if d.msg.MessageID == id {
			out = append(out, d)
		}
	}
	return out
}

// gate is a channel a receiver's handler waits on until open is called;
// it is opened when the test ends at the latest, so no handler is left
// blocking the receiver's shutdown.
func gate() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(ch) }) }
	DeferCleanup(open)
	return ch, open
}

// recorded waits until obj's status records its generation and returns it.
func recorded[T client.Object](ctx context.Context, obj T, gen func(T) int64) T {
	Eventually(func(g Gomega) bool {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return gen(obj) == obj.GetGeneration()
	}).Should(BeTrue(), "status.observedGeneration of %s should reach its generation", obj.GetName())
	return obj
}

func lrGen(lr *labhookv1alpha1.LabResource) int64 { return lr.Status.ObservedGeneration }

// loseStatus forgets what lr's status recorded, as if the manager had
// crashed before writing it.
func loseStatus(ctx context.Context, lr *labhookv1alpha1.LabResource) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
		lr.Status.ObservedGeneration = 0
		lr.Status.LastMessage = nil
		return k8sClient.Status().Update(ctx, lr)
	})).To(Succeed())
}

var _ = Describe("LabResource producer", func() {
	var (
		ctx     context.Context
		ns      string
		rc      *receiver
		opts    controllers.Options
		stopAll func()
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		rc = newReceiver()
		opts = testOptions()
	})
	start := func() {
		stopAll = startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, nil)
	}

	It("POSTs CREATED, UPDATED, RESTARTED, REPLACED and DELETED for the rows of SPEC §2.5, with no OutgoingMessage", func() {
		start()
		direct := counterValue("labhook_deliveries_total", "via", "direct")
		lr := vm(ns, "r1", "25f377ac")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(sent(rc)).Should(Equal([]messageSummary{{"RESOURCE", "CREATED", []string{"25f377ac"}}}))
		recorded(ctx, lr, lrGen)
		Expect(counterValue("labhook_deliveries_total", "via", "direct") - direct).To(BeNumerically(">=", 1))
		By("what kstatus reads: observedGeneration current, no Reconciling or Stalled")
		Expect(meta.FindStatusCondition(lr.Status.Conditions, labhookv1alpha1.ConditionReady).ObservedGeneration).To(Equal(lr.Generation))
		Expect(meta.IsStatusConditionTrue(lr.Status.Conditions, labhookv1alpha1.ConditionReconciling)).To(BeFalse())
		Expect(meta.IsStatusConditionTrue(lr.Status.Conditions, labhookv1alpha1.ConditionStalled)).To(BeFalse())
		Expect(lr.Status.LastMessage).To(PointTo(MatchFields(IgnoreExtras, Fields{
			"ID":              Equal(controllers.MessageName("RESOURCE", "CREATED", string(lr.UID), "created")),
			"Type":            Equal("RESOURCE"),
			"Status":          Equal("CREATED"),
			"Phase":           Equal(labhookv1alpha1.MessageDelivered),
			"HTTPStatus":      BeEquivalentTo(http.StatusNoContent),
			"Attempts":        BeEquivalentTo(1),
			"OutgoingMessage": BeEmpty(),
		})))
		Expect(lr.Status.LastMessage.Time).NotTo(BeNil())

		By("a spec change")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = "renamed" })
		Eventually(sent(rc)).Should(HaveLen(2))
		Expect(sent(rc)()[1]).To(Equal(messageSummary{"RESOURCE", "UPDATED", []string{"25f377ac"}}))

		By("a restart request")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.RestartRequestedAt = &metav1.Time{Time: time.Now()} })
		Eventually(sent(rc)).Should(HaveLen(3))
		Expect(sent(rc)()[2].Status).To(Equal("RESTARTED"))

		By("a replace request")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.ReplaceRequestedAt = &metav1.Time{Time: time.Now()} })
		Eventually(sent(rc)).Should(HaveLen(4))
		Expect(sent(rc)()[3].Status).To(Equal("REPLACED"))
		recorded(ctx, lr, lrGen)
		Expect(lr.Status.LastMessage.Status).To(Equal("REPLACED"))

		By("deletion, held by the finalizer until DELETED is delivered")
		Expect(lr.Finalizers).To(ContainElement(labhookv1alpha1.FinalizerOutgoingMessage))
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr))
		}).Should(BeTrue())
		Expect(sent(rc)()).To(HaveLen(5))
		Expect(sent(rc)()[4].Status).To(Equal("DELETED"))
		Expect(producedMessages(Default, ctx, ns)).To(BeEmpty(), "on the happy path no OutgoingMessage is created")
	})

	It("writes one status patch per spec change, and none for a status-only change", func() {
		start()
		lr := vm(ns, "r1", "5108e970")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		recorded(ctx, lr, lrGen)

		wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(ctx, &labhookv1alpha1.LabResourceList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		var modified atomic.Int32
		go func() {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Modified {
					modified.Add(1)
				}
			}
		}()
		const changes = 5
		for i := range changes {
			update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = fmt.Sprintf("change %d", i) })
			recorded(ctx, lr, lrGen)
			Expect(lr.Status.LastMessage.Status).To(Equal("UPDATED"))
		}
		// Each change is one write by the user and one status write by labhook.
		Consistently(modified.Load, "1s").Should(BeEquivalentTo(2 * changes))
		Expect(sent(rc)()).To(HaveLen(1 + changes))
		Expect(producedMessages(Default, ctx, ns)).To(BeEmpty())
		GinkgoWriter.Printf("watch MODIFIED events for %d spec changes: %d\n", changes, modified.Load())

		By("the webhookserver applies the phase as its own field manager, without conflicting with labhook's status writes")
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": "LabResource",
			"metadata": map[string]any{"name": lr.Name, "namespace": ns},
			"status":   map[string]any{"phase": "READY"},
		}}
		Expect(k8sClient.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner(labhookv1alpha1.FieldManagerWebhookServer))).To(Succeed())
		Eventually(readyStatus(ctx, lr)).Should(Equal(metav1.ConditionTrue))
		Consistently(sent(rc), "500ms").Should(HaveLen(1+changes), "a status-only change sends nothing")
	})

	It("sends nothing the config's eventTypes exclude, and says so in lastMessage", func() {
		stopAll = startManager(ns, opts)
		validConfig(ctx, ns, "backend", rc.URL, func(w *labhookv1alpha1.WebhookConfig) {
			w.Spec.EventTypes = []labhookv1alpha1.MessageType{"EVENT"}
		})
		lr := vm(ns, "r1", "f11e7ed")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		recorded(ctx, lr, lrGen)
		Expect(lr.Status.LastMessage.Phase).To(Equal(labhookv1alpha1.MessageFailed))
		Expect(lr.Status.LastMessage.Status).To(Equal("CREATED"))
		Consistently(func() []string { return rc.ids() }, "500ms").Should(BeEmpty())
		Expect(producedMessages(Default, ctx, ns)).To(BeEmpty())
	})

	It("resends the same message_id when the manager stops between the POST and the status write", func() {
		start()
		lr := vm(ns, "r1", "acf1109b")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		recorded(ctx, lr, lrGen)
		// The receiver holds the UPDATED until the manager has stopped: the
		// POST arrived, its outcome was never recorded.
		release, open := gate()
		rc.setRespond(func(m wire.OutgoingMessage, seen int, w http.ResponseWriter) {
			if m.Status == "UPDATED" && seen == 0 {
				<-release
			}
			w.WriteHeader(http.StatusNoContent)
		})
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = "in flight" })
		id := controllers.MessageName("RESOURCE", "UPDATED", string(lr.UID), "generation-2")
		Eventually(func() int { return len(arrivalsOf(rc, id)) }).Should(Equal(1))
		stopAll()
		open()
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
		Expect(lr.Status.ObservedGeneration).To(BeEquivalentTo(1), "the outcome was not recorded")

		startManager(ns, opts)
		recorded(ctx, lr, lrGen)
		Expect(lr.Status.LastMessage.ID).To(Equal(id))
		Expect(arrivalsOf(rc, id)).To(HaveLen(2), "at least once: the same message_id again")
	})

	It("follows a CREATED whose recording was lost with UPDATED when the spec changed meanwhile", func() {
		start()
		lr := vm(ns, "r5", "9a8b7c")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		recorded(ctx, lr, lrGen)
		stopAll()

		By("a spec change while the status write of CREATED is lost")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = "changed meanwhile" })
		loseStatus(ctx, lr)
		startManager(ns, opts)
		Eventually(sent(rc)).Should(Equal([]messageSummary{
			{"RESOURCE", "CREATED", []string{"9a8b7c"}}, {"RESOURCE", "UPDATED", []string{"9a8b7c"}}}))
		created := controllers.MessageName("RESOURCE", "CREATED", string(lr.UID), "created")
		Expect(arrivalsOf(rc, created)).To(HaveLen(2), "CREATED is resent with its id, then UPDATED brings the spec")
	})

	It("sends DELETED even when CREATED's status record was lost", func() {
		start()
		lr := vm(ns, "r6", "d31e7ed")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		recorded(ctx, lr, lrGen)
		stopAll()
		loseStatus(ctx, lr)
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		startManager(ns, opts)
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr))
		}).Should(BeTrue())
		Expect(sent(rc)()).To(Equal([]messageSummary{
			{"RESOURCE", "CREATED", []string{"d31e7ed"}}, {"RESOURCE", "DELETED", []string{"d31e7ed"}}}),
			"the finalizer means CREATED may have gone out: the backend hears DELETED")
	})

	It("makes a failed first attempt an OutgoingMessage that retries the same bytes and timestamp", func() {
		start()
		// The first attempt fails; the retry waits until the test has looked.
		retried, retryNow := gate()
		rc.setRespond(func(m wire.OutgoingMessage, seen int, w http.ResponseWriter) {
			switch seen {
			case 0:
				w.WriteHeader(http.StatusInternalServerError)
				return
			case 1:
				<-retried
			}
			w.WriteHeader(http.StatusNoContent)
		})
		lr := vm(ns, "r1", "f00ba4")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		id := ""
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
			if lr.Status.LastMessage == nil {
				return ""
			}
			id = lr.Status.LastMessage.ID
			return lr.Status.LastMessage.OutgoingMessage
		}).Should(Equal(controllers.MessageName("RESOURCE", "CREATED", string(lr.UID), "created")))
		Expect(lr.Status.LastMessage.HTTPStatus).To(BeEquivalentTo(500))
		Expect(lr.Status.LastMessage.Attempts).To(BeEquivalentTo(1))
		Expect(lr.Status.ObservedGeneration).To(BeEquivalentTo(1))
		om := message(ctx, ns, id)()
		Expect(om).NotTo(BeNil())
		Expect(om.Labels).To(HaveKeyWithValue(labhookv1alpha1.LabelLabObjectUID, string(lr.UID)))
		Expect(om.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationLabObject, "LabResource/r1"))
		retryNow()

		Eventually(phaseOf(ctx, ns, id)).Should(Equal(labhookv1alpha1.MessageDelivered))
		a := arrivalsOf(rc, id)
		Expect(a).To(HaveLen(2))
		Expect(string(a[1].body)).To(Equal(string(a[0].body)), "the OutgoingMessage's retry sends the first attempt's bytes")
		Expect(om.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationTimestamp, a[0].msg.Timestamp))

		By("lastMessage follows the OutgoingMessage to Delivered")
		Eventually(func(g Gomega) labhookv1alpha1.MessagePhase {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
			return lr.Status.LastMessage.Phase
		}).Should(Equal(labhookv1alpha1.MessageDelivered))
		Expect(lr.Status.LastMessage.Attempts).To(BeEquivalentTo(2))
	})

	It("names messages deterministically while they wait for a usable config, so a lost status write causes no duplicate", func() {
		stopAll = startManager(ns, opts)
		lr := vm(ns, "r2", "56ea830e")
		lr.Spec.WebhookConfigRef = &labhookv1alpha1.LocalObjectReference{Name: "special"}
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(summaries(ctx, ns)).Should(HaveLen(1))
		msg := producedMessages(Default, ctx, ns)[0]
		Expect(msg.Name).To(Equal(controllers.MessageName("RESOURCE", "CREATED", string(lr.UID), "created")))
		Expect(len(msg.Name)).To(BeNumerically("<=", 63))
		Expect(msg.Spec.WebhookConfigRef).To(Equal(&labhookv1alpha1.LocalObjectReference{Name: "special"}))
		Eventually(readyReason(ctx, ns, msg.Name)).Should(Equal(labhookv1alpha1.ReasonNoUsableConfig))

		By("the context carries the object in wire form, no credentials")
		var c map[string]any
		Expect(json.Unmarshal(msg.Spec.Context.Raw, &c)).To(Succeed())
		Expect(c).To(HaveKeyWithValue("namespace", ns))
		Expect(c).To(HaveKeyWithValue("name", "r2"))
		Expect(c).To(HaveKeyWithValue("generation", BeNumerically("==", 1)))
		Expect(c["spec"]).To(HaveKeyWithValue("config", HaveKeyWithValue("network_interfaces",
			ConsistOf(map[string]any{"public_ip": "32.17.144.2", "private_ip": "10.0.0.2", "dns": "5108e970-labs.example.com"}))))

		By("forgetting the status, as if the manager crashed before writing it")
		recorded(ctx, lr, lrGen)
		loseStatus(ctx, lr)
		recorded(ctx, lr, lrGen)
		Expect(lr.Status.LastMessage.ID).To(Equal(msg.Name))
		Expect(lr.Status.LastMessage.OutgoingMessage).To(Equal(msg.Name))
		Expect(producedMessages(Default, ctx, ns)).To(HaveLen(1))
	})

	It("sends nothing for status-only changes, and Ready follows the phase", func() {
		stopAll = startManager(ns, opts)
		lr := vm(ns, "r3", "619a8bbe")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(summaries(ctx, ns)).Should(HaveLen(1))
		Eventually(readyStatus(ctx, lr)).Should(Equal(metav1.ConditionFalse))
		setPhase(ctx, lr, labhookv1alpha1.PhaseReady)
		Eventually(readyStatus(ctx, lr)).Should(Equal(metav1.ConditionTrue))
		setPhase(ctx, lr, labhookv1alpha1.PhaseStopped)
		Eventually(readyStatus(ctx, lr)).Should(Equal(metav1.ConditionFalse))
		Consistently(summaries(ctx, ns), "1s").Should(HaveLen(1))
	})

	It("does not echo changes the webhookserver applied from the backend", func() {
		start()
		By("a resource the webhookserver created")
		lr := vm(ns, "r4", "acf1109b")
		lr.Annotations = echo.Mark("src-1", "2020-10-05T08:36:09+00:00", lr.Spec)
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(func(g Gomega) int64 {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
			return lr.Status.ObservedGeneration
		}).Should(BeEquivalentTo(1))

		By("a spec change the webhookserver applied")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) {
			lr.Spec.Name = "from backend"
			for k, v := range echo.Mark("src-2", "2020-10-05T08:37:09+00:00", lr.Spec) {
				lr.Annotations[k] = v
			}
		})
		Eventually(func(g Gomega) int64 {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
			return lr.Status.ObservedGeneration
		}).Should(BeEquivalentTo(2))
		Expect(sent(rc)()).To(BeEmpty())

		By("a later change by a person is sent")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = "by kubectl" })
		Eventually(sent(rc)).Should(Equal([]messageSummary{{"RESOURCE", "UPDATED", []string{"acf1109b"}}}))

		By("a deletion the backend asked for")
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) {
			lr.Annotations[labhookv1alpha1.AnnotationSourceDeleted] = "src-3"
		})
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr))
		}).Should(BeTrue())
		Consistently(sent(rc), "500ms").Should(HaveLen(1))
		Expect(producedMessages(Default, ctx, ns)).To(BeEmpty())
	})

	It("does not let an OutgoingMessage squatting its name suppress its message", func() {
		start()
		release, open := gate()
		rc.setRespond(func(m wire.OutgoingMessage, seen int, w http.ResponseWriter) {
			if m.Type == "RESOURCE" && seen == 0 {
				<-release
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		lr := vm(ns, "r7", "5a7e11")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		id := ""
		Eventually(func(g Gomega) int {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
			id = controllers.MessageName("RESOURCE", "CREATED", string(lr.UID), "created")
			return len(arrivalsOf(rc, id))
		}).Should(Equal(1))

		By("a namespace editor creates an OutgoingMessage with that name, even with the producer's label")
		squat := newMessage(ns, id, "RESOURCE", "CREATED", "someone-else")
		squat.Labels = map[string]string{labhookv1alpha1.LabelLabObjectUID: string(lr.UID)}
		Expect(k8sClient.Create(ctx, squat)).To(Succeed())
		open()

		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr)).To(Succeed())
			if lr.Status.LastMessage == nil {
				return ""
			}
			return lr.Status.LastMessage.OutgoingMessage
		}).ShouldNot(Or(BeEmpty(), Equal(id)), "the failed first attempt is recorded under another deterministic name")
		alt := lr.Status.LastMessage.OutgoingMessage
		Expect(alt).To(Equal(controllers.MessageName("RESOURCE", "CREATED", string(lr.UID), "created/1")))
		Eventually(phaseOf(ctx, ns, alt)).Should(Equal(labhookv1alpha1.MessageDelivered))
		Expect(arrivalsOf(rc, alt)[0].msg.EntityIDs).To(Equal([]string{"5a7e11"}))
		Eventually(eventsFor(ctx, ns, "r7")).Should(ContainElement("Warning/" + labhookv1alpha1.ReasonMessageNameTaken))
	})

	It("keeps an OutgoingMessage for every message with --record-delivered-messages", func() {
		opts.RecordDeliveredMessages = true
		start()
		lr := vm(ns, "r8", "7ec07d")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		recorded(ctx, lr, lrGen)
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = "one" })
		recorded(ctx, lr, lrGen)
		update(ctx, lr, func(lr *labhookv1alpha1.LabResource) { lr.Spec.Name = "two" })
		recorded(ctx, lr, lrGen)
		Eventually(summaries(ctx, ns)).Should(Equal([]messageSummary{{"RESOURCE", "CREATED", []string{"7ec07d"}},
			{"RESOURCE", "UPDATED", []string{"7ec07d"}}, {"RESOURCE", "UPDATED", []string{"7ec07d"}}}))
		for _, m := range producedMessages(Default, ctx, ns) {
			Eventually(phaseOf(ctx, ns, m.Name)).Should(Equal(labhookv1alpha1.MessageDelivered))
		}
		Expect(lr.Status.LastMessage.OutgoingMessage).To(Equal(lr.Status.LastMessage.ID))
		Expect(sent(rc)()).To(HaveLen(3))
	})
})

var _ = Describe("LabResource in a terminating organisation", func() {
	It("lets the object go when its DELETED message cannot be created", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		startManager(ns, testOptions())
		lr := vm(ns, "r", "1d3b5f")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		Eventually(summaries(ctx, ns)).Should(HaveLen(1))
		Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		// envtest runs no namespace controller: delete the content as it would.
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		Expect(k8sClient.DeleteAllOf(ctx, &labhookv1alpha1.OutgoingMessage{}, client.InNamespace(ns))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr))
		}).Should(BeTrue())
		Expect(summaries(ctx, ns)(Default)).To(BeEmpty(), "no DELETED message was created in the terminating namespace")
	})
})

var _ = Describe("LabInterface producer and status", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		startManager(ns, testOptions())
	})

	iface := func(name string, typ labhookv1alpha1.InterfaceType, res string, port *int32) *labhookv1alpha1.LabInterface {
		li := &labhookv1alpha1.LabInterface{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: labhookv1alpha1.LabInterfaceSpec{Name: "If " + name, Type: typ, Region: "eu-west-1",
				ResourceRef: labhookv1alpha1.LocalObjectReference{Name: res}},
		}
		if port != nil {
			li.Spec.Config = &labhookv1alpha1.LabInterfaceConfig{Port: port}
		}
		return li
	}
	endpoint := func(li *labhookv1alpha1.LabInterface) func() string {
		return func() string {
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li)).To(Succeed())
			return li.Status.Endpoint
		}
	}

	It("resolves endpoints for TERMINAL, DESKTOP and WEB_PAGE on a VM and on a URL", func() {
		dnsVM := vm(ns, "vm-dns", "vm1")
		ipVM := vm(ns, "vm-ip", "vm2")
		ipVM.Spec.Config.NetworkInterfaces[0].DNS = ""
		url := &labhookv1alpha1.LabResource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: labhookv1alpha1.LabResourceSpec{ID: "web1", Type: labhookv1alpha1.ResourceTypeURL,
				Config: &labhookv1alpha1.LabResourceConfig{Address: "https://my.webpage.com:3131"}}}
		for _, r := range []*labhookv1alpha1.LabResource{dnsVM, ipVM, url} {
			Expect(k8sClient.Create(ctx, r)).To(Succeed())
		}
		cases := []struct {
			li   *labhookv1alpha1.LabInterface
			want string
		}{
			{iface("term", labhookv1alpha1.InterfaceTerminal, "vm-dns", nil), "ssh://5108e970-labs.example.com:22"},
			{iface("term-port", labhookv1alpha1.InterfaceTerminal, "vm-ip", ptr.To[int32](2022)), "ssh://32.17.144.2:2022"},
			{iface("desk", labhookv1alpha1.InterfaceDesktop, "vm-dns", nil), "rdp://5108e970-labs.example.com:3389"},
			{iface("web-vm", labhookv1alpha1.InterfaceWebPage, "vm-ip", ptr.To[int32](8080)), "http://32.17.144.2:8080"},
			{iface("web-vm-tls", labhookv1alpha1.InterfaceWebPage, "vm-dns", ptr.To[int32](443)), "https://5108e970-labs.example.com:443"},
			{iface("web-vm-default", labhookv1alpha1.InterfaceWebPage, "vm-dns", nil), "http://5108e970-labs.example.com:80"},
			{iface("web-url", labhookv1alpha1.InterfaceWebPage, "web", nil), "https://my.webpage.com:3131"},
		}
		for _, c := range cases {
			Expect(k8sClient.Create(ctx, c.li)).To(Succeed())
		}
		for _, c := range cases {
			Eventually(endpoint(c.li)).Should(Equal(c.want), c.li.Name)
		}

		By("TERMINAL on a URL is not Ready and has no endpoint")
		bad := iface("term-url", labhookv1alpha1.InterfaceTerminal, "web", nil)
		Expect(k8sClient.Create(ctx, bad)).To(Succeed())
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(bad), bad)).To(Succeed())
			if c := meta.FindStatusCondition(bad.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil {
				return c.Reason
			}
			return ""
		}).Should(Equal(labhookv1alpha1.ReasonIncompatibleType))
		Expect(bad.Status.Endpoint).To(BeEmpty())
	})

	It("is Ready once its resource is READY and its auth Secret exists, and is owned by the resource", func() {
		lr := vm(ns, "r", "56ea830e")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		li := iface("ssh", labhookv1alpha1.InterfaceTerminal, "r", ptr.To[int32](2022))
		li.Spec.Config.Authentication = &labhookv1alpha1.InterfaceAuthentication{Type: labhookv1alpha1.AuthKeypair,
			SecretRef: labhookv1alpha1.LocalObjectReference{Name: "ssh-key"}}
		Expect(k8sClient.Create(ctx, li)).To(Succeed())
		setPhase(ctx, lr, labhookv1alpha1.PhaseReady)
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li)).To(Succeed())
			if c := meta.FindStatusCondition(li.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil {
				return c.Reason
			}
			return ""
		}).Should(Equal(labhookv1alpha1.ReasonAuthSecretNotFound))
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ssh-key"},
			StringData: map[string]string{"key": "not-a-real-key"}})).To(Succeed())
		Eventually(readyStatus(ctx, li)).Should(Equal(metav1.ConditionTrue))
		Expect(li.OwnerReferences).To(ContainElement(HaveField("UID", lr.UID)))
		// The resource id is recorded once the resource's own status shows
		// its CREATED, which may be a reconcile after Ready.
		Eventually(func(g Gomega) string {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li)).To(Succeed())
			return li.Status.ResourceID
		}).Should(Equal("56ea830e"))

		By("the resource stopping makes the interface not Ready")
		setPhase(ctx, lr, labhookv1alpha1.PhaseStopped)
		Eventually(readyStatus(ctx, li)).Should(Equal(metav1.ConditionFalse))
	})

	It("does not echo an interface the webhookserver applied", func() {
		lr := vm(ns, "r", "25f377ac")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		li := iface("web", labhookv1alpha1.InterfaceWebPage, "r", ptr.To[int32](8080))
		li.Annotations = echo.Mark("src-1", "2020-10-05T08:36:09+00:00", li.Spec)
		Expect(k8sClient.Create(ctx, li)).To(Succeed())
		Eventually(func(g Gomega) int64 {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li)).To(Succeed())
			return li.Status.ObservedGeneration
		}).Should(BeEquivalentTo(1))
		Expect(summaries(ctx, ns)(Default)).To(Equal([]messageSummary{{"RESOURCE", "CREATED", []string{"25f377ac"}}}))
	})

	It("sends INTERFACE CREATED, UPDATED and DELETED with [resource id, interface name], after its resource's CREATED", func() {
		rc := newReceiver()
		validConfig(ctx, ns, "backend", rc.URL, nil)
		lr := vm(ns, "r", "25f377ac")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		li := iface("desk", labhookv1alpha1.InterfaceDesktop, "r", nil)
		li.Spec.Config = &labhookv1alpha1.LabInterfaceConfig{Authentication: &labhookv1alpha1.InterfaceAuthentication{
			Type: labhookv1alpha1.AuthGeneratedUsernamePassword, SecretRef: labhookv1alpha1.LocalObjectReference{Name: "creds"}}}
		Expect(k8sClient.Create(ctx, li)).To(Succeed())
		ids := []string{"25f377ac", "If desk"}
		Eventually(sent(rc)).Should(Equal([]messageSummary{
			{"RESOURCE", "CREATED", []string{"25f377ac"}}, {"INTERFACE", "CREATED", ids}}))
		var c map[string]any
		Expect(json.Unmarshal(rc.deliveries()[1].msg.Context, &c)).To(Succeed())
		Expect(c["spec"]).To(Equal(map[string]any{"name": "If desk", "type": "DESKTOP", "region": "eu-west-1",
			"resource_id": "25f377ac", "config": map[string]any{"authentication": map[string]any{"type": "generated_username_password"}}}))

		update(ctx, li, func(li *labhookv1alpha1.LabInterface) { li.Spec.Region = "us-east-1" })
		Eventually(sent(rc)).Should(HaveLen(3))
		Expect(sent(rc)()[2]).To(Equal(messageSummary{"INTERFACE", "UPDATED", ids}))

		Expect(k8sClient.Delete(ctx, li)).To(Succeed())
		Eventually(sent(rc)).Should(HaveLen(4))
		Expect(sent(rc)()[3]).To(Equal(messageSummary{"INTERFACE", "DELETED", ids}))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li))
		}).Should(BeTrue())
		Expect(producedMessages(Default, ctx, ns)).To(BeEmpty())
	})

	It("deletes a deleted resource's interfaces and sends RESOURCE DELETED after their INTERFACE DELETED", func() {
		rc := newReceiver()
		validConfig(ctx, ns, "backend", rc.URL, nil)
		lr := vm(ns, "r", "4e50a6")
		Expect(k8sClient.Create(ctx, lr)).To(Succeed())
		lis := []*labhookv1alpha1.LabInterface{
			iface("ssh", labhookv1alpha1.InterfaceTerminal, "r", nil), iface("web", labhookv1alpha1.InterfaceWebPage, "r", ptr.To[int32](8080))}
		for _, li := range lis {
			Expect(k8sClient.Create(ctx, li)).To(Succeed())
		}
		Eventually(sent(rc)).Should(HaveLen(3))
		for _, li := range lis {
			Eventually(func(g Gomega) int64 {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li)).To(Succeed())
				return li.Status.ObservedGeneration
			}).Should(BeEquivalentTo(1))
		}
		Expect(k8sClient.Delete(ctx, lr)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(lr), lr))
		}).Should(BeTrue())
		for _, li := range lis {
			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(li), li))).To(BeTrue(), li.Name)
		}
		got := sent(rc)()
		Expect(got).To(HaveLen(6))
		Expect(got[3:5]).To(ConsistOf(messageSummary{"INTERFACE", "DELETED", []string{"4e50a6", "If ssh"}},
			messageSummary{"INTERFACE", "DELETED", []string{"4e50a6", "If web"}}))
		Expect(got[5]).To(Equal(messageSummary{"RESOURCE", "DELETED", []string{"4e50a6"}}))
	})
})
