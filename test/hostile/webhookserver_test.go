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

package hostile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/labhook/labhook/internal/cmdutil"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/seedmsg"
	"github.com/labhook/labhook/test/internal/stack"
	"github.com/labhook/labhook/webhookserver"
)

// deployed is the webhookserver container of config/manager/manager.yaml:
// the flags it runs with there and its memory limit.
type deployed struct {
	args        []string
	memoryLimit int64
}

func deployedWebhookServer() deployed {
	GinkgoHelper()
	raw, err := os.ReadFile(filepath.Join(root, "config", "manager", "manager.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var d appsv1.Deployment
	Expect(yaml.Unmarshal(raw, &d)).To(Succeed())
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "webhookserver" {
			continue
		}
		out := deployed{memoryLimit: c.Resources.Limits.Memory().Value()}
		for _, a := range c.Args {
			// The test picks its own free ports.
			if !strings.HasPrefix(a, "--bind-address") && !strings.HasPrefix(a, "--metrics-bind-address") {
				out.args = append(out.args, a)
			}
		}
		Expect(out.memoryLimit).To(BeNumerically(">", 0), "the webhookserver container has a memory limit")
		var fromEnv bool
		for _, e := range c.Env {
			fromEnv = fromEnv || (e.Name == cmdutil.MemoryLimitEnv && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil)
		}
		Expect(fromEnv).To(BeTrue(), "the manifest hands the container's memory limit to the Go runtime")
		return out
	}
	Fail("config/manager/manager.yaml has no webhookserver container")
	return deployed{}
}

// startDeployed runs the webhookserver binary as the manifest runs it: its
// flags and its memory limit in the environment.
func startDeployed(name string, d deployed, extra ...string) (*process.Process, string) {
	GinkgoHelper()
	os.Setenv(cmdutil.MemoryLimitEnv, strconv.FormatInt(d.memoryLimit, 10))
	defer os.Unsetenv(cmdutil.MemoryLimitEnv)
	ws, base, err := stack.WebhookServer(binary("webhookserver"), cl.Kubeconfig, logPath(name), append(slices.Clone(d.args), extra...)...)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { ws.Stop(10 * time.Second) })
	return ws, base
}

// organisation creates a namespace with an API key and returns the Bearer
// credential "<namespace>:<key>".
func organisation(ctx context.Context, prefix string) string {
	GinkgoHelper()
	ns := newNamespace(ctx, prefix)
	auth, err := cl.APIKey(ctx, ns, ns+"-api-key-0123456789abcdef")
	Expect(err).NotTo(HaveOccurred())
	return auth
}

func seedExample() *seedmsg.Example {
	GinkgoHelper()
	ex, err := seedmsg.Load(root)
	Expect(err).NotTo(HaveOccurred())
	return ex
}

// answer is what a client saw.
type answer struct {
	code       int
	retryAfter string
	body       string
	err        error
	took       time.Duration
}

var hc = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 512}}

func send(ctx context.Context, base, auth string, body []byte) answer {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+webhookserver.IncomingPath, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), err: err, took: time.Since(start)}
}

// padded is prefix, item repeated, suffix: exactly size bytes.
func padded(size int, prefix, item, suffix string) []byte {
	n := (size - len(prefix) - len(suffix)) / len(item)
	b := []byte(prefix + strings.Repeat(item, n) + suffix)
	return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
}

// floodBodies are maximum-size bodies built to cost memory: long lists,
// long strings, deep nesting, many keys, a large config.extra.
func floodBodies(size int) [][]byte {
	head := `{"source_message_id":"flood","type":"RESOURCE","action":"%s","timestamp":"2026-01-01T10:00:00Z","data":`
	del, cre := fmt.Sprintf(head, "DELETED"), fmt.Sprintf(head, "CREATED")
	return [][]byte{
		padded(size, del+`{"resources":[0`, `,0`, `]}}`),
		padded(size, cre+`{"resources":[{"id":"a","type":"VM","status":"READY","name":"`, `x`, `"}]}}`),
		padded(size, cre+`{"resources":[{"id":"a","type":"VM","status":"READY","config":{"extra":[`, `{"k":[1,2,3]},`, `0]}}]}}`),
		padded(size, cre+`{"resources":[{"id":"a","type":"VM","status":"READY","config":{"deep":`, `[`, ``),
		padded(size, del+`{"resources":[{"id":"a"`, `,"k":{"x":[null,true]}`, `}]}}`),
	}
}

