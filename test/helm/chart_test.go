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

// Package helm checks the chart charts/labhook as a cluster would take it:
// `helm template` (the real helm binary, $HELM) renders it, and every
// object passes server-side dry-run admission on a real kube-apiserver,
// in a namespace that enforces and warns on the restricted Pod Security
// Standard, with no warning. It also checks that the chart renders what
// kustomize builds from config/ ($KUSTOMIZE), in both layouts, and that
// values.schema.json refuses bad values naming the field.
package helm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

func TestChart(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Helm chart suite")
}

var (
	root        = filepath.Join("..", "..")
	chart       = filepath.Join(root, "charts", "labhook")
	helm        string
	kustomize   string
	kubeVersion string
	testEnv     *envtest.Environment
	k8sClient   client.Client
	warnings    = &warningLog{}
)

// warningLog keeps the warnings the API server sends back.
type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

var _ = BeforeSuite(func() {
	helm, kustomize = os.Getenv("HELM"), os.Getenv("KUSTOMIZE")
	Expect(helm).NotTo(BeEmpty(), "HELM is unset: run make check-helm (or make test), which builds the pinned helm into bin/")
	Expect(kustomize).NotTo(BeEmpty(), "KUSTOMIZE is unset: run make check-helm (or make test)")
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(), "KUBEBUILDER_ASSETS is unset: run make check-helm (or make test)")

	// No CRDs installed: the chart's own are dry-run like everything else.
	testEnv = &envtest.Environment{}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warnings
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	v, err := dc.ServerVersion()
	Expect(err).NotTo(HaveOccurred())
	kubeVersion = v.GitVersion
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// restrictedNamespace creates a namespace that enforces and warns on the
// restricted Pod Security Standard, as the chart's README asks.
func restrictedNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "labhook-", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// helmTemplate runs `helm template` in namespace ns with values (YAML).
func helmTemplate(ctx context.Context, ns, values string) ([]*unstructured.Unstructured, error) {
	f := filepath.Join(GinkgoT().TempDir(), "values.yaml")
	Expect(os.WriteFile(f, []byte(values), 0o600)).To(Succeed())
	out, err := run(ctx, helm, "template", "labhook", chart, "--namespace", ns, "--kube-version", kubeVersion, "-f", f)
	if err != nil {
		return nil, err
	}
	return splitYAML(out), nil
}

func kustomizeBuild(ctx context.Context, dir string) []*unstructured.Unstructured {
	out, err := run(ctx, kustomize, "build", filepath.Join(root, dir))
	Expect(err).NotTo(HaveOccurred())
	return splitYAML(out)
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	GinkgoWriter.Printf("$ %s %s\n%s", filepath.Base(name), strings.Join(args, " "), stderr.String())
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, args[0], err, stderr.String())
	}
	return out, nil
}

