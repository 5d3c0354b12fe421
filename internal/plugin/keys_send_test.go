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

package plugin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/plugin"
	"github.com/labhook/labhook/internal/testenv"
	"github.com/labhook/labhook/webhookserver"
)

var seedExample = filepath.Join("..", "..", "config", "samples", "incoming", "seed-example.json")

// keyRE finds the key in `keys create`'s output.
var keyRE = regexp.MustCompile(`(?m)^  ([0-9a-f]{64})$`)

func apiKeySecrets(ctx context.Context, ns string) []corev1.Secret {
	var l corev1.SecretList
	Expect(k8sClient.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{labhookv1alpha1.LabelAPIKey: "true"})).To(Succeed())
	return l.Items
}

// startWebhookServer runs the real webhookserver, wired as
// cmd/webhookserver wires it, on loopback against the suite's API server.
func startWebhookServer() string {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: webhookserver.CacheOptions(),
	})
	Expect(err).NotTo(HaveOccurred())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	_, err = webhookserver.Setup(mgr, ln, webhookserver.DefaultOptions())
	Expect(err).NotTo(HaveOccurred())
	stop := testenv.Run(mgr)
	DeferCleanup(func() { Expect(stop()).To(Succeed()) })
	base := "http://" + ln.Addr().String()
	Eventually(testenv.StatusCode(http.DefaultClient, base+"/readyz")).Should(Equal(http.StatusOK))
	return base
}

var _ = Describe("keys create", func() {
	It("stores only the key's SHA-256 and prints the key once", func(ctx SpecContext) {
		org := newOrg(ctx)
		r := kubectl(ctx, "keys", "create", "--org", org)
		Expect(r.err).NotTo(HaveOccurred())
		m := keyRE.FindStringSubmatch(r.out)
		Expect(m).NotTo(BeNil(), r.out)
		key := m[1]
		Expect(r.out).To(ContainSubstring("Authorization: Bearer " + org + ":" + key))

		secrets := apiKeySecrets(ctx, org)
		Expect(secrets).To(HaveLen(1))
		s := secrets[0]
		Expect(s.Name).To(HavePrefix("labhook-api-key-"))
		Expect(r.out).To(HavePrefix("secret/" + s.Name + " created in " + org))
		sum := sha256.Sum256([]byte(key))
		Expect(s.Data).To(Equal(map[string][]byte{labhookv1alpha1.SecretKeyAPIKeySHA256: []byte(hex.EncodeToString(sum[:]))}))
		Expect(s.Annotations).NotTo(HaveKey(labhookv1alpha1.AnnotationWebhookConfig))
	})

	It("names the WebhookConfig objects written through the key refer to", func(ctx SpecContext) {
		org := newOrg(ctx)
		createWHC(ctx, org, "emea", nil)
		r := kubectl(ctx, "keys", "create", "-n", org, "--config", "emea", "--name", "emea-key", "-o", "json")
		Expect(r.err).NotTo(HaveOccurred())
		var out struct{ Organisation, Secret, WebhookConfig, APIKey, Authorization string }
		Expect(json.Unmarshal([]byte(r.out), &out)).To(Succeed())
		Expect(out.Organisation).To(Equal(org))
		Expect(out.Secret).To(Equal("emea-key"))
		Expect(out.Authorization).To(Equal("Bearer " + org + ":" + out.APIKey))
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: org, Name: "emea-key"}, &s)).To(Succeed())
		Expect(s.Annotations).To(HaveKeyWithValue(labhookv1alpha1.AnnotationWebhookConfig, "emea"))
	})

	DescribeTable("refuses what cannot work, and creates nothing",
		func(ctx SpecContext, args func(org string) []string, wantErr string) {
			org := newOrg(ctx)
			r := kubectl(ctx, append([]string{"keys", "create"}, args(org)...)...)
			Expect(r.err).To(MatchError(MatchRegexp(wantErr)))
			Expect(apiKeySecrets(ctx, org)).To(BeEmpty())
		},
		Entry("a WebhookConfig that does not exist", func(org string) []string { return []string{"--org", org, "--config", "nope"} },
			`^--config nope: webhookconfig/nope in org-\w+: .*not found`),
		Entry("an organisation that does not exist", func(string) []string { return []string{"--org", "no-such-org"} },
			`^organisation no-such-org: namespace not found$`),
		Entry("an invalid Secret name", func(org string) []string { return []string{"--org", org, "--name", "Bad_Name"} },
			`^--name "Bad_Name": `),
	)
})

var _ = Describe("send", func() {
	It("posts a message with a key from keys create, and the real webhookserver writes its objects", func(ctx SpecContext) {
		base := startWebhookServer()
		org := newOrg(ctx)
		r := kubectl(ctx, "keys", "create", "--org", org)
		Expect(r.err).NotTo(HaveOccurred())
		keyFile := filepath.Join(GinkgoT().TempDir(), "key")
		Expect(os.WriteFile(keyFile, []byte(keyRE.FindStringSubmatch(r.out)[1]+"\n"), 0o600)).To(Succeed())

		By("a wrong key is answered 401 and the exit status says so")
		r = run(ctx, plugin.Options{Getenv: func(k string) string {
			return map[string]string{plugin.EnvAPIKey: "wrong", plugin.EnvURL: base}[k]
		}}, "send", "--org", org, "-f", seedExample)
		Expect(r.err).To(MatchError("the webhookserver answered 401 Unauthorized"))
		Expect(r.out).To(HavePrefix("HTTP 401 Unauthorized\n"))

		By("the key the plugin made authenticates the organisation")
		Eventually(func(g Gomega) {
			r = kubectl(ctx, "send", "--org", org, "-f", seedExample, "--key-file", keyFile, "--url", base)
			g.Expect(r.err).NotTo(HaveOccurred())
		}).Should(Succeed(), "the webhookserver's cache sees the new key Secret")
		Expect(r.out).To(HavePrefix("HTTP 200 OK\n{\n  \"source_message_id\""))
		var lr labhookv1alpha1.LabResource
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: org, Name: "25f377ac"}, &lr)).To(Succeed())
	})

	It("sends exactly what a backend sends, and prints any answer", func(ctx SpecContext) {
		var mu sync.Mutex
		var got *http.Request
		var gotBody []byte
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			got, gotBody = req, must(io.ReadAll(req.Body))
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"rate limit"}`))
		}))
		DeferCleanup(srv.Close)
		r := run(ctx, plugin.Options{Getenv: func(k string) string { return map[string]string{plugin.EnvAPIKey: "k3y"}[k] }},
			"send", "--org", "acme", "-f", seedExample, "--url", srv.URL)
		Expect(r.err).To(MatchError("the webhookserver answered 429 Too Many Requests"))
		Expect(r.out).To(Equal("HTTP 429 Too Many Requests\nRetry-After: 7\n{\n  \"error\": \"rate limit\"\n}\n"))
		mu.Lock()
		defer mu.Unlock()
		Expect(got.Method).To(Equal(http.MethodPost))
		Expect(got.URL.Path).To(Equal(plugin.IncomingPath), "a URL without a path gets the incoming path")
		Expect(got.Header.Get("Authorization")).To(Equal("Bearer acme:k3y"))
		Expect(got.Header.Get("Content-Type")).To(Equal("application/json"))
		Expect(gotBody).To(Equal(must(os.ReadFile(seedExample))), "byte for byte")
	})

	It("does not follow a redirect", func(ctx SpecContext) {
		srv := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/", http.StatusFound))
		DeferCleanup(srv.Close)
		r := kubectl(ctx, "send", "--org", "acme", "-f", seedExample, "--key", "k", "--url", srv.URL+"/in")
		Expect(r.err).To(MatchError("the webhookserver answered 302 Found"))
	})

	DescribeTable("refuses bad input before sending anything",
		func(ctx SpecContext, args []string, wantErr string) {
			Expect(kubectl(ctx, append([]string{"send", "--org", "acme"}, args...)...).err).To(MatchError(wantErr))
		},
		Entry("no key", []string{"-f", seedExample}, "no API key: use --key-file FILE, $LABHOOK_API_KEY or --key (kubectl labhook keys create makes one)"),
		Entry("no message", []string{"--key", "k"}, `required flag(s) "filename" not set`),
		Entry("two keys", []string{"-f", seedExample, "--key", "k", "--key-file", "f"}, "if any flags in the group [key key-file] are set none of the others can be; [key key-file] were all set"),
		Entry("a URL that is not http", []string{"-f", seedExample, "--key", "k", "--url", "ftp://x"}, `--url "ftp://x": must be an http:// or https:// URL with a host`),
		Entry("a missing file", []string{"-f", "/nonexistent.json", "--key", "k"}, "-f: open /nonexistent.json: no such file or directory"),
	)
})

func must[T any](v T, err error) T {
	Expect(err).NotTo(HaveOccurred())
	return v
}
