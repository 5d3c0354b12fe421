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

package webhookserver

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// The JWKS endpoint reads the public keys the WebhookConfig controller
// publishes in status, from the webhookserver's cache.
// +kubebuilder:rbac:groups=labhook.io,resources=webhookconfigs,verbs=get;list;watch

// Bounds of the JWKS endpoint. It is unauthenticated, so what one caller
// can cost is fixed here, not by the input: answers come from memory (the
// cache holds WebhookConfigs trimmed to their public keys), each
// organisation's JWKS has at most jwksMaxKeys keys, and each organisation
// is answered at most jwksRate times a second (burst jwksBurst), with a
// budget of its own so that fetching an organisation's keys never uses up
// its incoming-message rate limit.
const (
	jwksMaxKeys = 32
	jwksRate    = 5
	jwksBurst   = 20
	// jwksLimiters is how many organisations' limiters are remembered;
	// the least recently used are forgotten first.
	jwksLimiters = 4096
	// jwksMaxAge is the Cache-Control max-age of an answer, in seconds. A
	// receiver whose cached keys verify no signature should fetch again.
	jwksMaxAge = 30
)

// jwksRequests counts JWKS answers by HTTP status code.
var jwksRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "labhook_jwks_requests_total",
	Help: "Requests for an organisation's JWKS, by HTTP status code.",
}, []string{"code"})

func init() {
	metrics.Registry.MustRegister(jwksRequests)
}

// jwks serves GET wire.JWKSPathPrefix{org}: the Ed25519 public keys of
// the organisation's WebhookConfigs (status.publicKey and, while a
// rotation's grace period lasts, status.previousPublicKey) as an RFC 7517
// JWK Set of RFC 8037 OKP keys. Every organisation that exists or not,
// with or without Ed25519 configs, gets the same kind of answer, so the
// endpoint does not tell which organisations exist.
type jwks struct {
	reader   client.Reader
	log      logr.Logger
	limiters *lru.Cache // org -> *rate.Limiter
}

// jwksHandler returns the JWKS endpoint, reading from s's cached client.
func (s *Server) jwksHandler() http.Handler {
	return &jwks{reader: s.client, log: s.log.WithName("jwks"), limiters: lru.New(jwksLimiters)}
}

func (j *jwks) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw, code: http.StatusOK}
	defer func() { jwksRequests.WithLabelValues(strconv.Itoa(w.code)).Inc() }()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed; use GET", r.Method), nil)
		return
	}
	org := r.PathValue("org")
	if errs := validation.IsDNS1123Label(org); len(errs) > 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%q is not an organisation id: %s", org, strings.Join(errs, "; ")), nil)
		return
	}
	if wait, ok := j.allow(org); !ok {
		retryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("the keys of organisation %s are served at most %d times a second; retry later or cache them (Cache-Control)", org, jwksRate), nil)
		return
	}
	var list labhookv1alpha1.WebhookConfigList
	if err := j.reader.List(r.Context(), &list, client.InNamespace(org)); err != nil {
		j.log.Error(err, "list webhookconfigs", "org", org)
		retryAfter(w, 5*time.Second)
		writeError(w, http.StatusServiceUnavailable, "the keys cannot be read; retry later", nil)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(jwksMaxAge))
	writeJSON(w, http.StatusOK, keySet(list.Items))
}

// keySet is the JWKS of configs: current keys first, then previous ones,
// each group by config name, without repeats, at most jwksMaxKeys.
func keySet(configs []labhookv1alpha1.WebhookConfig) wire.JWKS {
	slices.SortFunc(configs, func(a, b labhookv1alpha1.WebhookConfig) int { return strings.Compare(a.Name, b.Name) })
	set := wire.JWKS{Keys: []wire.JWK{}}
	seen := map[string]bool{}
	add := func(pub string) {
		if pub == "" || len(set.Keys) >= jwksMaxKeys {
			return
		}
		k, err := wire.NewJWK(pub)
		if err != nil || seen[k.Kid] {
			return
		}
		seen[k.Kid] = true
		set.Keys = append(set.Keys, k)
	}
	for _, current := range []bool{true, false} {
		for i := range configs {
			c := &configs[i]
			switch {
			case c.DeletionTimestamp != nil:
			case current:
				add(c.Status.PublicKey)
			default:
				add(c.Status.PreviousPublicKey)
			}
		}
	}
	return set
}

// allow takes a token from org's JWKS limiter; when there is none it
// returns how long until there is.
func (j *jwks) allow(org string) (time.Duration, bool) {
	var l *rate.Limiter
	if v, ok := j.limiters.Get(org); ok {
		l = v.(*rate.Limiter)
	} else {
		l = rate.NewLimiter(jwksRate, jwksBurst)
		j.limiters.Add(org, l)
	}
	res := l.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// trimWebhookConfig is the cache transform of WebhookConfigs: the JWKS
// needs a config's name, whether it is being deleted, and its public keys,
// so the cache holds a few hundred bytes per config whatever its spec or
// annotations hold.
func trimWebhookConfig(obj any) (any, error) {
	c, ok := obj.(*labhookv1alpha1.WebhookConfig)
	if !ok {
		return obj, nil
	}
	return &labhookv1alpha1.WebhookConfig{
		ObjectMeta: metav1.ObjectMeta{
			Name: c.Name, Namespace: c.Namespace, UID: c.UID, ResourceVersion: c.ResourceVersion,
			DeletionTimestamp: c.DeletionTimestamp,
		},
		Status: labhookv1alpha1.WebhookConfigStatus{PublicKey: c.Status.PublicKey, PreviousPublicKey: c.Status.PreviousPublicKey},
	}, nil
}
