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

// Command devenv is `make dev`: a local control plane with labhook's CRDs,
// the manager, the webhookserver, the reference receiver and a demo
// organisation. It prints "labhook dev environment ready" when everything
// is up; Ctrl-C stops it all.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/labhook/labhook/internal/devenv"
)

func main() {
	o := devenv.DefaultOptions()
	flag.StringVar(&o.KubeconfigOut, "kubeconfig-out", o.KubeconfigOut, "Where to write the control plane's kubeconfig.")
	flag.StringVar(&o.BinDir, "bin-dir", o.BinDir, "Where to build the binaries and write the child processes' logs.")
	flag.BoolVar(&o.NoDemo, "no-demo", false, "Do not create the demo organisation.")
	flag.IntVar(&o.ReceiverPort, "receiver-port", 0, "Port of the reference receiver on 127.0.0.1; 0 picks a free one.")
	flag.IntVar(&o.WebhookServerPort, "webhookserver-port", 0, "Port of the webhookserver's incoming endpoint; 0 picks a free one.")
	flag.IntVar(&o.WebhookServerMetricsPort, "webhookserver-metrics-port", 0, "Port of the webhookserver's metrics; 0 picks a free one.")
	flag.IntVar(&o.ManagerProbePort, "manager-probe-port", 0, "Port of the manager's /healthz and /readyz; 0 picks a free one.")
	flag.IntVar(&o.ManagerMetricsPort, "manager-metrics-port", 0, "Port of the manager's metrics; 0 picks a free one.")
	zapOpts := zap.Options{Development: true, Level: zapcore.InfoLevel}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	logger := zap.New(zap.UseFlagOptions(&zapOpts), zap.WriteTo(os.Stderr))
	ctrl.SetLogger(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = ctrl.LoggerInto(ctx, logger.WithName("devenv"))
	if err := devenv.Run(ctx, o); err != nil {
		logger.Error(err, "dev environment failed")
		os.Exit(1)
	}
}
