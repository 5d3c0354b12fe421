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

// Command webhookserver serves incoming messages from customer backends
// (POST /api/v1/webhooks/events/incoming) and writes them as LabResources,
// LabInterfaces and Secrets.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/labhook/labhook/internal/cmdutil"
	"github.com/labhook/labhook/webhookserver"
)

var version = "dev"

func main() {
	opts := webhookserver.DefaultOptions()
	var (
		bindAddr, metricsAddr, regions string
		common                         cmdutil.Flags
	)
	flag.StringVar(&bindAddr, "bind-address", ":8090", "Address of the incoming endpoint, /healthz and /readyz.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8091", "Address of /metrics; 0 disables it.")
	flag.Int64Var(&opts.MaxBodyBytes, "max-body-bytes", opts.MaxBodyBytes, "Largest accepted request body; larger is 413.")
	flag.IntVar(&opts.MaxConfigExtraBytes, "max-config-extra-bytes", opts.MaxConfigExtraBytes, "Largest size, in JSON bytes, of the config keys labhook does not know (config.extra) per resource or interface; larger is 400.")
	flag.Float64Var(&opts.RateLimit, "rate-limit", opts.RateLimit, "Requests per second per organisation; over it is 429. 0 disables.")
	flag.IntVar(&opts.RateBurst, "rate-burst", opts.RateBurst, "Requests per organisation allowed at once; 0 means --rate-limit, rounded up.")
	flag.IntVar(&opts.MaxConcurrentRequestsPerOrg, "max-concurrent-requests-per-org", opts.MaxConcurrentRequestsPerOrg, "Requests one organisation may have in progress; over it is 429. 0 disables.")
	flag.Int64Var(&opts.MaxInflightBytesPerOrg, "max-inflight-bytes-per-org", opts.MaxInflightBytesPerOrg, "Body bytes one organisation may have in progress; over it is 429. 0 disables.")
	flag.IntVar(&opts.MaxConcurrentRequests, "max-concurrent-requests", opts.MaxConcurrentRequests, "Requests in progress in all; over it is 503. 0 disables.")
	flag.Int64Var(&opts.MaxInflightBytes, "max-inflight-bytes", opts.MaxInflightBytes, "Body bytes in progress in all; over it is 503. 0 disables.")
	flag.Float64Var(&opts.OrgAPIQPS, "org-api-qps", opts.OrgAPIQPS, "Kubernetes API calls per second one organisation's messages may make. 0 disables.")
	flag.IntVar(&opts.OrgAPIBurst, "org-api-burst", opts.OrgAPIBurst, "Burst of --org-api-qps; 0 means the rate, rounded up.")
	flag.IntVar(&opts.OrgAPIConcurrency, "org-api-concurrency", opts.OrgAPIConcurrency, "Kubernetes API calls one organisation's messages may have in flight at once. 0 disables.")
	flag.Float64Var(&opts.AuthFailureRate, "auth-failure-rate", opts.AuthFailureRate, "Failed API-key attempts per second allowed per organisation name and per client address; past them 429. 0 disables.")
	flag.IntVar(&opts.AuthFailureBurst, "auth-failure-burst", opts.AuthFailureBurst, "Failed API-key attempts allowed at once; 0 means --auth-failure-rate, rounded up.")
	flag.BoolVar(&opts.FindRepliesInNamespace, "find-replies-in-namespace", false, "Look for the lab message a reply answers among every LabResource and LabInterface of the organisation (a field-selector list per message, costing the API server a pass over the namespace), not only among the objects the reply names.")
	flag.StringVar(&regions, "regions", "", "Comma-separated regions accepted in interfaces; empty accepts any region code.")
	flag.StringVar(&opts.TLSCertFile, "tls-cert-file", "", "Serve HTTPS with this certificate, reloaded when it changes.")
	flag.StringVar(&opts.TLSKeyFile, "tls-key-file", "", "The key of --tls-cert-file.")
	flag.DurationVar(&opts.RequestTimeout, "request-timeout", opts.RequestTimeout, "Time allowed for the API writes of one message.")
	flag.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", opts.ShutdownTimeout, "Time allowed to drain in-flight requests on shutdown.")
	common.Bind(flag.CommandLine)
	flag.Parse()
	log := common.SetupLogger()
	if limit := cmdutil.SetMemoryLimitFromEnv(); limit > 0 {
		log.Info("Go memory limit set from the container's", "bytes", limit)
	}
	if err := run(opts, bindAddr, metricsAddr, regions, &common); err != nil {
		log.Error(err, "webhookserver stopped")
		os.Exit(1)
	}
}

func run(opts webhookserver.Options, bindAddr, metricsAddr, regions string, common *cmdutil.Flags) error {
	for _, r := range strings.Split(regions, ",") {
		if r = strings.TrimSpace(r); r != "" {
			opts.Regions = append(opts.Regions, r)
		}
	}
	if opts.MaxBodyBytes < 1 {
		return fmt.Errorf("--max-body-bytes must be at least 1, not %d", opts.MaxBodyBytes)
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return fmt.Errorf("--tls-cert-file and --tls-key-file go together")
	}
	cfg, err := common.RESTConfig("webhookserver", version)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 cmdutil.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: "0", // /healthz and /readyz are on --bind-address
		Cache:                  webhookserver.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return err
	}
	if _, err := webhookserver.Setup(mgr, ln, opts); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting webhookserver", "version", version, "address", ln.Addr().String())
	return mgr.Start(ctrl.SetupSignalHandler())
}
