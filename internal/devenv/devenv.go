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

// Package devenv is `make dev`: a local control plane (envtest's etcd and
// kube-apiserver, provided by hack/setup-envtest.sh) with labhook's CRDs,
// the manager, the webhookserver and the reference receiver running as
// child processes against it, and a demo organisation wired to the
// receiver. It prints what to try, then the line ReadyLine, and stops
// everything when its context ends (Ctrl-C).
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/receiver"
)

// ReadyLine is printed, alone on its line, once everything is up. Scripts
// wait for it.
const ReadyLine = "labhook dev environment ready"

// IncomingPath is the webhookserver's incoming endpoint (SPEC §4).
const IncomingPath = "/api/v1/webhooks/events/incoming"

// Options configures Run. Ports left at 0 are picked free.
type Options struct {
	// Dir is the repository root: the CRDs, the cmd/ packages and the
	// samples are found from here.
	Dir string
	// BinDir receives the built binaries and the child processes' logs.
	BinDir string
	// KubeconfigOut is where the control plane's admin kubeconfig is written.
	KubeconfigOut string
	// NoDemo skips the demo organisation.
	NoDemo bool
	// Ports of the children.
	ReceiverPort, WebhookServerPort, WebhookServerMetricsPort, ManagerProbePort, ManagerMetricsPort int
	// Out receives the instructions and ReadyLine.
	Out io.Writer
	// ReceiverEcho, when set, also receives the receiver's output: one JSON
	// line per message received, so they show up where make dev runs.
	ReceiverEcho io.Writer
}

// DefaultOptions are `make dev`'s defaults.
func DefaultOptions() Options {
	return Options{
		Dir:           ".",
		BinDir:        filepath.Join("bin", "dev"),
		KubeconfigOut: filepath.Join("bin", "dev", "kubeconfig"),
		Out:           os.Stdout,
		ReceiverEcho:  os.Stderr,
	}
}

