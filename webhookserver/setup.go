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

// Package webhookserver serves POST /api/v1/webhooks/events/incoming: a
// customer backend's incoming messages (seed 000) become LabResources,
// LabInterfaces and credential Secrets, written with server-side apply
// under the field manager labhook-webhookserver.
package webhookserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// What the webhookserver may do: read API-key Secrets, and read and write
// credential Secrets (only those it created; see ownCredentialSecret);
// apply LabResources (and their status phase) and LabInterfaces, and
// delete them on DELETED messages; read OutgoingMessages and record
// replies in their status. Server-side apply that creates an object needs
// create as well as patch. Credential Secrets are created and updated, not
// applied (see applySecret).
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=labhook.io,resources=labresources,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=labhook.io,resources=labresources/status,verbs=patch
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=labhook.io,resources=outgoingmessages,verbs=get
// +kubebuilder:rbac:groups=labhook.io,resources=outgoingmessages/status,verbs=patch

// Options configure the webhookserver. Every limit has a flag; 0 disables
// a limit.
type Options struct {
	// MaxBodyBytes bounds a request body; larger is 413.
	MaxBodyBytes int64
	// MaxConfigExtraBytes bounds the config keys labhook does not know
	// (config.extra) per config object, in JSON bytes.
	MaxConfigExtraBytes int
	// RateLimit is the requests per second allowed per organisation, with a
	// burst of RateBurst (0: the rate, rounded up); over it is 429.
	RateLimit float64
	RateBurst int
	// MaxConcurrentRequestsPerOrg and MaxInflightBytesPerOrg bound what
	// one organisation has in progress (over them: 429);
	// MaxConcurrentRequests and MaxInflightBytes bound the whole
	// webhookserver (over them: 503). A body's bytes are reserved before it
	// is read: its Content-Length, or MaxBodyBytes when it has none.
	MaxConcurrentRequestsPerOrg int
	MaxInflightBytesPerOrg      int64
	MaxConcurrentRequests       int
	MaxInflightBytes            int64
	// OrgAPIQPS and OrgAPIBurst are each organisation's budget of
	// Kubernetes API calls per second (0: the rate, rounded up);
	// OrgAPIConcurrency bounds its calls in flight.
	OrgAPIQPS         float64
	OrgAPIBurst       int
	OrgAPIConcurrency int
	// AuthFailureRate and AuthFailureBurst throttle failed API-key
	// attempts, per organisation name and per client address.
	AuthFailureRate  float64
	AuthFailureBurst int
	// FindRepliesInNamespace also looks for the lab message a reply answers
	// among every LabResource and LabInterface of the organisation, not
	// only those the reply names (see findReply).
	FindRepliesInNamespace bool
	// Regions, when set, is the exhaustive list of accepted regions.
	Regions []string
	// RequestTimeout bounds the API writes of one message.
	RequestTimeout time.Duration
	// RetryAfter is sent with a 503, and with a 429 for a limit that is
	// not a rate.
	RetryAfter time.Duration
	// ReplayEntries is how many answers are remembered in memory for
	// retries (each at most 4 KiB); objects remember them beyond that.
	ReplayEntries int
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS with a certificate
	// reloaded whenever the files change.
	TLSCertFile, TLSKeyFile string
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown.
	ShutdownTimeout time.Duration
}

// DefaultOptions are the flag defaults. The in-flight bytes and the
// request limits are sized for the container's memory limit in
// config/manager (see docs/incoming.md, Limits and tenancy).
func DefaultOptions() Options {
	return Options{
		MaxBodyBytes:                1 << 20,
		MaxConfigExtraBytes:         wire.DefaultMaxConfigExtraBytes,
		RateLimit:                   50,
		MaxConcurrentRequestsPerOrg: 8,
		MaxInflightBytesPerOrg:      8 << 20,
		MaxConcurrentRequests:       64,
		MaxInflightBytes:            32 << 20,
		OrgAPIQPS:                   100,
		OrgAPIBurst:                 200,
		OrgAPIConcurrency:           4,
		AuthFailureRate:             1,
		AuthFailureBurst:            20,
		RequestTimeout:              30 * time.Second,
		RetryAfter:                  5 * time.Second,
		ReplayEntries:               2000,
		ShutdownTimeout:             30 * time.Second,
	}
}