var _ = Describe("Webhookserver", func() {
	It("stays under its manifest memory limit under 50 concurrent maximum-size bodies from one organisation, and serves another organisation meanwhile (issue 11 row 2)", func(ctx SpecContext) {
		d := deployedWebhookServer()
		ex := seedExample()
		hostile, victim := organisation(ctx, "flood"), organisation(ctx, "victim")
		ws, base := startDeployed("webhookserver-flood", d)
		maxBody := int(webhookserver.DefaultOptions().MaxBodyBytes)
		bodies := floodBodies(maxBody)
		rss, _, err := process.RSS(ws.PID())
		Expect(err).NotTo(HaveOccurred())

		// The victim keeps sending while the flood runs.
		var victimAnswers []answer
		stop := make(chan struct{})
		victimDone := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(victimDone)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				victimAnswers = append(victimAnswers, send(ctx, base, victim, ex.Fresh("victim", i).Body))
			}
		}()

		// Waves of 50 concurrent bodies, for 5 seconds at least.
		const flood = 50
		var answers []answer
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
			wave := make([]answer, flood)
			var wg sync.WaitGroup
			for i := range flood {
				wg.Go(func() { wave[i] = send(ctx, base, hostile, bodies[i%len(bodies)]) })
			}
			wg.Wait()
			answers = append(answers, wave...)
		}
		close(stop)
		<-victimDone
		_, peak, err := process.RSS(ws.PID())
		Expect(err).NotTo(HaveOccurred())

		codes := refusedAll(answers)
		Expect(len(victimAnswers)).To(BeNumerically(">=", 3), "the other organisation was served during the flood")
		for i, a := range victimAnswers {
			Expect(a.err).NotTo(HaveOccurred())
			Expect(a.code).To(Equal(http.StatusOK), "victim message %d: %s", i, a.body)
		}
		report("webhookserver under waves of %d concurrent %d-byte bodies from one organisation (%d in all): peak RSS %.1f MiB (idle %.1f MiB, manifest limit %d MiB); flood answers %v; the other organisation's %d messages meanwhile all 200",
			flood, maxBody, len(answers), float64(peak)/(1<<20), float64(rss)/(1<<20), d.memoryLimit>>20, codes, len(victimAnswers))
		Expect(peak).To(BeNumerically("<", d.memoryLimit), "peak RSS under the manifest's memory limit")
	}, SpecTimeout(3*time.Minute))

	It("stays under its memory limit when many organisations flood at once (past the global caps: 503 with Retry-After)", func(ctx SpecContext) {
		d := deployedWebhookServer()
		ws, base := startDeployed("webhookserver-flood-many", d)
		bodies := floodBodies(int(webhookserver.DefaultOptions().MaxBodyBytes))
		const orgs, perOrg = 8, 25
		var auths []string
		for range orgs {
			auths = append(auths, organisation(ctx, "many"))
		}
		// Wait until every key is known (the webhookserver's cache).
		for _, auth := range auths {
			Eventually(func() int { return send(ctx, base, auth, []byte(`{}`)).code }).Should(Equal(http.StatusBadRequest))
		}
		answers := make([]answer, orgs*perOrg)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() { answers[i] = send(ctx, base, auths[i%orgs], bodies[i%len(bodies)]) })
		}
		wg.Wait()
		_, peak, err := process.RSS(ws.PID())
		Expect(err).NotTo(HaveOccurred())
		codes := refusedAll(answers)
		report("webhookserver under %d concurrent maximum-size bodies from %d organisations: peak RSS %.1f MiB (manifest limit %d MiB); answers %v",
			len(answers), orgs, float64(peak)/(1<<20), d.memoryLimit>>20, codes)
		Expect(peak).To(BeNumerically("<", d.memoryLimit))
	}, SpecTimeout(3*time.Minute))

	It("keeps another organisation's p99 within 2x while one floods with 600-object messages at its rate limit (issue 11 row 11)", func(ctx SpecContext) {
		d := deployedWebhookServer()
		ex := seedExample()
		a, b := organisation(ctx, "fair-a"), organisation(ctx, "fair-b")
		_, base := startDeployed("webhookserver-fair", d)
		rateLimit := webhookserver.DefaultOptions().RateLimit

		// B sends the seed example, one message after another, until
		// done is closed; its latencies are kept per phase.
		seq := 0
		quiet := func(done <-chan struct{}) []time.Duration {
			var out []time.Duration
			for ; ; seq++ {
				select {
				case <-done:
					return out
				default:
				}
				r := send(ctx, base, b, ex.Fresh("fair", seq).Body)
				Expect(r.err).NotTo(HaveOccurred())
				Expect(r.code).To(Equal(http.StatusOK), r.body)
				out = append(out, r.took)
			}
		}
		after := func(d time.Duration) <-chan struct{} {
			c := make(chan struct{})
			time.AfterFunc(d, func() { close(c) })
			return c
		}
		// A sends 600-object messages (100 resources, 500 interfaces) at
		// its rate limit for the window; the flood lasts until A's accepted
		// messages are applied.
		var floodSeq atomic.Int64
		floodCodes := map[int]int{}
		var floodMu sync.Mutex
		flood := func(window time.Duration) <-chan struct{} {
			done := make(chan struct{})
			go func() {
				defer GinkgoRecover()
				defer close(done)
				var wg sync.WaitGroup
				tick := time.NewTicker(time.Duration(float64(time.Second) / rateLimit))
				defer tick.Stop()
				for end := time.Now().Add(window); time.Now().Before(end); <-tick.C {
					wg.Go(func() {
						r := send(ctx, base, a, bigMessage(int(floodSeq.Add(1))))
						floodMu.Lock()
						floodCodes[r.code]++
						floodMu.Unlock()
						Expect(r.err).NotTo(HaveOccurred())
					})
				}
				wg.Wait()
			}()
			return done
		}

		// The phases take turns, so drift on a busy machine hits both. A
		// p99 of a few hundred samples is the third-worst one, so on a
		// 2-core machine shared with other test packages one scheduling
		// burst can move it: a measurement over the limit is taken again,
		// up to three times, and the spec fails only if every one is over.
		// Unfairness in the webhookserver (B waiting on A's locks, budget
		// or queue) is over the limit every time.
		const rounds, window, attempts = 3, 12 * time.Second, 3
		quiet(after(2 * time.Second)) // warm up
		var ratios []float64
		for attempt := 1; attempt <= attempts; attempt++ {
			var alone, flooded []time.Duration
			for range rounds {
				alone = append(alone, quiet(after(window))...)
				flooded = append(flooded, quiet(flood(window))...)
			}
			p99Alone, p99Flooded := percentile(alone, 0.99), percentile(flooded, 0.99)
			ratio := float64(p99Flooded) / float64(p99Alone)
			ratios = append(ratios, ratio)
			floodMu.Lock()
			report("fair share (measurement %d): organisation B's seed message p99 %s alone (%d messages, p50 %s) and %s while A floods with 600-object messages at --rate-limit %g (%d messages, p50 %s): ratio %.2f (limit 2); A's answers so far %v",
				attempt, p99Alone.Round(time.Millisecond), len(alone), percentile(alone, 0.5).Round(time.Millisecond),
				p99Flooded.Round(time.Millisecond), rateLimit, len(flooded), percentile(flooded, 0.5).Round(time.Millisecond),
				ratio, floodCodes)
			floodMu.Unlock()
			if ratio <= 2 {
				break
			}
		}
		Expect(floodCodes[http.StatusOK] + floodCodes[http.StatusTooManyRequests]).To(BeNumerically(">", 0))
		Expect(slices.Min(ratios)).To(BeNumerically("<=", 2), "p99 ratios of %d measurements: %v", len(ratios), ratios)
	}, SpecTimeout(12*time.Minute))
})

// refusedAll checks that every answer to a flood is a 4xx, or a 503 with
// Retry-After (429s too say when to retry), and never a reset or a 500; it
// counts them by code.
func refusedAll(answers []answer) map[int]int {
	GinkgoHelper()
	codes := map[int]int{}
	for i, a := range answers {
		Expect(a.err).NotTo(HaveOccurred(), "request %d: never a reset", i)
		codes[a.code]++
		Expect(a.code).To(BeElementOf(400, 413, 429, 503), "request %d: %s", i, a.body)
		if a.code == 429 || a.code == 503 {
			Expect(a.retryAfter).To(MatchRegexp(`^[1-9][0-9]*$`), "request %d says when to retry", i)
		}
	}
	return codes
}

// bigMessage is a CREATED of 100 resources with 5 interfaces each, with
// fresh ids.
func bigMessage(seq int) []byte {
	var res, ifs []string
	for r := range 100 {
		id := fmt.Sprintf("big-%d-%d", seq, r)
		res = append(res, fmt.Sprintf(`{"id":%q,"type":"VM","status":"STARTING","name":"lab","config":{"network_interface":{"public_ip":"10.0.%d.%d"}}}`, id, r/250, r%250+1))
		for i := range 5 {
			ifs = append(ifs, fmt.Sprintf(`{"name":"Interface %d","type":"WEB_PAGE","region":"us-east-1","resource_id":%q,"config":{"port":%d}}`, i, id, 8080+i))
		}
	}
	return []byte(fmt.Sprintf(`{"source_message_id":"big-%d","type":"RESOURCE","action":"CREATED","timestamp":"2026-01-01T10:00:00Z","data":{"resources":[%s],"interfaces":[%s]}}`,
		seq, strings.Join(res, ","), strings.Join(ifs, ",")))
}

// percentile is the q-quantile of ds (nearest rank).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
