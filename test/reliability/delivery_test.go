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

package reliability

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/recorder"
	"github.com/labhook/labhook/test/internal/stack"
)

// outbox is one organisation with a valid default WebhookConfig pointing at
// a recording receiver.
type outbox struct {
	ns  string
	rec *recorder.Recorder
}

func newOutbox(ctx context.Context, prefix string) *outbox {
	secret, err := wire.GenerateSecret()
	Expect(err).NotTo(HaveOccurred())
	rec, err := recorder.Start(secret)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(rec.Close)
	o := &outbox{ns: newNamespace(ctx, prefix), rec: rec}
	Expect(cl.WebhookConfig(ctx, o.ns, "receiver", rec.URL, secret)).To(Succeed())
	return o
}

func (o *outbox) waitValid(ctx context.Context) {
	standIn, err := cl.EnsureValid(ctx, o.ns, "receiver", 10*time.Second)
	Expect(err).NotTo(HaveOccurred(), "the WebhookConfig pointing at the loopback receiver should be tested and become valid")
	if standIn {
		report("no WebhookConfig controller in this tree: %s/receiver was marked valid by the test", o.ns)
	}
}

// message creates an OutgoingMessage, as any platform component may.
func (o *outbox) message(ctx context.Context, name, entity string) error {
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.ns},
		Spec:       labhookv1alpha1.OutgoingMessageSpec{Type: wire.TypeOndemandEnrollment, Status: "STARTED", EntityIDs: []string{entity}},
	}
	return client.IgnoreAlreadyExists(cl.Client.Create(ctx, om))
}

// resource creates a LabResource, whose RESOURCE CREATED message labhook produces.
func (o *outbox) resource(ctx context.Context, id string) error {
	lr := &labhookv1alpha1.LabResource{
		ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: o.ns},
		Spec: labhookv1alpha1.LabResourceSpec{ID: id, Type: labhookv1alpha1.ResourceTypeURL, Name: id,
			Config: &labhookv1alpha1.LabResourceConfig{Address: "https://" + id + ".example.com"}},
	}
	return client.IgnoreAlreadyExists(cl.Client.Create(ctx, lr))
}

// tally compares what arrived with what was expected: message ids expected
// by name, and one RESOURCE CREATED per expected resource id.
type tally struct {
	lost, duplicated, arrived int
	lostNames                 []string
}