func splitYAML(b []byte) []*unstructured.Unstructured {
	var objs []*unstructured.Unstructured
	for _, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(b), -1) {
		u := &unstructured.Unstructured{}
		Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed(), doc)
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// dryRun server-side applies every object with dryRun=All and returns the
// warnings the API server answered with. The objects get the server's
// answer (defaults filled in).
func dryRun(ctx context.Context, objs []*unstructured.Unstructured) []string {
	warnings.take()
	for _, o := range objs {
		Expect(k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll,
			client.FieldOwner("helm-chart-test"), client.ForceOwnership)).To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
	return warnings.take()
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// The labels and annotation the chart adds to config/'s objects.
var chartLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// withoutChartMarks removes what the chart adds, so the object compares
// with kustomize's.
func withoutChartMarks(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy()
	labels := c.GetLabels()
	for _, l := range chartLabels {
		Expect(labels).To(HaveKey(l), "%s %s", o.GetKind(), o.GetName())
		delete(labels, l)
	}
	if len(labels) == 0 {
		labels = nil // none, as kustomize has it
	}
	c.SetLabels(labels)
	if ann := c.GetAnnotations(); ann != nil {
		delete(ann, "helm.sh/resource-policy")
		c.SetAnnotations(ann)
	}
	return c.Object
}

const standaloneValues = `
webhookserver:
  standalone: true
  replicas: 3
  tls: {secretName: webhookserver-tls}
  rateLimit: 20.5
  regions: [us-east-1, eu-west-1]
manager:
  callbackURL: https://labhook.example.com/api/v1/webhooks/events/incoming
  allowedTargetCIDRs: [10.20.0.0/16]
  maxRetainedMessages: 0
  maxConcurrentDeliveries: 64
  extraArgs: [--zap-log-level=debug]
image: {repository: registry.example.com/labhook, tag: v1.2.3, pullPolicy: IfNotPresent}
imagePullSecrets: [{name: regcred}]
nodeSelector: {kubernetes.io/os: linux}
`

var _ = Describe("the chart", func() {
	It("with default values passes server-side dry-run in a restricted namespace, without a warning", func(ctx SpecContext) {
		ns := restrictedNamespace(ctx)
		objs, err := helmTemplate(ctx, ns, "")
		Expect(err).NotTo(HaveOccurred())
		Expect(kinds(objs)).To(ContainElements(
			"CustomResourceDefinition/webhookconfigs.labhook.io", "CustomResourceDefinition/outgoingmessages.labhook.io",
			"CustomResourceDefinition/labresources.labhook.io", "CustomResourceDefinition/labinterfaces.labhook.io",
			"Deployment/labhook-manager", "Service/labhook-webhookserver", "ClusterRole/labhook-manager",
			"ClusterRole/labhook-webhookserver", "ServiceAccount/labhook-manager", "Role/labhook-leader-election"))
		Expect(kinds(objs)).NotTo(ContainElement("Deployment/labhook-webhookserver"))
		Expect(kinds(objs)).NotTo(ContainElement(HavePrefix("Namespace/")), "Helm installs into the release's namespace")
		Expect(dryRun(ctx, objs)).To(BeEmpty())
	})

	It("standalone, with TLS, flags, another image and scheduling, passes too and renders each value", func(ctx SpecContext) {
		ns := restrictedNamespace(ctx)
		objs, err := helmTemplate(ctx, ns, standaloneValues)
		Expect(err).NotTo(HaveOccurred())

		ws := find(objs, "Deployment", "labhook-webhookserver")
		Expect(ws).NotTo(BeNil())
		Expect(ws.GetNamespace()).To(Equal(ns))
		Expect(ws.Object["spec"].(map[string]any)["replicas"]).To(BeEquivalentTo(3))
		pod, _, _ := unstructured.NestedMap(ws.Object, "spec", "template", "spec")
		Expect(pod["nodeSelector"]).To(Equal(map[string]any{"kubernetes.io/os": "linux"}))
		Expect(pod["imagePullSecrets"]).To(Equal([]any{map[string]any{"name": "regcred"}}))
		Expect(pod["volumes"]).To(Equal([]any{map[string]any{"name": "tls", "secret": map[string]any{"secretName": "webhookserver-tls"}}}))
		c := pod["containers"].([]any)[0].(map[string]any)
		Expect(c["image"]).To(Equal("registry.example.com/labhook:v1.2.3"))
		Expect(c["imagePullPolicy"]).To(Equal("IfNotPresent"))
		Expect(c["args"]).To(Equal([]any{"--bind-address=:8090", "--metrics-bind-address=:8091", "--rate-limit=20.5",
			"--regions=us-east-1,eu-west-1", "--tls-cert-file=/etc/labhook/tls/tls.crt", "--tls-key-file=/etc/labhook/tls/tls.key"}))
		Expect(c["volumeMounts"]).To(Equal([]any{map[string]any{"name": "tls", "mountPath": "/etc/labhook/tls", "readOnly": true}}))
		for _, probe := range []string{"readinessProbe", "livenessProbe"} {
			scheme, _, _ := unstructured.NestedString(c, probe, "httpGet", "scheme")
			Expect(scheme).To(Equal("HTTPS"), probe)
		}

		mgr := find(objs, "Deployment", "labhook-manager")
		containers, _, _ := unstructured.NestedSlice(mgr.Object, "spec", "template", "spec", "containers")
		Expect(containers).To(HaveLen(1), "no sidecar when standalone")
		Expect(containers[0].(map[string]any)["args"]).To(Equal([]any{"--leader-elect", "--health-probe-bind-address=:8081",
			"--metrics-bind-address=:8443", "--metrics-secure", "--callback-url=https://labhook.example.com/api/v1/webhooks/events/incoming",
			"--allowed-target-cidrs=10.20.0.0/16", "--max-retained-messages=0", "--max-concurrent-deliveries=64", "--zap-log-level=debug"}))
		Expect(find(objs, "PodDisruptionBudget", "labhook-webhookserver")).NotTo(BeNil())

		Expect(dryRun(ctx, objs)).To(BeEmpty())
	})

	It("renders one manager Deployment per shard, with its --shard and its own selector, which passes too", func(ctx SpecContext) {
		ns := restrictedNamespace(ctx)
		objs, err := helmTemplate(ctx, ns, "manager: {shards: [a, b], callbackURL: 'https://labhook.example.com/in'}")
		Expect(err).NotTo(HaveOccurred())
		for _, shard := range []string{"a", "b"} {
			d := find(objs, "Deployment", "labhook-manager-shard-"+shard)
			Expect(d).NotTo(BeNil(), shard)
			sel, _, _ := unstructured.NestedStringMap(d.Object, "spec", "selector", "matchLabels")
			Expect(sel).To(HaveKeyWithValue("labhook.io/shard", shard))
			containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			Expect(containers).To(HaveLen(1), "a shard runs no webhookserver")
			Expect(containers[0].(map[string]any)["args"]).To(ContainElements("--leader-elect", "--shard="+shard,
				"--callback-url=https://labhook.example.com/in"))
		}
		Expect(dryRun(ctx, objs)).To(BeEmpty())
	})

	It("would be warned about if a Pod broke the restricted standard: the check above can fail", func(ctx SpecContext) {
		ns := restrictedNamespace(ctx)
		objs, err := helmTemplate(ctx, ns, "")
		Expect(err).NotTo(HaveOccurred())
		mgr := find(objs, "Deployment", "labhook-manager")
		unstructured.RemoveNestedField(mgr.Object, "spec", "template", "spec", "securityContext")
		Expect(dryRun(ctx, []*unstructured.Unstructured{mgr})).To(ContainElement(ContainSubstring(`violate PodSecurity "restricted:latest"`)))
	})

	DescribeTable("renders exactly what kustomize builds from config/",
		func(ctx SpecContext, layout, values string, alsoOthers bool) {
			want := map[string]map[string]any{}
			for _, o := range kustomizeBuild(ctx, layout) {
				if o.GetKind() != "Namespace" {
					want[o.GetKind()+"/"+o.GetName()] = o.Object
				}
			}
			objs, err := helmTemplate(ctx, "labhook-system", values)
			Expect(err).NotTo(HaveOccurred())
			got := map[string]map[string]any{}
			for _, o := range objs {
				got[o.GetKind()+"/"+o.GetName()] = withoutChartMarks(o)
			}
			if !alsoOthers {
				Expect(got).To(HaveLen(len(want)))
			}
			for k, w := range want {
				Expect(got).To(HaveKey(k))
				Expect(reflect.DeepEqual(got[k], w)).To(BeTrue(), "%s differs:\nhelm:\n%s\nkustomize:\n%s", k, toYAML(got[k]), toYAML(w))
			}
		},
		Entry("the default layout", "config/default", "", false),
		Entry("the standalone webhookserver", "config/overlays/standalone-webhookserver", "webhookserver: {standalone: true}", false),
		Entry("a shard's manager", "config/overlays/sharded", "manager: {shards: [a]}", false),
		Entry("monitoring: alerts and dashboard text unchanged by templating", "config/prometheus",
			"monitoring: {serviceMonitor: true, prometheusRule: true, dashboard: true}", true),
	)

	It("keeps the CRDs on uninstall unless told otherwise, and can leave them out", func(ctx SpecContext) {
		objs, err := helmTemplate(ctx, "labhook-system", "")
		Expect(err).NotTo(HaveOccurred())
		Expect(find(objs, "CustomResourceDefinition", "outgoingmessages.labhook.io").GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		objs, err = helmTemplate(ctx, "labhook-system", "crds: {keep: false}")
		Expect(err).NotTo(HaveOccurred())
		Expect(find(objs, "CustomResourceDefinition", "outgoingmessages.labhook.io").GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"))
		objs, err = helmTemplate(ctx, "labhook-system", "crds: {install: false}")
		Expect(err).NotTo(HaveOccurred())
		Expect(kinds(objs)).NotTo(ContainElement(HavePrefix("CustomResourceDefinition/")))
	})

	DescribeTable("refuses a bad value, naming it",
		func(ctx SpecContext, values, wantErr string) {
			_, err := helmTemplate(ctx, "labhook-system", values)
			Expect(err).To(MatchError(ContainSubstring(wantErr)))
		},
		Entry("no replicas", "webhookserver: {replicas: 0}", "at '/webhookserver/replicas'"),
		Entry("a callback URL that is not http(s)", "manager: {callbackURL: 'ftp://x'}", "at '/manager/callbackURL'"),
		Entry("a duration in days", "manager: {messageRetention: 1d}", "at '/manager/messageRetention'"),
		Entry("an extra argument that is not a flag", "manager: {extraArgs: ['rm -rf /']}", "at '/manager/extraArgs/0'"),
		Entry("a CIDR that is not one", "manager: {allowedTargetCIDRs: [everything]}", "at '/manager/allowedTargetCIDRs/0'"),
		Entry("a misspelt value", "manger: {replicas: 2}", "additional properties 'manger' not allowed"),
		Entry("a TLS Secret name that is not a name", "webhookserver: {tls: {secretName: 'Bad Name'}}", "at '/webhookserver/tls/secretName'"),
		Entry("a pull policy that does not exist", "image: {pullPolicy: Sometimes}", "at '/image/pullPolicy'"),
		Entry("a shard name that cannot be a label value", "manager: {shards: [Alpha]}", "at '/manager/shards/0'"),
	)
})

func toYAML(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}
