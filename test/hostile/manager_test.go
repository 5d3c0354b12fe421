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
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/recorder"
	"github.com/labhook/labhook/test/internal/stack"
)

// The manager's rows of the threat model (docs/security.md): what a
// namespace editor, or an object stored under an older CRD, can do to the
// one manager every organisation shares. Each spec runs the real manager
// binary against the suite's kube-apiserver.

// managerSpec starts the manager binary for one spec, with kubeconfig, and
// stops it when the spec ends.
func managerSpec(name, kubeconfig string, extra ...string) *process.Process {
	p, err := stack.Manager(binary("manager"), kubeconfig, logPath(name), extra...)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { p.Stop(15 * time.Second) })
	return p
}

// org is an organisation with a default WebhookConfig "receiver" pointing
// at a loopback receiver that verifies every signature.
type org struct {
	ns  string
	rec *recorder.Recorder
}

func newOrg(ctx context.Context, prefix string) *org {
	secret, err := wire.GenerateSecret()
	Expect(err).NotTo(HaveOccurred())
	rec, err := recorder.Start(secret)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(rec.Close)
	o := &org{ns: newNamespace(ctx, prefix), rec: rec}
	Expect(cl.WebhookConfig(ctx, o.ns, "receiver", rec.URL, secret)).To(Succeed())
	return o
}

// valid waits until the manager has tested the config and found it valid.
func (o *org) valid(ctx context.Context) {
	GinkgoHelper()
	Eventually(func() (labhookv1alpha1.WebhookConfigState, error) {
		return cl.WebhookConfigState(ctx, o.ns, "receiver")
	}).Should(Equal(labhookv1alpha1.StateValid), "WebhookConfig %s/receiver", o.ns)
}

// arrived reports whether a message with this id reached the receiver.
func (o *org) arrived(id string) func() bool {
	return func() bool {
		return slices.ContainsFunc(o.rec.Arrivals(), func(a recorder.Arrival) bool { return a.Message.MessageID == id })
	}
}

// deliver creates an OutgoingMessage, as a platform component may, and
// waits until the receiver has it.
func (o *org) deliver(ctx context.Context, name string) {
	GinkgoHelper()
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.ns},
		Spec: labhookv1alpha1.OutgoingMessageSpec{Type: wire.TypeOndemandEnrollment, Status: "STARTED",
			EntityIDs: []string{name}},
	}
	Expect(cl.Client.Create(ctx, om)).To(Succeed())
	Eventually(o.arrived(name)).Should(BeTrue(), "message %s/%s delivered", o.ns, name)
}

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// relaxCRD removes validation keys from one property of an installed CRD,
// as an older version of the CRD would not have had them. path runs from
// the root schema's properties down, e.g. "spec", "restartRequestedAt".
func relaxCRD(ctx context.Context, name string, drop []string, path ...string) {
	GinkgoHelper()
	Eventually(func() error {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		if err := cl.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		fields := []string{"schema", "openAPIV3Schema"}
		for _, p := range path {
			fields = append(fields, "properties", p)
		}
		for i := range versions {
			v := versions[i].(map[string]any)
			prop, found, err := unstructured.NestedMap(v, fields...)
			if err != nil || !found {
				return fmt.Errorf("no %v in %s: %v", path, name, err)
			}
			for _, k := range drop {
				delete(prop, k)
			}
			if err := unstructured.SetNestedMap(v, prop, fields...); err != nil {
				return err
			}
		}
		if err := unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions"); err != nil {
			return err
		}
		return cl.Client.Update(ctx, crd)
	}).Should(Succeed())
}

// restoreCRD puts back the CRD of config/crd/bases.
func restoreCRD(ctx context.Context, name string) {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "labhook.io_"+strings.TrimSuffix(name, ".labhook.io")+".yaml"))
	Expect(err).NotTo(HaveOccurred())
	want := map[string]any{}
	Expect(yaml.Unmarshal(b, &want)).To(Succeed())
	Eventually(func() error {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		if err := cl.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return err
		}
		crd.Object["spec"] = want["spec"]
		return cl.Client.Update(ctx, crd)
	}).Should(Succeed())
}

// fromYAML decodes one object without the Go types, so a test can write
// what the Go types could not hold.
func fromYAML(doc string) *unstructured.Unstructured {
	m := map[string]any{}
	Expect(yaml.Unmarshal([]byte(doc), &m)).To(Succeed(), doc)
	return &unstructured.Unstructured{Object: m}
}

// deleteRaw deletes an object without decoding it, finalizers and all.
func deleteRaw(ctx context.Context, o *unstructured.Unstructured) {
	_ = cl.Client.Patch(ctx, o, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
	_ = client.IgnoreNotFound(cl.Client.Delete(ctx, o))
}

// rssMiB samples the resident memory of pid a few times and returns the
// median, in MiB.
func rssMiB(pid int) float64 {
	var samples []float64
	for range 5 {
		rss, _, err := process.RSS(pid)
		Expect(err).NotTo(HaveOccurred())
		samples = append(samples, float64(rss)/(1<<20))
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(samples)
	return samples[len(samples)/2]
}

var _ = Describe("The shared manager", func() {
	It("row 1: keeps testing every organisation's WebhookConfig and sending their messages while another's objects cannot be decoded", func(ctx SpecContext) {
		mgr := managerSpec("manager-undecodable", cl.Kubeconfig)
		before := newOrg(ctx, "decodable")
		before.valid(ctx)

		By("a namespace editor's objects, stored while an older CRD version without today's validation was installed")
		evil := newNamespace(ctx, "undecodable")
		relaxCRD(ctx, "labresources.labhook.io", []string{"pattern"}, "spec", "restartRequestedAt")
		relaxCRD(ctx, "webhookconfigs.labhook.io", []string{"pattern", "x-kubernetes-validations"}, "spec", "retry", "maxAge")
		relaxCRD(ctx, "webhookconfigs.labhook.io", []string{"pattern"}, "status", "lastTest", "duration")
		// Go's time decoder refuses a lower-case t; OpenAPI's date-time does not.
		lr := fromYAML(`
apiVersion: labhook.io/v1alpha1
kind: LabResource
metadata: {name: bad-time}
spec: {id: bad-time, type: VM, restartRequestedAt: "2026-11-25t06:00:00z"}`)
		lr.SetNamespace(evil)
		// Until the relaxed schema is served, the API server refuses it.
		Eventually(func() error { return client.IgnoreAlreadyExists(cl.Client.Create(ctx, lr.DeepCopy())) }).Should(Succeed())
		DeferCleanup(deleteRaw, lr)
		// Row 1 of the issue as reported: a duration in days.
		whc := fromYAML(`
apiVersion: labhook.io/v1alpha1
kind: WebhookConfig
metadata: {name: days}
spec: {url: "https://receiver.invalid/hook", retry: {maxAge: 1d}}`)
		whc.SetNamespace(evil)
		Eventually(func() error { return client.IgnoreAlreadyExists(cl.Client.Create(ctx, whc.DeepCopy())) }).Should(Succeed())
		DeferCleanup(deleteRaw, whc)
		// A status Go cannot read (only labhook and cluster admins may write
		// status, but older objects may hold anything the schema allowed).
		Eventually(func() error {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(whc.GroupVersionKind())
			if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: evil, Name: "days"}, cur); err != nil {
				return err
			}
			cur.Object["status"] = map[string]any{"lastTest": map[string]any{
				"time": "2026-11-25T06:00:00Z", "messageID": "m", "duration": "1d"}}
			return cl.Client.Status().Update(ctx, cur)
		}).Should(Succeed())
		restoreCRD(ctx, "labresources.labhook.io")
		restoreCRD(ctx, "webhookconfigs.labhook.io")

		By("another organisation's new WebhookConfig is tested and its LabResource's message delivered")
		after := newOrg(ctx, "decodable")
		after.valid(ctx)
		res := &labhookv1alpha1.LabResource{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: after.ns},
			Spec: labhookv1alpha1.LabResourceSpec{ID: "web", Type: labhookv1alpha1.ResourceTypeURL,
				Config: &labhookv1alpha1.LabResourceConfig{Address: "https://web.example.com"}},
		}
		Expect(cl.Client.Create(ctx, res)).To(Succeed())
		Eventually(func() bool {
			return slices.ContainsFunc(after.rec.Arrivals(), func(a recorder.Arrival) bool {
				return a.Message.Type == wire.TypeResource && slices.Contains(a.Message.EntityIDs, "web")
			})
		}).Should(BeTrue(), "RESOURCE CREATED for %s/web", after.ns)
		before.deliver(ctx, "still-delivered")
		Expect(mgr.WaitForLine(`"name":"bad-time"`, 10*time.Second)).To(Succeed(), "the manager names the object it skips")
		Expect(mgr.WaitForLine(`"name":"days"`, 10*time.Second)).To(Succeed())

		By("a restarted manager syncs its caches with those objects still stored")
		mgr.Stop(15 * time.Second)
		managerSpec("manager-undecodable-restarted", cl.Kubeconfig)
		third := newOrg(ctx, "decodable")
		third.valid(ctx)
		third.deliver(ctx, "after-restart")
	})

	It("row 3: holds no Secret data it does not need; unrelated Secrets do not grow its memory", func(ctx SpecContext) {
		mgr := managerSpec("manager-secrets", cl.Kubeconfig)
		o := newOrg(ctx, "signs")
		o.valid(ctx)
		// A delivery reads the signing Secret: with a cached client, this is
		// what used to start a cluster-wide Secret informer with data.
		o.deliver(ctx, "warm-up")
		time.Sleep(3 * time.Second)
		before := rssMiB(mgr.PID())

		bystander := newNamespace(ctx, "bystander")
		blob := strings.Repeat("x", 96<<10)
		var wg sync.WaitGroup
		errs := make(chan error, 300)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for i := w; i < 300; i += 8 {
					s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%03d", i), Namespace: bystander},
						StringData: map[string]string{"blob": blob}}
					if err := cl.Client.Create(ctx, s); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		Expect(errs).To(BeEmpty())
		DeferCleanup(func(ctx context.Context) {
			Expect(cl.Client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(bystander))).To(Succeed())
		})

		time.Sleep(5 * time.Second) // the metadata watch has seen them all
		o.deliver(ctx, "after-secrets")
		time.Sleep(2 * time.Second)
		after := rssMiB(mgr.PID())
		report("row 3: manager RSS %.1f MiB before and %.1f MiB after 300 unrelated Secrets of 96 KiB (28.1 MiB of data) in another namespace: %+.1f MiB",
			before, after, after-before)
		Expect(after-before).To(BeNumerically("<", 10), "the manager's memory grew with Secrets it does not need")
	})

	It("serves /metrics with --metrics-secure only to scrapers the API server authenticates and authorizes, with the RBAC of config/rbac", func(ctx SpecContext) {
		ns := newNamespace(ctx, "labhook-system")
		cs, err := kubernetes.NewForConfig(cl.Config)
		Expect(err).NotTo(HaveOccurred())

		// The manager runs as its own ServiceAccount with exactly the
		// ClusterRoles of config/rbac, so the test proves they suffice.
		roles := map[string]*rbacv1.ClusterRole{}
		for _, f := range []string{"role.yaml", "metrics_auth_role.yaml", "metrics_reader_role.yaml"} {
			r := readClusterRole(filepath.Join(root, "config", "rbac", f))
			roles[f] = r
			created := r.DeepCopy()
			if err := cl.Client.Create(ctx, created); err == nil {
				DeferCleanup(func(ctx context.Context) { Expect(client.IgnoreNotFound(cl.Client.Delete(ctx, created))).To(Succeed()) })
			} else {
				Expect(err).To(MatchError(ContainSubstring("already exists")))
			}
		}
		token := func(sa string, clusterRoles ...string) string {
			GinkgoHelper()
			Expect(cl.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}})).To(Succeed())
			for _, role := range clusterRoles {
				b := &rbacv1.ClusterRoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + sa + "-" + role},
					RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
					Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
				}
				Expect(cl.Client.Create(ctx, b)).To(Succeed())
				DeferCleanup(func(ctx context.Context) { Expect(client.IgnoreNotFound(cl.Client.Delete(ctx, b))).To(Succeed()) })
			}
			tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(3600)}}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			return tr.Status.Token
		}
		managerToken := token("labhook-manager", roles["role.yaml"].Name, roles["metrics_auth_role.yaml"].Name)
		scraper := token("prometheus", roles["metrics_reader_role.yaml"].Name)
		nobody := token("nobody")

		kubeconfig := filepath.Join(tmp, ns+"-manager.kubeconfig")
		kc := clientcmdapi.NewConfig()
		kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cl.Config.Host, CertificateAuthorityData: cl.Config.CAData}
		kc.AuthInfos["labhook-manager"] = &clientcmdapi.AuthInfo{Token: managerToken}
		kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "labhook-manager"}
		kc.CurrentContext = "envtest"
		Expect(clientcmd.WriteToFile(*kc, kubeconfig)).To(Succeed())

		addr, err := process.FreeAddr()
		Expect(err).NotTo(HaveOccurred())
		managerSpec("manager-metrics", kubeconfig, "--metrics-secure", "--metrics-bind-address="+addr)

		// The certificate is self-signed; what is checked here is who may read.
		httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed test certificate
		scrape := func(bearer string) (int, string) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
			Expect(err).NotTo(HaveOccurred())
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := httpc.Do(req)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		Eventually(func() int { code, _ := scrape(scraper); return code }).Should(Equal(http.StatusOK))
		code, body := scrape(scraper)
		Expect(code).To(Equal(http.StatusOK))
		Expect(strings.Contains(body, "# TYPE go_goroutines gauge")).To(BeTrue(), "a Prometheus exposition")
		for _, c := range []struct {
			bearer, what string
			want         int
		}{
			{"", "no token", http.StatusUnauthorized},
			// controller-runtime's filter answers a token the TokenReview
			// rejects with 500 "Authentication failed": refused all the same.
			{"not-a-token", "a token the API server does not know", http.StatusInternalServerError},
			{nobody, "a ServiceAccount without labhook-metrics-reader", http.StatusForbidden},
		} {
			code, body := scrape(c.bearer)
			Expect(code).To(Equal(c.want), "%s: %.200s", c.what, body)
			Expect(body).NotTo(ContainSubstring("go_goroutines"))
		}
		report("--metrics-secure: no token 401, unknown token 500 (controller-runtime's answer), no labhook-metrics-reader 403, labhook-metrics-reader 200")

		plain := &http.Client{Timeout: 5 * time.Second}
		if resp, err := plain.Get("http://" + addr + "/metrics"); err == nil {
			Expect(resp.StatusCode).NotTo(Equal(http.StatusOK), "plain HTTP must not serve metrics")
			resp.Body.Close()
		}
	})
})

// readClusterRole decodes the ClusterRole in a config/rbac file.
func readClusterRole(path string) *rbacv1.ClusterRole {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	decoder := serializer.NewCodecFactory(cl.Scheme).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := reader.Read()
		Expect(err).NotTo(HaveOccurred(), "no ClusterRole in %s", path)
		if obj, _, err := decoder.Decode(doc, nil, nil); err == nil {
			if r, ok := obj.(*rbacv1.ClusterRole); ok {
				return r
			}
		}
	}
}

func ptrInt64(v int64) *int64 { return &v }