func (o *outbox) tally(messages, resources []string) tally {
	perID := map[string]int{}
	createdFor := map[string]int{}
	for _, a := range o.rec.Arrivals() {
		perID[a.Message.MessageID]++
		if a.Message.Type == wire.TypeResource && a.Message.Status == wire.StatusCreated && len(a.Message.EntityIDs) > 0 && perID[a.Message.MessageID] == 1 {
			createdFor[a.Message.EntityIDs[0]]++
		}
	}
	var t tally
	for _, m := range messages {
		switch n := perID[m]; {
		case n == 0:
			t.lost++
			t.lostNames = append(t.lostNames, m)
		default:
			t.arrived++
			t.duplicated += n - 1
		}
	}
	for _, id := range resources {
		if createdFor[id] == 0 {
			t.lost++
			t.lostNames = append(t.lostNames, "RESOURCE CREATED "+id)
		} else {
			t.arrived++
		}
	}
	// Duplicates of produced messages (RESOURCE CREATED) count too.
	for id, n := range perID {
		if n > 1 && !contains(messages, id) {
			t.duplicated += n - 1
		}
	}
	return t
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// producer creates messages and resources at a steady pace in the
// background, so that kills and leader changes land mid-stream.
type producer struct {
	mu        sync.Mutex
	messages  []string
	resources []string
	errs      []error
	done      chan struct{}
}

func (o *outbox) produce(ctx context.Context, prefix string, messages, resources int, every time.Duration) *producer {
	p := &producer{done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		r := 0
		for i := 0; i < messages; i++ {
			<-tick.C
			name := fmt.Sprintf("%s-msg-%04d", prefix, i)
			// 20 entities, so per-entity ordering is exercised too.
			err := o.message(ctx, name, fmt.Sprintf("%s-entity-%02d", prefix, i%20))
			p.mu.Lock()
			if err != nil {
				p.errs = append(p.errs, err)
			} else {
				p.messages = append(p.messages, name)
			}
			p.mu.Unlock()
			if r < resources && i%(messages/max(resources, 1)) == 0 {
				id := fmt.Sprintf("%s-res-%04d", prefix, r)
				r++
				err := o.resource(ctx, id)
				p.mu.Lock()
				if err != nil {
					p.errs = append(p.errs, err)
				} else {
					p.resources = append(p.resources, id)
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *producer) wait() ([]string, []string) {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	Expect(p.errs).To(BeEmpty(), "the API server should accept every message and resource")
	return p.messages, p.resources
}

var _ = Describe("Delivery", func() {
	It("loses nothing when the manager is killed with SIGKILL three times mid-delivery", func(ctx SpecContext) {
		bin := binary("manager")
		o := newOutbox(ctx, "rel-crash")
		mgr, err := stack.Manager(bin, cl.Kubeconfig, logPath("manager-crash"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { mgr.Stop(10 * time.Second) })
		o.waitValid(ctx)

		// 300 messages and 30 resources over ~6s; kill -9 every ~1.5s.
		p := o.produce(ctx, "crash", 300, 30, 20*time.Millisecond)
		for kill := 1; kill <= 3; kill++ {
			time.Sleep(1500 * time.Millisecond)
			mgr.Kill()
			GinkgoWriter.Printf("kill -9 #%d: %d messages arrived so far\n", kill, len(o.rec.Arrivals()))
			time.Sleep(300 * time.Millisecond)
			mgr, err = stack.Manager(bin, cl.Kubeconfig, logPath("manager-crash"))
			Expect(err).NotTo(HaveOccurred())
		}
		msgs, res := p.wait()

		Eventually(func() int { return o.tally(msgs, res).lost }).
			WithTimeout(30*time.Second).WithPolling(500*time.Millisecond).Should(BeZero(),
			func() string { return fmt.Sprintf("lost: %v", first(o.tally(msgs, res).lostNames, 10)) })
		t := o.tally(msgs, res)
		report("kill -9 x3: %d messages + %d RESOURCE CREATED expected, lost %d, duplicated %d, bad signatures %d",
			len(msgs), len(res), t.lost, t.duplicated, o.rec.BadSignatures())
		Expect(o.rec.BadSignatures()).To(BeZero())
		Eventually(func() (int, error) { return countPhase(ctx, o.ns, labhookv1alpha1.MessageDelivered) }).
			WithTimeout(30*time.Second).Should(BeNumerically(">=", len(msgs)),
			"every OutgoingMessage should end up Delivered in its status")
		Eventually(func() (int, error) { return countOwing(ctx, o.ns) }).WithTimeout(30*time.Second).Should(BeZero(),
			"every LabResource should record its delivered CREATED in its status")
	}, SpecTimeout(3*time.Minute))

	It("hands over to the standby manager when the leader is killed, and loses nothing", func(ctx SpecContext) {
		bin := binary("manager")
		o := newOutbox(ctx, "rel-leader")
		args := []string{"--leader-elect", "--leader-election-namespace=" + o.ns}
		leader, err := stack.Manager(bin, cl.Kubeconfig, logPath("manager-leader-a"), args...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { leader.Stop(10 * time.Second) })
		holder := func() string {
			var leases coordinationv1.LeaseList
			if err := cl.Client.List(ctx, &leases, client.InNamespace(o.ns)); err != nil || len(leases.Items) == 0 {
				return ""
			}
			if h := leases.Items[0].Spec.HolderIdentity; h != nil {
				return *h
			}
			return ""
		}
		Eventually(holder).WithTimeout(30 * time.Second).ShouldNot(BeEmpty())
		firstHolder := holder()
		standby, err := stack.Manager(bin, cl.Kubeconfig, logPath("manager-leader-b"), args...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { standby.Stop(10 * time.Second) })
		o.waitValid(ctx)

		p := o.produce(ctx, "leader", 200, 20, 25*time.Millisecond)
		time.Sleep(2 * time.Second)
		leader.Kill()
		killedAt := time.Now()
		msgs, res := p.wait()
		Eventually(holder).WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).ShouldNot(Equal(firstHolder),
			"the standby should acquire the Lease after the leader's lease expires")
		report("leader election: standby took the Lease %s after kill -9 of the leader", time.Since(killedAt).Round(100*time.Millisecond))

		Eventually(func() int { return o.tally(msgs, res).lost }).
			WithTimeout(30*time.Second).WithPolling(500*time.Millisecond).Should(BeZero(),
			func() string { return fmt.Sprintf("lost: %v", first(o.tally(msgs, res).lostNames, 10)) })
		t := o.tally(msgs, res)
		report("leader kill: %d messages + %d RESOURCE CREATED expected, lost %d, duplicated %d", len(msgs), len(res), t.lost, t.duplicated)
	}, SpecTimeout(3*time.Minute))

	It("delivers everything, in order per entity, after a receiver outage", func(ctx SpecContext) {
		bin := binary("manager")
		o := newOutbox(ctx, "rel-outage")
		mgr, err := stack.Manager(bin, cl.Kubeconfig, logPath("manager-outage"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { mgr.Stop(10 * time.Second) })
		o.waitValid(ctx)

		o.rec.SetDown(true)
		// 10 entities x 5 messages, created in order per entity; names sort
		// in creation order too.
		var want []string
		for k := 0; k < 5; k++ {
			for e := 0; e < 10; e++ {
				name := fmt.Sprintf("outage-e%02d-k%d", e, k)
				Expect(o.message(ctx, name, fmt.Sprintf("outage-entity-%02d", e))).To(Succeed())
				want = append(want, name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		refused := o.rec.Refused()
		o.rec.SetDown(false)
		Expect(refused).To(BeNumerically(">", 0), "the manager should have tried during the outage")

		Eventually(func() int { return o.tally(want, nil).lost }).
			WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(BeZero())
		// Order per entity: the first arrival of k must come after the first
		// arrival of k-1.
		firstAt := map[string]int{}
		for i, a := range o.rec.Arrivals() {
			if _, ok := firstAt[a.Message.MessageID]; !ok {
				firstAt[a.Message.MessageID] = i
			}
		}
		var outOfOrder []string
		for e := 0; e < 10; e++ {
			for k := 1; k < 5; k++ {
				prev, cur := fmt.Sprintf("outage-e%02d-k%d", e, k-1), fmt.Sprintf("outage-e%02d-k%d", e, k)
				if firstAt[cur] < firstAt[prev] {
					outOfOrder = append(outOfOrder, cur+" before "+prev)
				}
			}
		}
		t := o.tally(want, nil)
		report("receiver outage 3s: %d messages, %d refused attempts during the outage, lost %d, duplicated %d, out of order %d",
			len(want), refused, t.lost, t.duplicated, len(outOfOrder))
		Expect(outOfOrder).To(BeEmpty(), "messages for one entity must arrive in creation order")
	}, SpecTimeout(2*time.Minute))
})

// countOwing counts the LabResources whose status has not recorded the
// message of their current spec.
func countOwing(ctx context.Context, ns string) (int, error) {
	var lrs labhookv1alpha1.LabResourceList
	if err := cl.Client.List(ctx, &lrs, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	n := 0
	for _, lr := range lrs.Items {
		restart := lr.Spec.RestartRequestedAt
		if lr.Status.ObservedGeneration != lr.Generation || (restart != nil && !restart.Equal(lr.Status.HandledRestartRequestedAt)) ||
			lr.Status.LastMessage == nil || lr.Status.LastMessage.Phase != labhookv1alpha1.MessageDelivered {
			n++
		}
	}
	return n, nil
}

func countPhase(ctx context.Context, ns string, phase labhookv1alpha1.MessagePhase) (int, error) {
	var oms labhookv1alpha1.OutgoingMessageList
	if err := cl.Client.List(ctx, &oms, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range oms.Items {
		if m.Status.Phase == phase {
			n++
		}
	}
	return n, nil
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }
