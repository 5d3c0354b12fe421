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

package sharding_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/sharding"
)

var _ = Describe("Organisations of a shard", func() {
	It("keeps only its organisations' objects, in memory and in every read", func(ctx SpecContext) {
		alphaNS := organisation(ctx, "keep-alpha", "alpha")
		betaNS := organisation(ctx, "keep-beta", "beta")
		openNS := organisation(ctx, "keep-unassigned", "")
		all := []string{alphaNS, betaNS, openNS}
		for _, ns := range all {
			resource(ctx, ns, "before-start")
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "key", Namespace: ns}})).To(Succeed())
		}
		alpha, beta, open := startShard("alpha", true), startShard("beta", false), startShard("", true)
		for _, ns := range all {
			resource(ctx, ns, "after-start") // arrives through the watch
		}

		for _, c := range []struct {
			cache *shardCache
			own   string
		}{{alpha, alphaNS}, {beta, betaNS}, {open, openNS}} {
			By("shard " + c.cache.orgs.Shard() + " serving " + c.own)
			Eventually(func() []string { return listed(ctx, c.cache, all...) }).Should(Equal([]string{
				c.own + "/after-start", c.own + "/before-start"}))
			Expect(storeNamespaces(c.cache.store, all...)).To(Equal([]string{c.own}),
				"the informer holds nothing of other shards' organisations")
			Expect(storeNamespaces(c.cache.secrets, all...)).To(Equal([]string{c.own}),
				"the Secret metadata informer neither")
			for _, ns := range all {
				var lr labhookv1alpha1.LabResource
				err := c.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "before-start"}, &lr)
				var list labhookv1alpha1.LabResourceList
				Expect(c.cache.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
				if ns == c.own {
					Expect(err).NotTo(HaveOccurred())
					Expect(list.Items).To(HaveLen(2))
					continue
				}
				Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Get in %s: %v", ns, err)
				Expect(list.Items).To(BeEmpty())
			}
		}
		Expect(alpha.orgs.Namespaces()).To(BeNumerically(">=", 1))
	})

	It("moves an organisation: the old shard lets go at once, the new one gets its objects as creations", func(ctx SpecContext) {
		ns := organisation(ctx, "move", "alpha")
		names := []string{"r1", "r2", "r3"}
		for _, n := range names {
			resource(ctx, ns, n)
		}
		alpha, beta := startShard("alpha", true), startShard("beta", false)
		Eventually(func() []string { return listed(ctx, alpha, ns) }).Should(HaveLen(3))
		Expect(listed(ctx, beta, ns)).To(BeEmpty())
		Expect(beta.events(beta.added, ns+"/r1")).To(BeZero())

		relabel(ctx, ns, "beta")
		By("the old shard reads nothing of it as soon as it sees the label")
		Eventually(func() bool {
			return apierrors.IsNotFound(alpha.Get(ctx, client.ObjectKey{Namespace: ns, Name: "r1"}, &labhookv1alpha1.LabResource{}))
		}).Should(BeTrue())
		By("its informer drops the objects, each as a deletion")
		Eventually(func() []string { return storeNamespaces(alpha.store, ns) }).Should(BeEmpty())
		for _, n := range names {
			Expect(alpha.events(alpha.deleted, ns+"/"+n)).To(Equal(1), n)
		}
		By("the new shard gets them as creations, unchanged in the API")
		Eventually(func() []string { return listed(ctx, beta, ns) }).Should(Equal([]string{ns + "/r1", ns + "/r2", ns + "/r3"}))
		for _, n := range names {
			Expect(beta.events(beta.added, ns+"/"+n)).To(Equal(1), n)
		}

		By("later changes reach the new shard only")
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"name":"changed"}}`))
		Expect(k8sClient.Patch(ctx, &labhookv1alpha1.LabResource{ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: ns}}, patch)).To(Succeed())
		Eventually(func() string {
			var lr labhookv1alpha1.LabResource
			_ = beta.Get(ctx, client.ObjectKey{Namespace: ns, Name: "r1"}, &lr)
			return lr.Spec.Name
		}).Should(Equal("changed"))
		Consistently(func() []string { return storeNamespaces(alpha.store, ns) }).WithTimeout(time.Second).Should(BeEmpty())
		Expect(alpha.events(alpha.updated, ns+"/r1")).To(BeZero())

		By("and back: the first shard gets them again")
		relabel(ctx, ns, "alpha")
		Eventually(func() []string { return listed(ctx, alpha, ns) }).Should(HaveLen(3))
		Eventually(func() []string { return storeNamespaces(beta.store, ns) }).Should(BeEmpty())
		Expect(alpha.events(alpha.added, ns+"/r1")).To(Equal(2))
	})

	It("hands an organisation whose label is removed to the unsharded manager, and takes it back", func(ctx SpecContext) {
		ns := organisation(ctx, "unlabel", "alpha")
		resource(ctx, ns, "r1")
		alpha, open := startShard("alpha", false), startShard("", true)
		Eventually(func() []string { return listed(ctx, alpha, ns) }).Should(HaveLen(1))
		Expect(listed(ctx, open, ns)).To(BeEmpty())

		relabel(ctx, ns, "")
		Eventually(func() []string { return listed(ctx, open, ns) }).Should(Equal([]string{ns + "/r1"}))
		Eventually(func() []string { return storeNamespaces(alpha.store, ns) }).Should(BeEmpty())

		relabel(ctx, ns, "alpha")
		Eventually(func() []string { return listed(ctx, alpha, ns) }).Should(Equal([]string{ns + "/r1"}))
		Eventually(func() []string { return storeNamespaces(open.store, ns) }).Should(BeEmpty())
	})

	It("lists nothing again for an organisation created with its label", func(ctx SpecContext) {
		alpha, beta, open := startShard("alpha", true), startShard("beta", true), startShard("", true)
		// Let the caches settle; then count.
		time.Sleep(500 * time.Millisecond)
		before := sharding.Relists()
		ns := organisation(ctx, "new", "alpha")
		// Its objects usually arrive after its Namespace; when one arrives
		// first, the shards list again (no object is lost, the case of
		// "moves an organisation"). Here the Namespace is seen first.
		Eventually(func() bool { return alpha.orgs.Has(ns) && !open.orgs.Has(ns) }).Should(BeTrue())
		resource(ctx, ns, "r1")
		Eventually(func() []string { return listed(ctx, alpha, ns) }).Should(Equal([]string{ns + "/r1"}))
		Consistently(func() float64 { return sharding.Relists() }).WithTimeout(2*time.Second).Should(Equal(before),
			"neither the shard that gets it nor the others list again")
		Expect(listed(ctx, beta, ns)).To(BeEmpty())
		Expect(listed(ctx, open, ns)).To(BeEmpty())
		Expect(storeNamespaces(open.store, ns)).To(BeEmpty())
	})

	It("lists again when objects of a namespace arrive before its Namespace: the shard it names gets them, the others lose them", func(ctx SpecContext) {
		alpha, open := startShard("alpha", true), startShard("", true)
		var early []string // namespaces that do not exist yet
		for range 2 {
			early = append(early, fmt.Sprintf("early-%d", nsCounter.Add(1)))
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			var items []string
			for _, ns := range early {
				items = append(items, fmt.Sprintf(`{"apiVersion":"labhook.io/v1alpha1","kind":"LabResource","metadata":{"name":"r1","namespace":%q}}`, ns))
			}
			fmt.Fprintf(w, `{"apiVersion":"labhook.io/v1alpha1","kind":"LabResourceList","metadata":{"resourceVersion":"7"},"items":[%s]}`,
				strings.Join(items, ","))
		}))
		DeferCleanup(srv.Close)
		namespacesIn := func(s *shardCache) []string {
			resp, err := (&http.Client{Transport: s.orgs.Transport(http.DefaultTransport)}).Get(srv.URL)
			Expect(err).NotTo(HaveOccurred())
			defer func() { _ = resp.Body.Close() }()
			var list labhookv1alpha1.LabResourceList
			Expect(json.NewDecoder(resp.Body).Decode(&list)).To(Succeed())
			out := []string{}
			for _, lr := range list.Items {
				out = append(out, lr.Namespace)
			}
			return out
		}
		By("a shard leaves out the objects of a namespace it has not seen; the unsharded manager lets them in")
		Expect(namespacesIn(alpha)).To(BeEmpty())
		Expect(namespacesIn(open)).To(Equal(early))

		create := func(name, shard string) {
			Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
				Labels: map[string]string{labhookv1alpha1.LabelShard: shard}}})).To(Succeed())
		}
		By("the first Namespace shows shard alpha: alpha's two informers list again to get what they left out, " +
			"the unsharded manager's two to drop what they let in")
		before := sharding.Relists()
		create(early[0], "alpha")
		Eventually(sharding.Relists).Should(Equal(before + 4))
		// The lists come after the reflectors' back-off (0.8 s or more);
		// until they are done, another change shares them.
		Eventually(func() int { return sharding.StaleScopes(alpha.orgs) + sharding.StaleScopes(open.orgs) }).Should(BeZero())
		Expect(sharding.Relists()).To(Equal(before + 4))

		By("the second shows shard beta: only the unsharded manager's informers list again; alpha left it out, as it should")
		create(early[1], "beta")
		Eventually(sharding.Relists).Should(Equal(before + 6))
		Consistently(sharding.Relists).WithTimeout(time.Second).Should(Equal(before + 6))
		Expect(namespacesIn(alpha)).To(Equal(early[:1]))
		Expect(namespacesIn(open)).To(BeEmpty())
	})

	It("answers NotFound and empty lists outside the shard through the uncached reader", func(ctx SpecContext) {
		alphaNS := organisation(ctx, "reader-alpha", "alpha")
		betaNS := organisation(ctx, "reader-beta", "beta")
		resource(ctx, alphaNS, "r1")
		resource(ctx, betaNS, "r1")
		alpha := startShard("alpha", true)
		r := alpha.orgs.Reader(k8sClient)
		Expect(r.Get(ctx, client.ObjectKey{Namespace: alphaNS, Name: "r1"}, &labhookv1alpha1.LabResource{})).To(Succeed())
		err := r.Get(ctx, client.ObjectKey{Namespace: betaNS, Name: "r1"}, &labhookv1alpha1.LabResource{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("labresources"))
		Expect(listed(ctx, r, alphaNS, betaNS)).To(Equal([]string{alphaNS + "/r1"}))
		var list labhookv1alpha1.LabResourceList
		Expect(r.List(ctx, &list, client.InNamespace(betaNS))).To(Succeed())
		Expect(list.Items).To(BeEmpty())
		By("cluster-scoped objects are not an organisation's")
		Expect(r.Get(ctx, client.ObjectKey{Name: betaNS}, &corev1.Namespace{})).To(Succeed())
	})

	It("drops other shards' objects from JSON lists and watch streams before anything decodes them", func(ctx SpecContext) {
		alphaNS := organisation(ctx, "wire-alpha", "alpha")
		betaNS := organisation(ctx, "wire-beta", "beta")
		alpha := startShard("alpha", true)
		item := func(ns, name string) string {
			return fmt.Sprintf(`{"apiVersion":"labhook.io/v1alpha1","kind":"LabResource","metadata":{"name":%q,"namespace":%q}}`, name, ns)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.URL.Query().Get("watch") == "true" {
				for _, ev := range []string{
					`{"type":"ADDED","object":` + item(betaNS, "b1") + `}`,
					`{"type":"ADDED","object":` + item(alphaNS, "a1") + `}`,
					`{"type":"MODIFIED","object":` + item(betaNS, "b1") + `}`,
					`{"type":"BOOKMARK","object":{"apiVersion":"labhook.io/v1alpha1","kind":"LabResource","metadata":{"resourceVersion":"9"}}}`,
					`{"type":"DELETED","object":` + item(alphaNS, "a1") + `}`,
				} {
					fmt.Fprintln(w, ev)
				}
				return
			}
			if r.URL.Query().Get("items") == "first" {
				// Items first, kept ones at both ends, white space anywhere.
				fmt.Fprintf(w, "{\n \"items\" : [\n  %s ,\n  %s,\n%s , %s\n ] ,\"apiVersion\":\"labhook.io/v1alpha1\",\"kind\":\"LabResourceList\",\"metadata\":{\"resourceVersion\":\"8\"}}\n",
					item(alphaNS, "a1"), item(betaNS, "b1"), item(betaNS, "b2"), item(alphaNS, "a2"))
				return
			}
			fmt.Fprintf(w, `{"apiVersion":"labhook.io/v1alpha1","kind":"LabResourceList","metadata":{"resourceVersion":"7"},"items":[%s,%s,%s]}`,
				item(betaNS, "b1"), item(alphaNS, "a1"), item(betaNS, "b2"))
		}))
		DeferCleanup(srv.Close)
		hc := &http.Client{Transport: alpha.orgs.Transport(http.DefaultTransport)}

		resp, err := hc.Get(srv.URL + "/apis/labhook.io/v1alpha1/labresources")
		Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var list labhookv1alpha1.LabResourceList
		Expect(json.Unmarshal(body, &list)).To(Succeed(), string(body))
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Namespace).To(Equal(alphaNS))
		Expect(list.ResourceVersion).To(Equal("7"))

		resp, err = hc.Get(srv.URL + "/apis/labhook.io/v1alpha1/labresources?items=first")
		Expect(err).NotTo(HaveOccurred())
		body, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		list = labhookv1alpha1.LabResourceList{}
		Expect(json.Unmarshal(body, &list)).To(Succeed(), string(body))
		Expect(list.Items).To(HaveLen(2), string(body))
		Expect([]string{list.Items[0].Name, list.Items[1].Name}).To(Equal([]string{"a1", "a2"}))
		Expect(list.ResourceVersion).To(Equal("8"))

		resp, err = hc.Get(srv.URL + "/apis/labhook.io/v1alpha1/labresources?watch=true")
		Expect(err).NotTo(HaveOccurred())
		body, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		Expect(lines).To(HaveLen(3), string(body))
		Expect(lines[0]).To(And(HavePrefix(`{"type":"ADDED"`), ContainSubstring(alphaNS)))
		Expect(lines[1]).To(HavePrefix(`{"type":"BOOKMARK"`))
		Expect(lines[2]).To(And(HavePrefix(`{"type":"DELETED"`), ContainSubstring(alphaNS)))
	})

	It("refuses a shard name that cannot be a label value and a Lease name, naming the flag", func() {
		for _, bad := range []string{"Alpha", "a_b", "-a", strings.Repeat("a", 64)} {
			err := sharding.ValidateName(bad)
			Expect(err).To(HaveOccurred(), bad)
			Expect(err.Error()).To(HavePrefix("--shard="))
		}
		Expect(sharding.ValidateName("eu-1")).To(Succeed())
		Expect(sharding.LeaderElectionID("")).To(Equal("labhook-manager.labhook.io"))
		Expect(sharding.LeaderElectionID("eu-1")).To(Equal("labhook-manager-eu-1.labhook.io"))
	})
})