// Run brings the dev environment up, prints ReadyLine, and tears it down
// when ctx ends or a child process exits. It returns the error that ended
// it, or nil after a clean stop.
func Run(ctx context.Context, o Options) (err error) {
	logger := log.FromContext(ctx)
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is unset: run `make dev`, or export KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	if o.Dir, err = filepath.Abs(o.Dir); err != nil {
		return fmt.Errorf("repository directory: %w", err)
	}
	if err := os.MkdirAll(o.BinDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.BinDir, err)
	}
	if err := build(ctx, o); err != nil {
		return err
	}
	if err := pickPorts(&o); err != nil {
		return err
	}

	logger.Info("starting the control plane (etcd + kube-apiserver) with labhook's CRDs")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(o.Dir, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() {
		logger.Info("stopping the control plane")
		if stopErr := env.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stop control plane: %w", stopErr)
		}
	}()
	kubeconfig, err := filepath.Abs(o.KubeconfigOut)
	if err != nil {
		return fmt.Errorf("kubeconfig path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o755); err != nil {
		return fmt.Errorf("create kubeconfig directory: %w", err)
	}
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(labhookv1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}

	signingSecret, err := wire.GenerateSecret()
	if err != nil {
		return err
	}
	var children group
	defer children.stopAll(logger)
	exited := make(chan *child, 4)

	receiverURL := fmt.Sprintf("http://127.0.0.1:%d/webhooks/events", o.ReceiverPort)
	if err := children.start(ctx, exited, childSpec{
		name: "receiver", dir: o.BinDir,
		// The demo's secret verifies its hmac-sha256 config; the JWKS of
		// the demo organisation verifies an ed25519 one (try
		// config/samples' ed25519 WebhookConfig).
		args: []string{"--bind-address", addr(o.ReceiverPort),
			"--jwks-url", fmt.Sprintf("http://127.0.0.1:%d%s%s", o.WebhookServerPort, wire.JWKSPathPrefix, DemoNamespace)},
		env:  []string{receiver.SecretEnv + "=" + signingSecret},
		wait: fmt.Sprintf("http://127.0.0.1:%d/healthz", o.ReceiverPort),
		echo: o.ReceiverEcho,
	}); err != nil {
		return err
	}

	var demo *demoOrg
	if !o.NoDemo {
		if demo, err = createDemo(ctx, c, receiverURL, signingSecret); err != nil {
			return err
		}
	} else {
		// Without the demo the receiver still needs its secret's twin in the
		// cluster to verify anything: keep it where the person can find it.
		if err := os.WriteFile(filepath.Join(o.BinDir, "receiver-signing-secret"), []byte(signingSecret+"\n"), 0o600); err != nil {
			return fmt.Errorf("write receiver secret: %w", err)
		}
	}

	incomingURL := fmt.Sprintf("http://127.0.0.1:%d%s", o.WebhookServerPort, IncomingPath)
	kubeEnv := []string{"KUBECONFIG=" + kubeconfig}
	if err := children.start(ctx, exited, childSpec{
		name: "manager", dir: o.BinDir, env: kubeEnv,
		args: []string{
			"--kubeconfig", kubeconfig,
			"--allow-http",
			"--allowed-target-cidrs=127.0.0.0/8",
			"--callback-url=" + incomingURL,
			"--health-probe-bind-address", addr(o.ManagerProbePort),
			"--metrics-bind-address", addr(o.ManagerMetricsPort),
		},
		wait: fmt.Sprintf("http://127.0.0.1:%d/readyz", o.ManagerProbePort),
	}); err != nil {
		return err
	}
	if err := children.start(ctx, exited, childSpec{
		name: "webhookserver", dir: o.BinDir, env: kubeEnv,
		args: []string{
			"--kubeconfig", kubeconfig,
			"--bind-address", addr(o.WebhookServerPort),
			"--metrics-bind-address", addr(o.WebhookServerMetricsPort),
		},
		wait: fmt.Sprintf("http://127.0.0.1:%d/readyz", o.WebhookServerPort),
	}); err != nil {
		return err
	}

	printInstructions(o, kubeconfig, receiverURL, incomingURL, demo)
	fmt.Fprintln(o.Out, ReadyLine)

	select {
	case <-ctx.Done():
		logger.Info("stopping")
		return nil
	case ch := <-exited:
		return fmt.Errorf("%s exited (%v); its log is %s", ch.spec.name, ch.err, ch.logPath)
	}
}

// build compiles the binaries into o.BinDir.
func build(ctx context.Context, o Options) error {
	logger := log.FromContext(ctx)
	pkgs := []string{"./cmd/manager", "./cmd/receiver", "./cmd/webhookserver"}
	out, err := filepath.Abs(o.BinDir)
	if err != nil {
		return fmt.Errorf("bin dir: %w", err)
	}
	logger.Info("building", "packages", pkgs, "into", o.BinDir)
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", out + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w", pkgs, err)
	}
	return nil
}

// pickPorts fills every port left at 0 with a free one.
func pickPorts(o *Options) error {
	for _, p := range []*int{&o.ReceiverPort, &o.WebhookServerPort, &o.WebhookServerMetricsPort, &o.ManagerProbePort, &o.ManagerMetricsPort} {
		if *p != 0 {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
		*p = ln.Addr().(*net.TCPAddr).Port
		if err := ln.Close(); err != nil {
			return fmt.Errorf("find a free port: %w", err)
		}
	}
	return nil
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// waitHTTP polls url until it answers 200, the child exits, or the timeout.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, ch *child) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", url, err)
		}
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ch.done:
			return fmt.Errorf("%s exited before it was ready (%v); its log is %s", ch.spec.name, ch.err, ch.logPath)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after %s; its log is %s", ch.spec.name, url, timeout, ch.logPath)
		case <-tick.C:
		}
	}
}
