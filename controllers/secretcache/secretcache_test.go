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

package secretcache_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/labhook/labhook/controllers/secretcache"
	"github.com/labhook/labhook/internal/testenv"
)

var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
)

func TestSecretCache(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(20 * time.Second)
	RunSpecs(t, "Secret cache Suite")
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

// secretReads counts the API requests that read one Secret's data.
type secretReads struct {
	rt    http.RoundTripper
	path  string
	count atomic.Int64
	lists atomic.Int64
}

func (s *secretReads) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Path == s.path {
		s.count.Add(1)
	}
	// A list or watch of Secrets that asks for data (not metadata only).
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/secrets") &&
		!strings.Contains(r.Header.Get("Accept"), "as=PartialObjectMetadata") {
		s.lists.Add(1)
	}
	return s.rt.RoundTrip(r)
}

var _ = Describe("The manager's client", func() {
	var (
		ctx   context.Context
		ns    string
		mgr   ctrl.Manager
		reads *secretReads
	)
	BeforeEach(func() {
		ctx = context.Background()
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "org-"}}
		Expect(k8sClient.Create(ctx, nsObj)).To(Succeed())
		ns = nsObj.Name

		reads = &secretReads{path: "/api/v1/namespaces/" + ns + "/secrets/signing"}
		c := rest.CopyConfig(cfg)
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper { reads.rt = rt; return reads })
		var err error
		mgr, err = ctrl.NewManager(c, ctrl.Options{
			Scheme:                 scheme,
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			Cache:                  cache.Options{DefaultTransform: secretcache.Transform},
			NewClient:              secretcache.NewClient(64 << 10),
		})
		Expect(err).NotTo(HaveOccurred())
		mctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			Expect(mgr.Start(mctx)).To(Succeed())
		}()
		DeferCleanup(func() { cancel(); <-done })
	})

	secret := func(name string, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		return s
	}
	get := func(name string) (*corev1.Secret, error) {
		var s corev1.Secret
		err := mgr.GetClient().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
		return &s, err
	}

	It("reads a Secret's data from the API once per resourceVersion, not once per read", func() {
		secret("signing", map[string]string{"secret": "v1"})
		Eventually(func(g Gomega) {
			s, err := get("signing")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(s.Data["secret"])).To(Equal("v1"))
		}).Should(Succeed())
		before := reads.count.Load()
		for range 200 {
			s, err := get("signing")
			Expect(err).NotTo(HaveOccurred())
			Expect(string(s.Data["secret"])).To(Equal("v1"))
			s.Data["secret"] = []byte("changed by the caller") // must not reach the store
		}
		Expect(reads.count.Load()-before).To(BeNumerically("<=", 1), "200 reads of an unchanged Secret")

		By("a change is read once the metadata informer sees its new resourceVersion")
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signing"}, &s)).To(Succeed())
		s.Data["secret"] = []byte("v2")
		Expect(k8sClient.Update(ctx, &s)).To(Succeed())
		Eventually(func(g Gomega) {
			s, err := get("signing")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(s.Data["secret"])).To(Equal("v2"))
		}).Should(Succeed())

		By("a deleted Secret is NotFound")
		Expect(k8sClient.Delete(ctx, &s)).To(Succeed())
		Eventually(func() bool { _, err := get("signing"); return apierrors.IsNotFound(err) }).Should(BeTrue())

		By("no informer or list ever asked for Secret data")
		Expect(reads.lists.Load()).To(BeZero())
	})

	It("reads a Secret the informer has not seen yet from the API server", func() {
		secret("warmup", map[string]string{"k": "v"})
		Eventually(func() error { _, err := get("warmup"); return err }).Should(Succeed())
		secret("fresh", map[string]string{"k": "just created"})
		s, err := get("fresh") // at once: the informer may lag, the API does not
		Expect(err).NotTo(HaveOccurred())
		Expect(string(s.Data["k"])).To(Equal("just created"))
		_, err = get("never-created")
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
	})

	It("serves Secret metadata from the metadata informer, and keeps no data or last-applied copy there", func() {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "applied", Labels: map[string]string{"x": "y"},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"k":"c2VjcmV0"}}`}},
			StringData: map[string]string{"k": "secret"}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		Eventually(func() error {
			return mgr.GetClient().Get(ctx, client.ObjectKey{Namespace: ns, Name: "applied"}, m)
		}).Should(Succeed())
		Expect(m.Labels).To(HaveKeyWithValue("x", "y"))
		Expect(m.Annotations).NotTo(HaveKey("kubectl.kubernetes.io/last-applied-configuration"))
		Expect(m.ManagedFields).To(BeEmpty())
	})

	It("does not keep a Secret larger than its share of the budget", func() {
		secret("large", map[string]string{"blob": strings.Repeat("x", 8<<10)}) // over 64 KiB / 16
		reads.path = "/api/v1/namespaces/" + ns + "/secrets/large"
		Eventually(func() error { _, err := get("large"); return err }).Should(Succeed())
		before := reads.count.Load()
		for range 3 {
			s, err := get("large")
			Expect(err).NotTo(HaveOccurred())
			Expect(s.Data["blob"]).To(HaveLen(8 << 10))
		}
		Expect(reads.count.Load()-before).To(Equal(int64(3)), "read through every time")
	})
})

func TestTransformDropsSecretData(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}},
		Data: map[string][]byte{"k": []byte("v")}, StringData: map[string]string{"k": "v"}}
	out, err := secretcache.Transform(s)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Secret)
	if got.Data != nil || got.StringData != nil || got.ManagedFields != nil || len(got.Annotations) != 1 || got.Annotations["keep"] != "me" {
		t.Errorf("Transform left %+v", got)
	}
}