// Setup adds the webhookserver to mgr, serving on ln: the caches it reads,
// readiness once they have synced, TLS with certificate reload, and an HTTP
// server with timeouts and header limits that drains on shutdown.
func Setup(mgr manager.Manager, ln net.Listener, opts Options) (*Server, error) {
	log := mgr.GetLogger().WithName("webhookserver")
	srv := New(mgr.GetClient(), mgr.GetAPIReader(), log, opts)
	// Informers asked for before the manager starts are synced before srv
	// starts, and srv's start is what makes it ready.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Secret{}); err != nil {
		return nil, fmt.Errorf("informer for API-key Secrets: %w", err)
	}
	if _, err := mgr.GetCache().GetInformer(context.Background(), &labhookv1alpha1.WebhookConfig{}); err != nil {
		return nil, fmt.Errorf("informer for WebhookConfigs' public keys: %w", err)
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	if opts.TLSCertFile != "" || opts.TLSKeyFile != "" {
		cw, err := certwatcher.New(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		if err := mgr.Add(cw); err != nil {
			return nil, err
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cw.GetCertificate})
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      opts.RequestTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if err := mgr.Add(&manager.Server{Name: "incoming", Server: hs, Listener: ln, ShutdownTimeout: &opts.ShutdownTimeout}); err != nil {
		return nil, err
	}
	return srv, nil
}

// CacheOptions keeps the webhookserver's cache small: API-key Secrets
// only, selected by label, keeping just the key fields and the
// WebhookConfig the key names (see trimSecret); and WebhookConfigs
// trimmed to their names and public keys, for the JWKS endpoint.
// LabResources and LabInterfaces are not cached: each message reads the
// objects it names.
func CacheOptions() cache.Options {
	keys := labels.SelectorFromSet(labels.Set{labhookv1alpha1.LabelAPIKey: "true"})
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:                 {Label: keys, Transform: trimSecret},
			&labhookv1alpha1.WebhookConfig{}: {Transform: trimWebhookConfig},
		},
	}
}

// trimSecret keeps of an API-key Secret what authentication reads: its
// name, labels, key fields, and the labhook.io/webhook-config annotation
// (the key's WebhookConfig); no other annotation (a kubectl apply's
// last-applied-configuration would hold the whole Secret again).
func trimSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	out := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion, Labels: s.Labels,
	}, Data: map[string][]byte{}}
	if v, ok := s.Annotations[labhookv1alpha1.AnnotationWebhookConfig]; ok {
		// A name has at most 253 characters: a longer value is refused
		// all the same when cut to 254, and costs the cache no more.
		if len(v) > validation.DNS1123SubdomainMaxLength+1 {
			v = v[:validation.DNS1123SubdomainMaxLength+1]
		}
		out.Annotations = map[string]string{labhookv1alpha1.AnnotationWebhookConfig: v}
	}
	for _, k := range []string{labhookv1alpha1.SecretKeyAPIKey, labhookv1alpha1.SecretKeyAPIKeySHA256} {
		if v, ok := s.Data[k]; ok {
			out.Data[k] = v
		}
	}
	return out, nil
}

// Metrics, on the controller-runtime registry, with bounded labels.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "labhook_incoming_requests_total",
		Help: "Incoming webhook requests by HTTP status code.",
	}, []string{"code"})
	requestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "labhook_incoming_request_duration_seconds",
		Help:    "Time to answer an incoming webhook request.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	objectsApplied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "labhook_incoming_objects_total",
		Help: "Objects written or skipped for incoming messages, by kind and operation.",
	}, []string{"kind", "operation"})
	requestsInProgress = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_incoming_requests_in_progress",
		Help: "Incoming requests admitted and not yet answered (see --max-concurrent-requests).",
	})
	bytesInProgress = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_incoming_body_bytes_in_progress",
		Help: "Body bytes reserved by the requests in progress (see --max-inflight-bytes).",
	})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, objectsApplied, requestsInProgress, bytesInProgress)
}
