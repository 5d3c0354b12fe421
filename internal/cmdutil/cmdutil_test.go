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

package cmdutil_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/labhook/labhook/internal/cmdutil"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`

func TestFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)

	var defaults cmdutil.Flags
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	defaults.Bind(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if defaults.QPS != cmdutil.DefaultQPS || defaults.Burst != cmdutil.DefaultBurst {
		t.Errorf("defaults: qps %v burst %d", defaults.QPS, defaults.Burst)
	}
	for _, name := range []string{"zap-devel", "zap-log-level", "zap-encoder", "zap-stacktrace-level"} {
		if fs.Lookup(name) == nil {
			t.Errorf("--%s is not bound", name)
		}
	}

	var f cmdutil.Flags
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	f.Bind(fs)
	if err := fs.Parse([]string{"--kube-api-qps=7.5", "--kube-api-burst=9", "--zap-log-level=debug"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.RESTConfig("manager", "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QPS != 7.5 || cfg.Burst != 9 || cfg.UserAgent != "labhook-manager/v1.2.3" || cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("config: qps %v burst %d user agent %q host %q", cfg.QPS, cfg.Burst, cfg.UserAgent, cfg.Host)
	}
	if log := f.SetupLogger(); !log.V(1).Enabled() {
		t.Error("--zap-log-level=debug does not reach the logger")
	}
	s := cmdutil.Scheme()
	for _, kind := range []string{"WebhookConfig", "OutgoingMessage", "LabResource", "LabInterface", "Secret", "Event"} {
		found := false
		for gvk := range s.AllKnownTypes() {
			found = found || gvk.Kind == kind
		}
		if !found {
			t.Errorf("the scheme has no %s", kind)
		}
	}
}
