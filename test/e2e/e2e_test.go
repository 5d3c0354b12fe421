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

// Package e2e walks through labhook as a newcomer would: it runs the
// `make dev` environment (cmd/devenv) as a child process, applies
// config/samples with the real kubectl, posts the seed's incoming example
// with curl, and checks the results with kubectl wait and kubectl get.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labhook/labhook/test/internal/cluster"
	"github.com/labhook/labhook/test/internal/process"
	"github.com/labhook/labhook/test/internal/seedmsg"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "End-to-end suite")
}

const readyLine = "labhook dev environment ready"

var incomingURL = regexp.MustCompile(`https?://[0-9A-Za-z.\[\]:-]+/api/v1/webhooks/events/incoming`)

var _ = Describe("make dev, as a newcomer uses it", Ordered, func() {
	var (
		root, tmp, kubeconfig, incoming string
		devenv                          *process.Process
	)

	kubectl := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		GinkgoWriter.Printf("$ kubectl %s\n%s\n", strings.Join(args, " "), out)
		return string(out), err
	}

	BeforeAll(func(ctx SpecContext) {
		var err error
		root, err = cluster.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		if _, err := exec.LookPath("kubectl"); err != nil {
			Skip("kubectl is not on PATH")
		}
		if _, err := exec.LookPath("curl"); err != nil {
			Skip("curl is not on PATH")
		}
		tmp, err = os.MkdirTemp("", "labhook-e2e-")
		Expect(err).NotTo(HaveOccurred())
		bin, err := process.Build(ctx, root, tmp, "devenv")
		Expect(err).NotTo(HaveOccurred())

		// Its own kubeconfig, binaries and free ports, so a developer's
		// running `make dev` (bin/dev/...) is left alone.
		kubeconfig = filepath.Join(tmp, "kubeconfig")
		devenv, err = process.StartIn(root, "devenv", bin, []string{"--kubeconfig-out=" + kubeconfig, "--bin-dir=" + filepath.Join(tmp, "bin")},
			nil, filepath.Join(tmp, "devenv.log"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			devenv.Interrupt(30 * time.Second)
			if !CurrentSpecReport().Failed() {
				_ = os.RemoveAll(tmp)
			} else {
				GinkgoWriter.Printf("devenv output kept in %s\n", tmp)
			}
		})
		Expect(devenv.WaitForLine(readyLine, 5*time.Minute)).To(Succeed(), "devenv should print %q", readyLine)
		Expect(kubeconfig).To(BeAnExistingFile())
		incoming = "http://127.0.0.1:8090/api/v1/webhooks/events/incoming"
		for _, l := range devenv.Output() {
			if m := incomingURL.FindString(l); m != "" {
				incoming = m
				break
			}
		}
		GinkgoWriter.Printf("webhookserver incoming URL: %s\n", incoming)
	}, NodeTimeout(8*time.Minute))

	It("has a valid demo WebhookConfig pointing at the reference receiver", func(ctx SpecContext) {
		_, err := kubectl(ctx, "wait", "--for=condition=Ready", "whc/demo", "-n", "demo", "--timeout=60s")
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl(ctx, "get", "whc", "demo", "-n", "demo", "-o", "jsonpath={.status.state}")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(Equal("valid"))
	}, SpecTimeout(90*time.Second))

	It("accepts config/samples with kubectl apply and delivers their messages to the receiver", func(ctx SpecContext) {
		_, err := kubectl(ctx, "apply", "-n", "demo", "-k", "config/samples")
		Expect(err).NotTo(HaveOccurred())
		out, err := kubectl(ctx, "get", "labhook", "-A")
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []string{"25f377ac", "56ea830e", "619a8bbe", "acf1109b", "25f377ac-server", "4dd6be9e"} {
			Expect(out).To(ContainSubstring(want))
		}
		// The reference receiver logs every verified message; the sample
		// LabResources' RESOURCE CREATED and the sample EVENT STARTED arrive.
		Eventually(func() string { return strings.Join(devenv.Output(), "\n") }).
			WithTimeout(30*time.Second).WithPolling(time.Second).Should(And(ContainSubstring("4dd6be9e"), ContainSubstring("RESOURCE")),
			"the receiver started by make dev should log the delivered messages")
		_, err = kubectl(ctx, "wait", "--for=jsonpath={.status.phase}=Delivered", "om/4dd6be9e", "-n", "demo", "--timeout=30s")
		Expect(err).NotTo(HaveOccurred())
	}, SpecTimeout(90*time.Second))

	It("turns the seed's incoming example, posted with curl, into LabResources, LabInterfaces and Secrets", func(ctx SpecContext) {
		// A second organisation, set up with kubectl as its admin would:
		// the seed reuses the sample ids, and one organisation's objects
		// must not collide with another's.
		_, err := kubectl(ctx, "create", "namespace", "acme")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "create", "secret", "generic", "backend-api-key", "-n", "acme", "--from-literal=apiKey=e2e-acme-key-0123456789abcdef")
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "label", "secret", "backend-api-key", "-n", "acme", "labhook.io/api-key=true")
		Expect(err).NotTo(HaveOccurred())

		curl := exec.CommandContext(ctx, "curl", "-sS", "-X", "POST",
			"-H", "Authorization: Bearer acme:e2e-acme-key-0123456789abcdef",
			"-H", "Accept: application/json", "-H", "Content-Type: application/json",
			"-w", "\nHTTP %{http_code}\n", "--data-binary", "@"+filepath.Join(root, seedmsg.Path), incoming)
		var out []byte
		// The webhookserver's cache may need a moment to see the new key.
		Eventually(func() string {
			out, _ = curl.CombinedOutput()
			GinkgoWriter.Printf("$ curl ... %s\n%s\n", incoming, out)
			s := string(out)
			curl = exec.CommandContext(ctx, curl.Args[0], curl.Args[1:]...)
			return s
		}).WithTimeout(20 * time.Second).WithPolling(time.Second).Should(ContainSubstring("HTTP 200"))
		Expect(string(out)).To(ContainSubstring(`"source_message_id"`))

		got, err := kubectl(ctx, "get", "labresources", "-n", "acme", "-o", "jsonpath={.items[*].spec.id}")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.Fields(got)).To(ConsistOf("25f377ac", "56ea830e", "619a8bbe", "acf1109b"))
		got, err = kubectl(ctx, "get", "labinterfaces", "-n", "acme", "-o", "jsonpath={.items[*].spec.name}")
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(And(ContainSubstring("Server Web Application"), ContainSubstring("Hosted Service"), ContainSubstring("Agent"), ContainSubstring("Client")))
		// The URL resource was reported READY, so it is Ready.
		_, err = kubectl(ctx, "wait", "--for=condition=Ready", "lr/acf1109b", "-n", "acme", "--timeout=30s")
		Expect(err).NotTo(HaveOccurred())
		// Credentials live in Secrets only, never in a LabInterface.
		lis, err := kubectl(ctx, "get", "labinterfaces", "-n", "acme", "-o", "yaml")
		Expect(err).NotTo(HaveOccurred())
		Expect(lis).NotTo(ContainSubstring("PLACEHOLDER-NOT-A-REAL"))
		secrets, err := kubectl(ctx, "get", "secrets", "-n", "acme", "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		Expect(len(strings.Fields(secrets))).To(BeNumerically(">=", 3), "the API key and two credential Secrets")
		// What the backend sent is not sent back to it: no RESOURCE or
		// INTERFACE message for the echo, once the manager has seen it all.
		_, err = kubectl(ctx, "wait", "--for=jsonpath={.status.observedGeneration}=1", "lr", "--all", "-n", "acme", "--timeout=30s")
		Expect(err).NotTo(HaveOccurred())
		oms, err := kubectl(ctx, "get", "outgoingmessages", "-n", "acme", "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(oms)).To(BeEmpty(), "echo suppression: the backend's own objects produce no messages")
		all, err := kubectl(ctx, "get", "labhook", "-A")
		Expect(err).NotTo(HaveOccurred())
		Expect(all).To(ContainSubstring("acme"))
		fmt.Fprintln(GinkgoWriter, "end-to-end walk-through passed")
	}, SpecTimeout(90*time.Second))
})
