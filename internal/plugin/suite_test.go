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
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/plugin"
	"github.com/labhook/labhook/internal/testenv"
)

// The suite drives the commands as a person would, with --kubeconfig
// pointing at a real kube-apiserver + etcd. The labhook manager is not
// running: where a command waits for it, the test writes the status the
// manager would.
var (
	k8sClient  client.Client
	testEnv    *envtest.Environment
	scheme     = runtime.NewScheme()
	kubeconfig string
	cfg        *rest.Config
)

func TestPlugin(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl labhook Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	SetDefaultConsistentlyDuration(time.Second)
	var err error
	testEnv, cfg, k8sClient, err = testenv.Start(filepath.Join("..", ".."), scheme)
	Expect(err).NotTo(HaveOccurred())
	user, err := testEnv.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kc, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, kc, 0o600)).To(Succeed())
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// result is one run of kubectl labhook.
type result struct {
	out, errOut string
	err         error
}

// run runs `kubectl labhook --kubeconfig <envtest> args...` in-process.
func run(ctx context.Context, o plugin.Options, args ...string) result {
	var out, errOut bytes.Buffer
	o.IOStreams = genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	cmd := plugin.NewCommand(o)
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	GinkgoWriter.Printf("$ kubectl labhook %s\n%s%s(err: %v)\n", strings.Join(args, " "), out.String(), errOut.String(), err)
	return result{out: out.String(), errOut: errOut.String(), err: err}
}

// kubectl runs with default options.
func kubectl(ctx context.Context, args ...string) result { return run(ctx, plugin.Options{}, args...) }

// newOrg creates a namespace (an organisation) with a unique name.
func newOrg(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "org-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func createWHC(ctx context.Context, ns, name string, mutate func(*labhookv1alpha1.WebhookConfig)) *labhookv1alpha1.WebhookConfig {
	whc := &labhookv1alpha1.WebhookConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       labhookv1alpha1.WebhookConfigSpec{URL: "https://receiver.example.com/" + name, Default: true},
	}
	if mutate != nil {
		mutate(whc)
	}
	Expect(k8sClient.Create(ctx, whc)).To(Succeed())
	return whc
}

// setWHCStatus writes status as the manager would.
func setWHCStatus(ctx context.Context, ns, name string, mutate func(*labhookv1alpha1.WebhookConfigStatus)) {
	Eventually(func(g Gomega) {
		var whc labhookv1alpha1.WebhookConfig
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &whc)).To(Succeed())
		mutate(&whc.Status)
		g.Expect(k8sClient.Status().Update(ctx, &whc)).To(Succeed())
	}).Should(Succeed())
}

func createOM(ctx context.Context, ns, name string, st labhookv1alpha1.OutgoingMessageStatus) *labhookv1alpha1.OutgoingMessage {
	om := &labhookv1alpha1.OutgoingMessage{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: labhookv1alpha1.OutgoingMessageSpec{
			Type: "EVENT", Status: "STARTED", EntityIDs: []string{"daf24556"},
		},
	}
	Expect(k8sClient.Create(ctx, om)).To(Succeed())
	om.Status = st
	Expect(k8sClient.Status().Update(ctx, om)).To(Succeed())
	return om
}

// condition is a Ready condition with reason and message.
func condition(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
	return []metav1.Condition{{Type: labhookv1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg,
		LastTransitionTime: metav1.Now()}}
}

func ago(d time.Duration) metav1.Time {
	return metav1.NewTime(time.Now().Add(-d).Truncate(time.Second))
}

func getWHC(ctx context.Context, ns, name string) *labhookv1alpha1.WebhookConfig {
	var whc labhookv1alpha1.WebhookConfig
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &whc)).To(Succeed())
	return &whc
}

func getOM(ctx context.Context, ns, name string) *labhookv1alpha1.OutgoingMessage {
	var om labhookv1alpha1.OutgoingMessage
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &om)).To(Succeed())
	return &om
}
