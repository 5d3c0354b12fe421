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

// Command manager runs labhook's controllers.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers"
	"github.com/labhook/labhook/controllers/secretcache"
	"github.com/labhook/labhook/controllers/sharding"
	"github.com/labhook/labhook/controllers/tolerantwatch"
	"github.com/labhook/labhook/internal/cmdutil"
)

var version = "dev"

// managerGCPercent is the manager's GOGC unless the environment sets one.
// Its heap is mostly the informers' cache, which lives as long as the
// process: collecting at 50 % growth instead of 100 % keeps about 50 MiB
// fewer dead bytes beside 30,000 cached objects (make bench's memory run).
const managerGCPercent = 50

func main() {
	opts := controllers.DefaultOptions()
	opts.Version = version
	var (
		metricsAddr, probeAddr, allowedCIDRs string
		pprofAddr, shard                     string
		leaderElectionNamespace              string
		leaderElect, secureMetrics           bool
		common                               cmdutil.Flags
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS, only to clients whose token the API server authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof endpoints, for profiling; empty disables them.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so only one manager is active.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; required when running outside a cluster.")
	flag.StringVar(&shard, "shard", "", "Serve only the organisations whose Namespace is labelled labhook.io/shard=NAME, with its own leader election; "+
		"without it, only those with no such label.")
	flag.StringVar(&opts.CallbackURL, "callback-url", "", "The webhookserver's public incoming URL, sent as callback in every message.")
	flag.BoolVar(&opts.AllowHTTP, "allow-http", false, "Allow http:// webhook URLs.")
	flag.StringVar(&allowedCIDRs, "allowed-target-cidrs", "", "Comma-separated CIDRs exempt from the outbound SSRF guard, e.g. 10.0.0.0/8.")
	flag.DurationVar(&opts.MessageRetention, "message-retention", opts.MessageRetention, "How long Delivered OutgoingMessages are kept.")
	flag.IntVar(&opts.MaxRetainedMessages, "max-retained-messages", opts.MaxRetainedMessages, "Delivered OutgoingMessages kept per namespace; the oldest go first.")
	flag.IntVar(&opts.BacklogWarning, "backlog-warning", opts.BacklogWarning, "Pending messages past which a WebhookConfig is Backlogged.")
	flag.DurationVar(&opts.InvalidateAfter, "invalidate-after", opts.InvalidateAfter, "Continuous delivery failure after which a valid WebhookConfig becomes invalid.")
	flag.IntVar(&opts.MaxConcurrentDeliveries, "max-concurrent-deliveries", opts.MaxConcurrentDeliveries, "Deliveries in flight at once, all organisations together.")
	flag.IntVar(&opts.MaxConcurrentDeliveriesPerOrganisation, "max-concurrent-deliveries-per-organisation", opts.MaxConcurrentDeliveriesPerOrganisation,
		"Deliveries in flight at once for one organisation, whatever its number of WebhookConfigs.")
	flag.IntVar(&opts.MaxConcurrentRequestsPerConfig, "max-concurrent-requests-per-config", opts.MaxConcurrentRequestsPerConfig,
		"Deliveries in flight at once to one WebhookConfig whose spec.maxConcurrentRequests is unset.")
	flag.IntVar(&opts.MaxPendingLabMessages, "max-pending-lab-messages", opts.MaxPendingLabMessages,
		"Pending OutgoingMessages of LabResources and LabInterfaces per WebhookConfig; beyond it, objects hold what they owe.")
	flag.DurationVar(&opts.ProbeInterval, "probe-interval", opts.ProbeInterval, "How often a failing WebhookConfig's oldest Pending message is retried early.")
	flag.BoolVar(&opts.RecordDeliveredMessages, "record-delivered-messages", opts.RecordDeliveredMessages,
		"Create an OutgoingMessage for every lab message, even when it could be sent directly.")
	flag.DurationVar(&opts.RotationGracePeriod, "rotation-grace-period", opts.RotationGracePeriod, "How long a rotated-out signing secret still signs.")
	common.Bind(flag.CommandLine)
	flag.Parse()
	log := common.SetupLogger()
	if limit := cmdutil.SetMemoryLimitFromEnv(); limit > 0 {
		log.Info("Go memory limit set from the container's", "bytes", limit)
	}
	log.Info("garbage collector target", "GOGC", cmdutil.SetGCPercentDefault(managerGCPercent))

	for name, v := range map[string]int{
		"--max-concurrent-deliveries":                  opts.MaxConcurrentDeliveries,
		"--max-concurrent-deliveries-per-organisation": opts.MaxConcurrentDeliveriesPerOrganisation,
		"--max-concurrent-requests-per-config":         opts.MaxConcurrentRequestsPerConfig,
		"--max-pending-lab-messages":                   opts.MaxPendingLabMessages,
	} {
		if v < 1 {
			log.Error(fmt.Errorf("%s must be at least 1, got %d", name, v), "invalid flag")
			os.Exit(1)
		}
	}
	if opts.ProbeInterval <= 0 {
		log.Error(fmt.Errorf("--probe-interval must be positive, got %s", opts.ProbeInterval), "invalid flag")
		os.Exit(1)
	}
	for _, c := range strings.Split(allowedCIDRs, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			log.Error(err, "invalid --allowed-target-cidrs entry", "cidr", c)
			os.Exit(1)
		}
		opts.AllowedTargetCIDRs = append(opts.AllowedTargetCIDRs, p)
	}

	scheme := cmdutil.Scheme()
	cfg, err := common.RESTConfig("manager", version)
	if err != nil {
		log.Error(err, "unable to get the API server's config")
		os.Exit(1)
	}

	// The organisations of this manager's shard: its cache keeps only
	// theirs, and its uncached reads see only theirs.
	orgs, err := sharding.New(cfg, scheme, shard)
	if err != nil {
		log.Error(err, "invalid flag")
		os.Exit(1)
	}
	opts.Organisations = orgs

	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if secureMetrics {
		// kubebuilder's scaffold: TokenReview, then SubjectAccessReview for
		// the request's verb and path (RBAC in config/rbac/metrics_*.yaml).
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	// The cache's informers read through two filters: first the objects of
	// other shards' organisations are dropped before anything decodes them;
	// then a labhook object whose stored JSON the Go types refuse is
	// skipped rather than failing the list, so one such object never stops
	// the watch for every organisation.
	cacheCfg := rest.CopyConfig(cfg)
	cacheCfg.Wrap(orgs.Transport)
	cacheCfg.Wrap(tolerantwatch.New(scheme, labhookv1alpha1.GroupVersion.Group).Transport)
	cacheHTTP, err := rest.HTTPClientFor(cacheCfg)
	if err != nil {
		log.Error(err, "unable to build the cache's HTTP client")
		os.Exit(1)
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              sharding.LeaderElectionID(shard),
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		// managedFields and kubectl's last-applied copy are never read by
		// labhook; dropping them from the cache cuts the manager's memory
		// with 30k objects by about a third. Secret data never enters it.
		Cache:    cache.Options{DefaultTransform: secretcache.Transform, HTTPClient: cacheHTTP},
		NewCache: orgs.NewCache(cache.New),
		// Secrets are read live, and the few labhook needs are kept by
		// resourceVersion, never through an informer holding every
		// Secret's data.
		NewClient: secretcache.NewClient(secretcache.DefaultMaxBytes),
	})
	if err != nil {
		log.Error(err, "unable to create manager")
		os.Exit(1)
	}
	if err := controllers.Setup(mgr, opts); err != nil {
		log.Error(err, "unable to set up controllers")
		os.Exit(1)
	}
	utilruntime.Must(mgr.AddHealthzCheck("healthz", healthz.Ping))
	utilruntime.Must(mgr.AddReadyzCheck("readyz", healthz.Ping))

	log.Info("starting manager", "version", version, "shard", shard)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
