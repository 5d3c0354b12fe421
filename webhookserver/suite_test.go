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

package webhookserver_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/testenv"
	"github.com/labhook/labhook/webhookserver"
)

// The suite runs one real kube-apiserver + etcd, and webhookservers on
// loopback in front of it: the shared one reaches the API server through a
// TCP proxy that a test can cut, to see 503s; tests that need other flags
// start their own.
var (
	cfg       *rest.Config
	k8sClient client.Client
	testEnv   *envtest.Environment
	scheme    = runtime.NewScheme()
	apiProxy  *proxy
	baseURL   string
)

func TestWebhookServer(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Webhookserver Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	testEnv, cfg, k8sClient, err = testenv.Start("..", scheme)
	Expect(err).NotTo(HaveOccurred())

	apiProxy = newProxy(cfg.Host)
	proxied := rest.CopyConfig(cfg)
	proxied.Host = "https://" + apiProxy.addr
	proxied.Timeout = 5 * time.Second
	baseURL = startServer(proxied, testOptions())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

func testOptions() webhookserver.Options {
	o := webhookserver.DefaultOptions()
	o.RateLimit = 0
	// newOrg polls until a new key works; failed attempts are throttled
	// only where a test says so.
	o.AuthFailureRate = 0
	o.RequestTimeout = 10 * time.Second
	o.RetryAfter = 2 * time.Second
	o.ShutdownTimeout = 5 * time.Second
	return o
}

// startServer runs a webhookserver with its own manager against c until
// the suite ends, and returns its base URL once /readyz answers.
func startServer(c *rest.Config, opts webhookserver.Options) string {
	mgr, err := ctrl.NewManager(c, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  webhookserver.CacheOptions(),
	})
	Expect(err).NotTo(HaveOccurred())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	_, err = webhookserver.Setup(mgr, ln, opts)
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	DeferCleanup(func() { cancel(); <-done })
	scheme := "http"
	if opts.TLSCertFile != "" {
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	Eventually(func() (int, error) {
		resp, err := hc.Get(base + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))
	return base
}

// serverWithRole runs a webhookserver as a user of its own, bound to the
// ClusterRole the markers generate (config/rbac/webhookserver/role.yaml),
// changed by edit when it is not nil, and returns its base URL.
func serverWithRole(ctx context.Context, name string, edit func(*rbacv1.ClusterRole), opts webhookserver.Options) string {
	GinkgoHelper()
	raw, err := os.ReadFile("../config/rbac/webhookserver/role.yaml")
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(raw, role)).To(Succeed())
	role.Name = name
	if edit != nil {
		edit(role)
	}
	Expect(k8sClient.Create(ctx, role)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}},
	})).To(Succeed())
	user, err := testEnv.AddUser(envtest.User{Name: name}, cfg)
	Expect(err).NotTo(HaveOccurred())
	return startServer(user.Config(), opts)
}

// newOrg creates an organisation namespace with one plain API key.
func newOrg(ctx context.Context) (string, string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "org-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	key := "key-" + ns.Name
	addKey(ctx, ns.Name, "api-key", labhookv1alpha1.SecretKeyAPIKey, key)
	// The key works once the shared webhookserver's cache has it: an empty
	// message is then refused as bad, not as unauthenticated.
	Eventually(func() int { return post(baseURL, ns.Name, key, []byte(`{}`)).code }).
		WithTimeout(20 * time.Second).Should(Equal(http.StatusBadRequest))
	return ns.Name, key
}

func addKey(ctx context.Context, ns, name, field, value string) {
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{labhookv1alpha1.LabelAPIKey: "true"}},
		StringData: map[string]string{field: value},
	})).To(Succeed())
}

// reply is an answer of the webhookserver.
type reply struct {
	code   int
	header http.Header
	body   webhookserver.Response
	raw    string
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// post sends body to the incoming endpoint at base with "Bearer org:key".
func post(base, org, key string, body []byte) reply {
	GinkgoHelper()
	req, err := http.NewRequest(http.MethodPost, base+webhookserver.IncomingPath, bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	if org != "" || key != "" {
		req.Header.Set("Authorization", "Bearer "+org+":"+key)
	}
	return do(httpClient, req)
}

func do(hc *http.Client, req *http.Request) reply {
	GinkgoHelper()
	resp, err := hc.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Header.Get("Content-Type")).To(Equal("application/json"), "every answer is JSON: %s", raw)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	Expect(json.Unmarshal(raw, &r.body)).To(Succeed(), string(raw))
	return r
}

// proxy forwards TCP to the API server until cut, and again once restored.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newProxy(target string) *proxy {
	u, err := url.Parse(target)
	Expect(err).NotTo(HaveOccurred())
	p := &proxy{target: u.Host, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// cut closes the listener and every open connection: the API server is
// gone for whoever is behind the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// restore listens again on the same address.
func (p *proxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	Expect(err).NotTo(HaveOccurred())
	p.serve(ln)
}
