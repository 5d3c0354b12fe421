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
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/stack"
)

// etcdDBSize reads etcd_mvcc_db_total_size_in_bytes from the suite's etcd.
func etcdDBSize() float64 {
	resp, err := http.Get(cl.EtcdMetricsURL())
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_mvcc_db_total_size_in_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			Expect(err).NotTo(HaveOccurred())
			return f
		}
	}
	Fail("etcd serves no etcd_mvcc_db_total_size_in_bytes")
	return 0
}

// parallel runs f for 0..n-1 from 16 goroutines and fails on the first error.
func parallel(n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		Expect(err).NotTo(HaveOccurred())
	}
}

// messageContext is what the receiver checks in a RESOURCE message's context.
type messageContext struct {
	Generation int64 `json:"generation"`
	Spec       struct {
		Name               string `json:"name"`
		RestartRequestedAt string `json:"restart_requested_at"`
	} `json:"spec"`
}

var _ = Describe("Bounded outbox", func() {
	It("keeps lab OutgoingMessages under the cap through a receiver outage with a kill -9, and drains in order within a minute", func(ctx SpecContext) {
		const (
			resources = 300
			changes   = 10
			deleted   = 20
			cap       = 50
		)
		bin := binary("manager")
		o := newOutbox(ctx, "rel-bounded")
		args := []string{fmt.Sprintf("--max-pending-lab-messages=%d", cap), "--probe-interval=2s"}
		mgr, err := stack.Manager(bin, cl.Kubeconfig, logPath("manager-bounded"), args...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { mgr.Stop(10 * time.Second) })
		o.waitValid(ctx)

		lrs := make([]*labhookv1alpha1.LabResource, resources)
		parallel(resources, func(i int) error {
			id := fmt.Sprintf("bounded-%03d", i)
			lrs[i] = &labhookv1alpha1.LabResource{
				ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: o.ns},
				Spec: labhookv1alpha1.LabResourceSpec{ID: id, Type: labhookv1alpha1.ResourceTypeURL, Name: "v0",
					Config: &labhookv1alpha1.LabResourceConfig{Address: "https://" + id + ".example.com"}},
			}
			return cl.Client.Create(ctx, lrs[i])
		})
		Eventually(func() (int, error) { return countOwing(ctx, o.ns) }).WithTimeout(60 * time.Second).Should(BeZero())
		before := etcdDBSize()
		arrivedBefore := len(o.rec.Arrivals())

		By("the receiver answers 503 while every resource changes 10 times, is restarted once and 20 are deleted")
		o.rec.SetDown(true)
		var mu sync.Mutex
		peak := 0
		stopPeak := make(chan struct{})
		peakDone := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(peakDone)
			for {
				var list labhookv1alpha1.OutgoingMessageList
				if err := cl.Client.List(ctx, &list, client.InNamespace(o.ns), client.HasLabels{labhookv1alpha1.LabelLabObjectUID}); err == nil {
					mu.Lock()
					peak = max(peak, len(list.Items))
					mu.Unlock()
				}
				select {
				case <-stopPeak:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		patch := func(lr *labhookv1alpha1.LabResource, body string) error {
			return cl.Client.Patch(ctx, lr, client.RawPatch("application/merge-patch+json", []byte(body)))
		}
		for round := 1; round <= changes; round++ {
			parallel(resources, func(i int) error { return patch(lrs[i], fmt.Sprintf(`{"spec":{"name":"v%d"}}`, round)) })
			if round == changes/2 {
				mgr.Kill()
				report("bounded outbox: manager killed with SIGKILL after round %d of %d during the outage", round, changes)
				mgr, err = stack.Manager(bin, cl.Kubeconfig, logPath("manager-bounded"), args...)
				Expect(err).NotTo(HaveOccurred())
			}
		}
		restartAt := metav1.NewTime(time.Now().Truncate(time.Second))
		parallel(resources, func(i int) error {
			return patch(lrs[i], fmt.Sprintf(`{"spec":{"restartRequestedAt":%q}}`, restartAt.UTC().Format(time.RFC3339)))
		})
		parallel(deleted, func(i int) error { return cl.Client.Delete(ctx, lrs[i]) })
		time.Sleep(5 * time.Second) // the manager settles; probes keep failing
		mu.Lock()
		peakDuring := peak
		mu.Unlock()
		refused := o.rec.Refused()
		Expect(peakDuring).To(BeNumerically("<=", cap), "lab OutgoingMessages never exceed --max-pending-lab-messages")
		Expect(refused).To(BeNumerically(">", 0))

		By("the receiver recovers")
		o.rec.SetDown(false)
		recovered := time.Now()
		Eventually(func() (int, error) { return countOwing(ctx, o.ns) }).WithTimeout(60*time.Second).WithPolling(500*time.Millisecond).
			Should(BeZero(), "0 objects owe a message within a minute of recovery")
		Eventually(func() (int, error) {
			var list labhookv1alpha1.LabResourceList
			err := cl.Client.List(ctx, &list, client.InNamespace(o.ns))
			return len(list.Items), err
		}).WithTimeout(60*time.Second).Should(Equal(resources-deleted), "every deleted resource sent its DELETED and went")
		drained := time.Since(recovered)
		close(stopPeak)
		<-peakDone

		// What arrived after the outage began, first arrival of each id.
		type arrival struct {
			status string
			ctx    messageContext
		}
		perEntity := map[string][]arrival{}
		seen := map[string]int{}
		dups := 0
		for _, a := range o.rec.Arrivals()[arrivedBefore:] {
			m := a.Message
			if seen[m.MessageID]++; seen[m.MessageID] > 1 {
				dups++
				continue
			}
			var c messageContext
			Expect(json.Unmarshal(m.Context, &c)).To(Succeed())
			perEntity[m.EntityIDs[0]] = append(perEntity[m.EntityIDs[0]], arrival{m.Status, c})
		}
		var problems []string
		for i, lr := range lrs {
			got := perEntity[lr.Spec.ID]
			if len(got) == 0 {
				problems = append(problems, lr.Spec.ID+": nothing arrived")
				continue
			}
			last := got[len(got)-1]
			restarted := false
			for k, a := range got {
				if k > 0 && a.ctx.Generation < got[k-1].ctx.Generation {
					problems = append(problems, fmt.Sprintf("%s: generation %d arrived after %d", lr.Spec.ID, a.ctx.Generation, got[k-1].ctx.Generation))
				}
				if a.status == wire.StatusRestarted && a.ctx.Spec.RestartRequestedAt == wire.FormatTimestamp(restartAt.Time) {
					restarted = true
				}
			}
			if !restarted {
				problems = append(problems, lr.Spec.ID+": no RESTARTED with the requested time")
			}
			if last.ctx.Spec.Name != fmt.Sprintf("v%d", changes) {
				problems = append(problems, fmt.Sprintf("%s: the last message carries name %q", lr.Spec.ID, last.ctx.Spec.Name))
			}
			if i < deleted && last.status != wire.StatusDeleted {
				problems = append(problems, fmt.Sprintf("%s: deleted, but the last message is %s", lr.Spec.ID, last.status))
			}
		}
		after := etcdDBSize()
		messages := 0
		for _, got := range perEntity {
			messages += len(got)
		}
		report("bounded outbox: %d resources x %d changes + 1 restart, %d deleted, receiver down (%d refused requests), kill -9 once; "+
			"peak lab OutgoingMessages %d (cap %d); after recovery everything delivered in %s (%d messages, %d duplicates); "+
			"etcd_mvcc_db_total_size_in_bytes %.1f MiB before the outage, %.1f MiB after",
			resources, changes, deleted, refused, peakDuring, cap, drained.Round(100*time.Millisecond), messages, dups,
			before/(1<<20), after/(1<<20))
		Expect(problems).To(BeEmpty())
	}, SpecTimeout(6*time.Minute))
})
