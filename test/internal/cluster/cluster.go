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

// Package cluster starts a local control plane (envtest's etcd and
// kube-apiserver from hack/setup-envtest.sh) with labhook's CRDs installed,
// and writes a kubeconfig file so that child processes (manager,
// webhookserver) can talk to the same API server as the test itself.
package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Cluster is a running control plane.
type Cluster struct {
	// Config is an admin REST config with client-side throttling raised so
	// that the test's own client is never the bottleneck.
	Config *rest.Config
	// Client is an uncached controller-runtime client on Config.
	Client client.Client
	// Scheme knows client-go's kinds and labhook's.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for child processes.
	Kubeconfig string

	env *envtest.Environment
}

// RepoRoot finds the module root by walking up from the working directory
// to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver, installs config/crd/bases and writes
// an admin kubeconfig into dir. KUBEBUILDER_ASSETS must be set (the Makefile
// sets it from hack/setup-envtest.sh).
func Start(dir string) (*Cluster, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: run through make, or export KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(labhookv1alpha1.AddToScheme(scheme))

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	c := &Cluster{Scheme: scheme, env: env}
	base := rest.CopyConfig(env.Config)
	base.QPS, base.Burst = 5000, 10000
	user, err := env.AddUser(envtest.User{Name: "labhook-proof", Groups: []string{"system:masters"}}, base)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("provision admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("render kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	c.Config = user.Config()
	c.Config.QPS, c.Config.Burst = 5000, 10000
	c.Client, err = client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return c, nil
}

// Stop stops the control plane.
func (c *Cluster) Stop() error { return c.env.Stop() }

// EtcdMetricsURL is etcd's Prometheus endpoint (its client URL's /metrics),
// for figures such as etcd_mvcc_db_total_size_in_bytes.
func (c *Cluster) EtcdMetricsURL() string {
	u := *c.env.ControlPlane.Etcd.URL
	u.Path = "/metrics"
	return u.String()
}

// Namespace creates a namespace (an organisation).
func (c *Cluster) Namespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// APIKey creates the Secret the webhookserver authenticates an
// organisation's backend with, and returns the Bearer credential
// "<namespace>:<key>".
func (c *Cluster) APIKey(ctx context.Context, namespace, key string) (string, error) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "backend-api-key", Namespace: namespace,
			Labels: map[string]string{labhookv1alpha1.LabelAPIKey: "true"},
		},
		StringData: map[string]string{labhookv1alpha1.SecretKeyAPIKey: key},
	}
	if err := c.Client.Create(ctx, s); err != nil {
		return "", fmt.Errorf("create API key secret: %w", err)
	}
	return namespace + ":" + key, nil
}

// WebhookConfig creates a default WebhookConfig named name pointing at url,
// signing with a Secret the caller knows (secretRef), so a test receiver can
// verify signatures.
func (c *Cluster) WebhookConfig(ctx context.Context, namespace, name, url, signingSecret string) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-known-signing", Namespace: namespace},
		StringData: map[string]string{labhookv1alpha1.SecretKeySigning: signingSecret},
	}
	if err := c.Client.Create(ctx, s); err != nil {
		return fmt.Errorf("create signing secret: %w", err)
	}
	whc := &labhookv1alpha1.WebhookConfig{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: labhookv1alpha1.WebhookConfigSpec{
			URL: url, Default: true,
			SecretRef: &labhookv1alpha1.LocalObjectReference{Name: s.Name},
		},
	}
	if err := c.Client.Create(ctx, whc); err != nil {
		return fmt.Errorf("create webhookconfig: %w", err)
	}
	return nil
}

// WebhookConfigState reads status.state of a WebhookConfig.
func (c *Cluster) WebhookConfigState(ctx context.Context, namespace, name string) (labhookv1alpha1.WebhookConfigState, error) {
	var whc labhookv1alpha1.WebhookConfig
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &whc); err != nil {
		return "", err
	}
	return whc.Status.State, nil
}

// EnsureValid waits up to wait for the WebhookConfig controller to test the
// config and mark it valid. If no controller touched it at all (status.state
// still empty: the tree has no WebhookConfig controller yet), it stands in
// for one and writes state valid itself, and says so with standIn, so that
// the outbox can still be measured. Any other state is an error.
func (c *Cluster) EnsureValid(ctx context.Context, namespace, name string, wait time.Duration) (standIn bool, err error) {
	deadline := time.Now().Add(wait)
	var whc labhookv1alpha1.WebhookConfig
	for {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &whc); err != nil {
			return false, err
		}
		if whc.Status.State == labhookv1alpha1.StateValid {
			return false, nil
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if whc.Status.State != "" {
		return false, fmt.Errorf("WebhookConfig %s/%s is %q after %s, not valid", namespace, name, whc.Status.State, wait)
	}
	whc.Status.State = labhookv1alpha1.StateValid
	if whc.Spec.SecretRef != nil {
		whc.Status.SecretName = whc.Spec.SecretRef.Name
	}
	whc.Status.ObservedGeneration = whc.Generation
	if err := c.Client.Status().Update(ctx, &whc); err != nil {
		return false, fmt.Errorf("stand in for the WebhookConfig controller: %w", err)
	}
	return true, nil
}
