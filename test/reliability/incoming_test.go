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
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/test/internal/seedmsg"
	"github.com/labhook/labhook/test/internal/stack"
)

var _ = Describe("Incoming", func() {
	It("answers a burst over the rate limit with 2xx and 429 only, and writes accepted messages whole", func(ctx SpecContext) {
		bin := binary("webhookserver")
		ex, err := seedmsg.Load(root)
		Expect(err).NotTo(HaveOccurred())
		ns := newNamespace(ctx, "rel-burst")
		auth, err := cl.APIKey(ctx, ns, "burst-api-key-0123456789abcdef")
		Expect(err).NotTo(HaveOccurred())
		ws, base, err := stack.WebhookServer(bin, cl.Kubeconfig, logPath("webhookserver-burst"), "--rate-limit=5")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { ws.Stop(10 * time.Second) })

		// 80 fresh seed messages from 40 clients at once.
		const total, clients = 80, 40
		type answer struct {
			msg        seedmsg.Message
			code       int
			retryAfter string
			body       string
		}
		answers := make([]answer, total)
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		var wg sync.WaitGroup
		next := make(chan int, total)
		for i := range total {
			next <- i
		}
		close(next)
		for range clients {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for i := range next {
					m := ex.Fresh("burst", i)
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/webhooks/events/incoming", bytes.NewReader(m.Body))
					req.Header.Set("Authorization", "Bearer "+auth)
					req.Header.Set("Content-Type", "application/json")
					resp, err := hc.Do(req)
					Expect(err).NotTo(HaveOccurred())
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					answers[i] = answer{msg: m, code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
				}
			}()
		}
		wg.Wait()

		codes := map[int]int{}
		var unexpected []string
		for _, a := range answers {
			codes[a.code]++
			if a.code/100 != 2 && a.code != http.StatusTooManyRequests {
				unexpected = append(unexpected, fmt.Sprintf("%d %s", a.code, a.body))
			}
			if a.code == http.StatusTooManyRequests {
				Expect(a.retryAfter).NotTo(BeEmpty(), "a 429 must say when to retry")
			}
		}
		keys := make([]int, 0, len(codes))
		for c := range codes {
			keys = append(keys, c)
		}
		sort.Ints(keys)
		summary := ""
		for _, c := range keys {
			summary += fmt.Sprintf(" %d:%d", c, codes[c])
		}
		Expect(unexpected).To(BeEmpty(), "only 2xx and 429 are acceptable under a burst")
		Expect(codes[http.StatusTooManyRequests]).To(BeNumerically(">", 0), "a burst of %d over --rate-limit=5 should be limited; codes%s", total, summary)

		// Every accepted message has all its objects; every refused one has none.
		halfWritten := 0
		for _, a := range answers {
			want := a.msg.Objects(ns)
			present := 0
			for i, r := range want.Resources {
				var got labhookv1alpha1.LabResource
				err := cl.Client.Get(ctx, client.ObjectKeyFromObject(r), &got)
				if err == nil {
					present++
					if a.code/100 == 2 && got.Status.Phase != want.Phases[i] {
						halfWritten++
					}
				} else {
					Expect(apierrors.IsNotFound(err)).To(BeTrue())
				}
			}
			var lis labhookv1alpha1.LabInterfaceList
			Expect(cl.Client.List(ctx, &lis, client.InNamespace(ns))).To(Succeed())
			ids := map[string]bool{}
			for _, id := range a.msg.ResourceIDs {
				ids[id] = true
			}
			for _, li := range lis.Items {
				if ids[li.Spec.ResourceRef.Name] {
					present++
				}
			}
			full := len(want.Resources) + len(want.Interfaces)
			switch {
			case a.code/100 == 2 && present != full:
				halfWritten++
			case a.code == http.StatusTooManyRequests && present != 0:
				halfWritten++
			}
		}
		report("webhookserver burst of %d messages from %d clients at --rate-limit=5: codes%s, half-written %d", total, clients, summary, halfWritten)
		Expect(halfWritten).To(BeZero())
	}, SpecTimeout(2*time.Minute))
})
