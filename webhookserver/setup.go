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
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// What the webhookserver may do: read API-key Secrets and write credential
// Secrets; apply LabResources (and their status phase) and LabInterfaces,
// and delete them on DELETED messages.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=labhook.io,resources=labresources,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups=labhook.io,resources=labresources/status,verbs=patch
// +kubebuilder:rbac:groups=labhook.io,resources=labinterfaces,verbs=get;list;watch;patch;delete

// Options configure the webhookserver.
type Options struct {
	// MaxBodyBytes bounds a request body; larger is 413.
	MaxBodyBytes int64
	// RateLimit is the requests per second allowed per organisation, with a
	// burst of RateBurst (0: the rate, rounded up); 0 disables it.
	RateLimit float64
	RateBurst int
	// Regions, when set, is the exhaustive list of accepted regions.
	Regions []string
	// RequestTimeout bounds the API writes of one message.
	RequestTimeout time.Duration
	// RetryAfter is sent with a 503 when the API server is unavailable.
	RetryAfter time.Duration
	// ReplayEntries is how many answered messages are remembered in memory
	// for replays; objects remember them beyond that.
	ReplayEntries int
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS with a certificate
	// reloaded whenever the files change.
	TLSCertFile, TLSKeyFile string
	// ShutdownTimeout bounds the drain of in-flight requests on shutdown.
	ShutdownTimeout time.Duration
}

// DefaultOptions are the flag defaults.
func DefaultOptions() Options {
	return Options{
		MaxBodyBytes:    1 << 20,
		RateLimit:       50,
		RequestTimeout:  30 * time.Second,
		RetryAfter:      5 * time.Second,
		ReplayEntries:   10000,
		ShutdownTimeout: 30 * time.Second,
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
// only, selected by label, keeping just the key fields; and WebhookConfigs
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

func trimSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	out := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion, Labels: s.Labels,
	}, Data: map[string][]byte{}}
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
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, objectsApplied)
}
