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
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/stack"
)

// callbackOf is the --callback-url given to the manager named name: every
// message carries it, so a receiver knows which manager sent it.
func callbackOf(name string) string { return "https://" + name + ".labhook.test/incoming" }

// senders counts a receiver's arrivals by the manager that sent them, and
// finds the last arrival of one.
func (o *outbox) senders() map[string]int {
	out := map[string]int{}
	for _, a := range o.rec.Arrivals() {
		out[strings.TrimSuffix(strings.TrimPrefix(a.Message.Callback, "https://"), ".labhook.test/incoming")]++
	}
	return out
}

func (o *outbox) lastFrom(name string) time.Time {
	var last time.Time
	for _, a := range o.rec.Arrivals() {
		if a.Message.Callback == callbackOf(name) && a.At.After(last) {
			last = a.At
		}
	}
	return last
}

// firstFrom is the first arrival from the manager named name after t.
func (o *outbox) firstFrom(name string, t time.Time) time.Time {
	var first time.Time
	for _, a := range o.rec.Arrivals() {
		if a.Message.Callback == callbackOf(name) && a.At.After(t) && (first.IsZero() || a.At.Before(first)) {
			first = a.At
		}
	}
	return first
}

// produceUntil creates an OutgoingMessage every interval (20 entities, in
// turn) and a LabResource with every tenth, until stop is closed.
func (o *outbox) produceUntil(ctx context.Context, prefix string, every time.Duration, stop <-chan struct{}) *producer {
	p := &producer{done: make(chan struct{})}
	go func() {
		defer GinkgoRecover()
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			name := fmt.Sprintf("%s-msg-%04d", prefix, i)
			err := o.message(ctx, name, fmt.Sprintf("%s-entity-%02d", prefix, i%20))
			p.mu.Lock()
			if err != nil {
				p.errs = append(p.errs, err)
			} else {
				p.messages = append(p.messages, name)
			}
			p.mu.Unlock()
			if i%10 == 0 {
				id := fmt.Sprintf("%s-res-%04d", prefix, i/10)
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

func labelShard(ctx context.Context, ns, shard string) {
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, labhookv1alpha1.LabelShard, shard)
	Expect(cl.Client.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		client.RawPatch("application/merge-patch+json", []byte(patch)))).To(Succeed())
}

var _ = Describe("Shards", func() {
	It("delivers each organisation's messages from its own shard only, and loses nothing when one moves and its new leader is killed", func(ctx SpecContext) {
		bin := binary("manager")
		leases := newNamespace(ctx, "rel-shard-leases")
		open, one, two := newOutbox(ctx, "rel-shard-open"), newOutbox(ctx, "rel-shard-one"), newOutbox(ctx, "rel-shard-two")
		labelShard(ctx, one.ns, "one")
		labelShard(ctx, two.ns, "two")

		start := func(name, shard string) *process.Process {
			args := []string{"--leader-elect", "--leader-election-namespace=" + leases, "--callback-url=" + callbackOf(name)}
			if shard != "" {
				args = append(args, "--shard="+shard)
			}
			p, err := stack.Manager(bin, cl.Kubeconfig, logPath("manager-shard-"+name), args...)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { p.Stop(10 * time.Second) })
			return p
		}
		holder := func(lease string) string {
			var l coordinationv1.Lease
			if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: leases, Name: lease}, &l); err != nil || l.Spec.HolderIdentity == nil {
				return ""
			}
			return *l.Spec.HolderIdentity
		}
		start("unsharded", "")
		shardOne := start("one", "one")
		twoA := start("two-a", "two")
		By("each shard elects its own leader, on its own Lease")
		for _, lease := range []string{"labhook-manager.labhook.io", "labhook-manager-one.labhook.io", "labhook-manager-two.labhook.io"} {
			Eventually(func() string { return holder(lease) }).WithTimeout(30*time.Second).ShouldNot(BeEmpty(), lease)
		}
		twoLeader := holder("labhook-manager-two.labhook.io")
		start("two-b", "two") // the standby of shard two
		for _, o := range []*outbox{open, one, two} {
			o.waitValid(ctx)
		}

		By("each organisation's messages come from its shard")
		stop := make(chan struct{})
		pOpen := open.produceUntil(ctx, "shard-open", 30*time.Millisecond, stop)
		pTwo := two.produceUntil(ctx, "shard-two", 30*time.Millisecond, stop)
		pOne := one.produceUntil(ctx, "shard-one", 20*time.Millisecond, stop)
		Eventually(func() int { return one.senders()["one"] }).WithTimeout(30*time.Second).Should(BeNumerically(">", 20),
			"shard one delivers organisation one's messages before it moves")

		By("organisation one moves to shard two while its messages are being delivered")
		labelShard(ctx, one.ns, "two")
		movedAt := time.Now()
		Expect(shardOne.WaitForLine("organisation left this shard", 10*time.Second)).To(Succeed())
		leftAt := time.Now() // shard one knew by then
		Eventually(func() bool { return one.lastFrom("two-a").After(movedAt) }).WithTimeout(30*time.Second).Should(BeTrue(),
			"shard two's leader delivers organisation one's messages after the move")

		By("kill -9 of shard two's leader while every organisation still produces; its standby takes over")
		twoA.Kill()
		killedAt := time.Now()
		time.Sleep(2 * time.Second)
		close(stop)
		msgsOpen, resOpen := pOpen.wait()
		msgsTwo, resTwo := pTwo.wait()
		msgsOne, resOne := pOne.wait()
		Eventually(func() string { return holder("labhook-manager-two.labhook.io") }).WithTimeout(45*time.Second).
			WithPolling(250*time.Millisecond).ShouldNot(Equal(twoLeader), "the standby takes shard two's Lease")
		takeover := time.Since(killedAt)

		for _, c := range []struct {
			o               *outbox
			msgs, resources []string
		}{{open, msgsOpen, resOpen}, {two, msgsTwo, resTwo}, {one, msgsOne, resOne}} {
			Eventually(func() int { return c.o.tally(c.msgs, c.resources).lost }).WithTimeout(60*time.Second).
				WithPolling(500*time.Millisecond).Should(BeZero(), func() string {
				return fmt.Sprintf("%s lost: %v", c.o.ns, first(c.o.tally(c.msgs, c.resources).lostNames, 10))
			})
			Expect(c.o.rec.BadSignatures()).To(BeZero())
			Eventually(func() (int, error) { return countOwing(ctx, c.o.ns) }).WithTimeout(30*time.Second).Should(BeZero(),
				"every LabResource of %s records its delivered CREATED", c.o.ns)
			Eventually(func() (int, error) { return countPhase(ctx, c.o.ns, labhookv1alpha1.MessageDelivered) }).
				WithTimeout(30*time.Second).Should(BeNumerically(">=", len(c.msgs)), "every OutgoingMessage of %s is Delivered", c.o.ns)
		}

		By("no organisation heard from another shard")
		Expect(open.senders()).To(HaveKey("unsharded"))
		Expect(open.senders()).To(HaveLen(1), "the unassigned organisation is served by the unsharded manager only")
		// Messages created after the kill can only have come from the standby.
		Expect(two.senders()).To(SatisfyAll(HaveKey("two-a"), HaveKey("two-b")))
		Expect(two.senders()).To(HaveLen(2), "organisation two is served by shard two only: its leader, then the standby")
		Expect(one.senders()).To(SatisfyAll(HaveKey("one"), HaveKey("two-a"), HaveKey("two-b")))
		Expect(one.senders()).To(HaveLen(3), "organisation one is served by shard one, then by shard two only")
		lastOne := one.lastFrom("one")
		Expect(lastOne).To(BeTemporally("<", leftAt.Add(2*time.Second)),
			"shard one stops once it sees the label: at most requests it had in flight arrive after that")

		tOpen, tTwo, tOne := open.tally(msgsOpen, resOpen), two.tally(msgsTwo, resTwo), one.tally(msgsOne, resOne)
		report("shards: unassigned organisation %d messages + %d RESOURCE CREATED, lost %d, duplicated %d, all from the unsharded manager",
			len(msgsOpen), len(resOpen), tOpen.lost, tOpen.duplicated)
		report("shards: organisation of shard two %d + %d, lost %d, duplicated %d, from shard two only (%v)",
			len(msgsTwo), len(resTwo), tTwo.lost, tTwo.duplicated, two.senders())
		report("shards: moved organisation %d + %d, lost %d, duplicated %d; senders %v; shard one logged the move %s after the relabel, its last arrival came %s after the relabel; "+
			"shard two's leader delivered its first %s after the relabel; shard two's standby took the Lease %s after kill -9 of its leader",
			len(msgsOne), len(resOne), tOne.lost, tOne.duplicated, one.senders(), leftAt.Sub(movedAt).Round(time.Millisecond),
			lastOne.Sub(movedAt).Round(time.Millisecond), one.firstFrom("two-a", movedAt).Sub(movedAt).Round(time.Millisecond),
			takeover.Round(100*time.Millisecond))
		// At most what was in flight is sent twice: at the move, and at the kill.
		Expect(tOne.duplicated).To(BeNumerically("<=", 2*32), "duplicates are bounded by the requests in flight (32 per config)")
	}, SpecTimeout(4*time.Minute))
})
