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

// Package stack starts labhook's own binaries (manager, webhookserver) as
// child processes against a kubeconfig, on 127.0.0.1 ports, with the flags
// benchmarks and reliability tests need.
package stack

import (
	"fmt"
	"time"

	"github.com/labhook/labhook/test/internal/process"
)

// Manager starts the manager allowing http:// receivers on 127.0.0.0/8 and
// waits for /readyz.
func Manager(binary, kubeconfig, logPath string, extra ...string) (*process.Process, error) {
	probe, err := process.FreeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=" + probe,
		"--allow-http", "--allowed-target-cidrs=127.0.0.0/8", "--kube-api-qps=5000", "--kube-api-burst=10000",
	}, extra...)
	p, err := process.Start("manager", binary, args, []string{"KUBECONFIG=" + kubeconfig}, logPath)
	if err != nil {
		return nil, err
	}
	if err := p.WaitHTTP("http://"+probe+"/readyz", 60*time.Second); err != nil {
		p.Kill()
		return nil, fmt.Errorf("manager did not become ready: %w", err)
	}
	return p, nil
}

// WebhookServer starts the webhookserver and waits for /readyz. It returns
// the base URL (http://127.0.0.1:port).
func WebhookServer(binary, kubeconfig, logPath string, extra ...string) (*process.Process, string, error) {
	addr, err := process.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	maddr, err := process.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig, "--bind-address=" + addr, "--metrics-bind-address=" + maddr,
	}, extra...)
	p, err := process.Start("webhookserver", binary, args, []string{"KUBECONFIG=" + kubeconfig}, logPath)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.WaitHTTP(base+"/readyz", 60*time.Second); err != nil {
		p.Kill()
		return nil, "", fmt.Errorf("webhookserver did not become ready: %w", err)
	}
	return p, base, nil
}
