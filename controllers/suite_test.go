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
	"net/netip"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/labhook/labhook/controllers"
	"github.com/labhook/labhook/internal/testenv"
)

// The suite runs one real kube-apiserver + etcd. Each test gets its own
// namespace (an organisation) and, when it needs controllers, its own
// manager whose cache sees only that namespace, so tests stay independent
// and a test can stop and restart "its" manager to simulate a crash.
var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	// Once for the whole suite: set in a BeforeEach, they leaked into the
	// specs that ran after it, in random order. 30s is long for a loopback
	// receiver, and still short for a 2-core machine shared by many builds.
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyDuration(time.Second)
	SetDefaultConsistentlyPollingInterval(50 * time.Millisecond)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	testEnv, cfg, k8sClient, err = testenv.Start("..", scheme)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// testOptions are the manager defaults with loopback receivers allowed and
// schedules shortened so retries happen within a test.
func testOptions() controllers.Options {
	o := controllers.DefaultOptions()
	o.Version = "test"
	o.AllowHTTP = true
	o.AllowedTargetCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	o.CallbackURL = "https://labhook.test/api/v1/webhooks/events/incoming"
	o.RetrySchedule = []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second, time.Second}
	o.TestBackoffMin = 500 * time.Millisecond
	o.TestBackoffMax = 2 * time.Second
	o.RotationGracePeriod = 3 * time.Second
	return o
}

// newNamespace creates a fresh organisation namespace for one test.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "org-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// startManager runs every labhook controller against namespace ns until the
// returned stop function is called (or the test ends). stop waits for the
// manager to exit, like a process that has died.
func startManager(ns string, opts controllers.Options) (stop func()) {
	return startManagerFor([]string{ns}, opts)
}

// startManagerFor is startManager for several organisations sharing one
// manager (and one delivery pool).
func startManagerFor(namespaces []string, opts controllers.Options) (stop func()) {
	caches := map[string]cache.Config{}
	for _, ns := range namespaces {
		caches[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: caches},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(mgr, opts)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
	}
	DeferCleanup(stop)
	return stop
}
