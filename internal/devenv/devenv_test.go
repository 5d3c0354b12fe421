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

package devenv_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/devenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDevEnvReachesReadyWithDemoOrganisationAndStopsCleanly runs what
// `make dev` runs, in-process: it waits for the ready line, checks the demo
// organisation through the written kubeconfig, proves the receiver and the
// demo's signing Secret agree by posting a signed message, then cancels
// (as Ctrl-C does) and expects a clean stop with the children gone.
func TestDevEnvReachesReadyWithDemoOrganisationAndStopsCleanly(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is unset: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	dir := t.TempDir()
	o := devenv.DefaultOptions()
	o.Dir = filepath.Join("..", "..")
	o.BinDir = filepath.Join(dir, "bin")
	o.KubeconfigOut = filepath.Join(dir, "kubeconfig")
	o.ReceiverPort = freePort(t)
	pr, pw := io.Pipe()
	o.Out = pw
	echo := &syncBuffer{}
	o.ReceiverEcho = echo

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- devenv.Run(ctx, o)
		_ = pw.Close()
	}()

	ready := make(chan string, 1)
	go func() {
		var printed strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if sc.Text() == devenv.ReadyLine {
				ready <- printed.String()
			}
		}
	}()
	var out string
	select {
	case out = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("not ready after 3 minutes")
	}
	for _, want := range []string{"get labhook -A", "apply -f config/samples"} {
		if !strings.Contains(out, want) {
			t.Errorf("the instructions do not mention %q:\n%s", want, out)
		}
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", o.KubeconfigOut)
	if err != nil {
		t.Fatalf("the written kubeconfig does not load: %v", err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(labhookv1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	whc := &labhookv1alpha1.WebhookConfig{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: devenv.DemoNamespace, Name: devenv.DemoWebhookConfig}, whc); err != nil {
		t.Fatalf("demo WebhookConfig: %v", err)
	}
	receiverURL := "http://127.0.0.1:" + strconv.Itoa(o.ReceiverPort) + "/webhooks/events"
	if !whc.Spec.Default || whc.Spec.URL != receiverURL || whc.Spec.SecretRef == nil {
		t.Errorf("demo WebhookConfig spec = %+v, want the default, at %s, with a secretRef", whc.Spec, receiverURL)
	}
	keys := &corev1.SecretList{}
	if err := c.List(ctx, keys, client.InNamespace(devenv.DemoNamespace), client.MatchingLabels{labhookv1alpha1.LabelAPIKey: "true"}); err != nil || len(keys.Items) != 1 {
		t.Fatalf("demo API key Secrets: %d, %v", len(keys.Items), err)
	}
	apiKey := string(keys.Items[0].Data[labhookv1alpha1.SecretKeyAPIKey])
	if apiKey == "" {
		t.Error("the demo API key Secret has no apiKey")
	}
	if strings.Contains(out, "curl") && !strings.Contains(out, "Bearer "+devenv.DemoNamespace+":"+apiKey) {
		t.Errorf("the curl example does not carry the demo API key:\n%s", out)
	}

	signing := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: devenv.DemoNamespace, Name: whc.Spec.SecretRef.Name}, signing); err != nil {
		t.Fatal(err)
	}
	if code := postSigned(t, receiverURL, string(signing.Data[labhookv1alpha1.SecretKeySigning])); code != http.StatusNoContent {
		t.Errorf("the receiver answered %d to a message signed with the demo's secret, want 204", code)
	}

	// The receiver's message log is echoed where make dev runs.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(echo.String(), `"message_id":"devenv-test"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver's log of the message is not echoed; echoed:\n%s", echo.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not stop within 60s of cancel")
	}
	if _, err := http.Get(receiverURL); err == nil {
		t.Error("the receiver still answers after the stop")
	}
}

func postSigned(t *testing.T, url, secret string) int {
	t.Helper()
	body := []byte(`{"message_id":"devenv-test","type":"EVENT","status":"STARTED","entity_ids":["daf24556"]}`)
	now := time.Now()
	sig, err := wire.Sign([]string{secret}, "devenv-test", now, body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(wire.HeaderWebhookID, "devenv-test")
	req.Header.Set(wire.HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(wire.HeaderWebhookSignature, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// syncBuffer is a writer the child's output goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
