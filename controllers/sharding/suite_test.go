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
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/sharding"
	"github.com/labhook/labhook/internal/testenv"
)

var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
	nsCounter atomic.Int64
)

func TestSharding(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	RunSpecs(t, "Sharding Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	testEnv, cfg, k8sClient, err = testenv.Start(filepath.Join("..", ".."), scheme)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// organisation creates a namespace, labelled for shard unless it is "".
func organisation(ctx context.Context, prefix, shard string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, nsCounter.Add(1))}}
	if shard != "" {
		ns.Labels = map[string]string{labhookv1alpha1.LabelShard: shard}
	}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// relabel sets (or, for "", removes) a namespace's shard label.
func relabel(ctx context.Context, ns, shard string) {
	value := "null"
	if shard != "" {
		value = fmt.Sprintf("%q", shard)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, labhookv1alpha1.LabelShard, value)
	Expect(k8sClient.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		client.RawPatch("application/merge-patch+json", []byte(patch)))).To(Succeed())
}

// resource creates a LabResource named name in ns.
func resource(ctx context.Context, ns, name string) *labhookv1alpha1.LabResource {
	lr := &labhookv1alpha1.LabResource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: labhookv1alpha1.LabResourceSpec{ID: name, Type: labhookv1alpha1.ResourceTypeURL, Name: name,
			Config: &labhookv1alpha1.LabResourceConfig{Address: "https://" + name + ".example.com"}},
	}
	Expect(k8sClient.Create(ctx, lr)).To(Succeed())
	return lr
}

// shardCache is a manager's cache for one shard, as cmd/manager builds it,
// with the events its LabResource informer delivered.
type shardCache struct {
	cache.Cache
	orgs  *sharding.Organisations
	store toolscache.Store

	// secrets is the store of the Secret metadata informer.
	secrets toolscache.Store

	mu             sync.Mutex
	added, deleted map[string]int // namespace/name -> events
	updated        map[string]int
}

// startShard starts a cache for shard ("" for the unsharded manager) and
// waits until it has synced. It stops with the spec. With viaTransport,
// its HTTP client drops other shards' objects before they are decoded, as
// cmd/manager's does; without, the informers alone filter them.
func startShard(shard string, viaTransport bool) *shardCache {
	orgs, err := sharding.New(cfg, scheme, shard)
	Expect(err).NotTo(HaveOccurred())
	opts := cache.Options{Scheme: scheme}
	if viaTransport {
		c := rest.CopyConfig(cfg)
		c.Wrap(orgs.Transport)
		opts.HTTPClient, err = rest.HTTPClientFor(c)
		Expect(err).NotTo(HaveOccurred())
	}
	c, err := orgs.NewCache(cache.New)(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	s := &shardCache{Cache: c, orgs: orgs, added: map[string]int{}, deleted: map[string]int{}, updated: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	inf, err := c.GetInformer(ctx, &labhookv1alpha1.LabResource{})
	Expect(err).NotTo(HaveOccurred())
	s.store = inf.(toolscache.SharedIndexInformer).GetStore()
	key := func(obj any) string {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			return d.Key
		}
		o := obj.(client.Object)
		return o.GetNamespace() + "/" + o.GetName()
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.count(s.added, key(obj)) },
		UpdateFunc: func(_, obj any) { s.count(s.updated, key(obj)) },
		DeleteFunc: func(obj any) { s.count(s.deleted, key(obj)) },
	})
	Expect(err).NotTo(HaveOccurred())
	// Secrets as the manager watches them: metadata only.
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	sinf, err := c.GetInformer(ctx, meta)
	Expect(err).NotTo(HaveOccurred())
	s.secrets = sinf.(toolscache.SharedIndexInformer).GetStore()
	go func() {
		defer GinkgoRecover()
		Expect(c.Start(ctx)).To(Succeed())
	}()
	Expect(c.WaitForCacheSync(ctx)).To(BeTrue())
	return s
}

func (s *shardCache) count(m map[string]int, key string) {
	s.mu.Lock()
	m[key]++
	s.mu.Unlock()
}

func (s *shardCache) events(m map[string]int, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[key]
}

// storeNamespaces returns the namespaces of the objects an informer store
// holds, among those given.
func storeNamespaces(store toolscache.Store, among ...string) []string {
	want := map[string]bool{}
	for _, ns := range among {
		want[ns] = true
	}
	seen := map[string]bool{}
	for _, k := range store.ListKeys() {
		ns, _, _ := strings.Cut(k, "/")
		if want[ns] {
			seen[ns] = true
		}
	}
	out := []string{}
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// listed returns "namespace/name" of the LabResources a List through r
// returns, among the namespaces given.
func listed(ctx context.Context, r client.Reader, among ...string) []string {
	var list labhookv1alpha1.LabResourceList
	Expect(r.List(ctx, &list)).To(Succeed())
	want := map[string]bool{}
	for _, ns := range among {
		want[ns] = true
	}
	out := []string{}
	for _, lr := range list.Items {
		if want[lr.Namespace] {
			out = append(out, lr.Namespace+"/"+lr.Name)
		}
	}
	sort.Strings(out)
	return out
}
