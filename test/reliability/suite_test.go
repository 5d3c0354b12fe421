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

// Package reliability checks SPEC §6 with real processes: the manager and
// webhookserver binaries, built with go build, run against a local control
// plane and deliver to a loopback receiver on 127.0.0.1. It kills them with
// SIGKILL, runs two of them with leader election, takes the receiver down
// and bursts past the rate limit, and counts what was lost or duplicated.
package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/labhook/labhook/test/internal/cluster"
	"github.com/labhook/labhook/test/internal/suite"
)

// The suite's binaries, directory and control plane; root, tmp and cl are
// env's, for short.
var (
	env       *suite.Env
	root, tmp string
	cl        *cluster.Cluster
)

func TestReliability(t *testing.T) {
	RegisterFailHandler(Fail)
	// Once for the suite; most calls say their own timeout.
	SetDefaultEventuallyTimeout(60 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	SetDefaultConsistentlyDuration(2 * time.Second)
	SetDefaultConsistentlyPollingInterval(100 * time.Millisecond)
	RunSpecs(t, "Reliability suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrllog.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = suite.Start(ctx, "labhook-reliability-", "manager", "webhookserver")
	if env != nil {
		root, tmp, cl = env.Root, env.Tmp, env.Cluster
	}
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Printf("logs and kubeconfig in %s\n", tmp)
}, NodeTimeout(5*time.Minute))

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop(CurrentSpecReport().Failed())).To(Succeed())
	}
})

// binary returns a labhook binary built for the suite.
func binary(name string) string { return env.Binary(name) }

// newNamespace creates a fresh organisation for one spec.
func newNamespace(ctx context.Context, prefix string) string {
	GinkgoHelper()
	ns, err := env.Namespace(ctx, prefix)
	Expect(err).NotTo(HaveOccurred())
	return ns
}

func logPath(name string) string { return env.LogPath(name) }

// report prints a figure both to the test output and to the summary that
// the README's Performance and reliability section quotes.
func report(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	GinkgoWriter.Println("RELIABILITY " + line)
	AddReportEntry(line)
}
