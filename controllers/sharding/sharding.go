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

// Package sharding splits organisations across managers, the way Flux's
// controller sharding splits its objects, with the organisation's
// Namespace as the unit: a namespace labelled labhook.io/shard=NAME is
// served by the managers started with --shard=NAME (one leader per shard),
// and a namespace without the label by the managers started without it.
//
// Organisations follows the Namespaces (metadata only) and keeps the set
// this manager serves. It limits the manager's cache to that set: every
// informer still lists and watches its kind across the cluster (one watch
// per kind, whatever the number of organisations), but keeps only the
// objects of served namespaces, so memory grows with the shard, not with
// the cluster. Reads through the cache, and through the uncached reader
// wrapped with Reader, answer NotFound for any other namespace from the
// moment its label changes, so a reconcile woken by a timer or a finished
// delivery does nothing for an organisation that moved away.
//
// When an organisation joins the shard, the informers list again (from the
// API server's watch cache) so its existing objects arrive as creations and
// are reconciled; when one leaves, the same list removes its objects, which
// arrive as deletions. A brand-new namespace created with the label needs
// no list when its Namespace is seen before its objects, as it usually is:
// nothing of it was left out.
package sharding

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

var (
	servedNamespaces = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "labhook_shard_namespaces",
		Help: "Namespaces this manager serves: those labelled labhook.io/shard with its --shard, or those without the label when it runs without --shard.",
	})
	relists = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "labhook_shard_relists_total",
		Help: "Lists of one kind the manager's cache made again because an organisation joined or left its shard.",
	})
)

func init() { metrics.Registry.MustRegister(servedNamespaces, relists) }

// LeaderElectionID is the name of the Lease a shard's managers elect their
// leader with: each shard has its own, so each shard has one leader.
func LeaderElectionID(shard string) string {
	if shard == "" {
		return "labhook-manager.labhook.io"
	}
	return "labhook-manager-" + shard + ".labhook.io"
}

// ValidateName returns an error naming --shard when shard cannot be a
// shard's name: it must be a lowercase RFC 1123 label, so that it is a valid
// label value and fits in the Lease's name.
func ValidateName(shard string) error {
	if shard == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(shard); len(errs) > 0 {
		return fmt.Errorf("--shard=%q: %s", shard, strings.Join(errs, "; "))
	}
	return nil
}

// Organisations is the set of namespaces one manager serves.
type Organisations struct {
	shard    string
	scheme   *runtime.Scheme
	informer toolscache.SharedIndexInformer
	log      logr.Logger

	startOnce sync.Once
	startErr  error

	mu     sync.RWMutex
	ns     map[string]nsState // namespaces seen, or whose objects were
	count  int                // namespaces seen and served
	synced bool
	scopes []*scopedListWatch
}

// nsState is what is known of one namespace.
type nsState struct {
	// known: its Namespace was seen, and served says whether this manager
	// serves it. Until it is seen, it counts as unlabelled.
	known, served bool
	// dropped: objects of it were left out of the cache (it was not
	// served). If it joins, the informers lack them and must list again.
	dropped bool
	// passed: objects of it were let into the cache before its Namespace
	// was seen. If it then shows another shard's label, the informers
	// must list again to drop them.
	passed bool
}

// New follows the cluster's Namespaces for the manager started with
// --shard=shard ("" for none). scheme names the kinds in NotFound errors.
// Nothing runs until the cache built with NewCache starts.
func New(cfg *rest.Config, scheme *runtime.Scheme, shard string) (*Organisations, error) {
	if err := ValidateName(shard); err != nil {
		return nil, err
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("namespaces client: %w", err)
	}
	inf := metadatainformer.NewFilteredMetadataInformer(mc, corev1.SchemeGroupVersion.WithResource("namespaces"),
		"", 0, toolscache.Indexers{}, nil).Informer()
	o := &Organisations{shard: shard, scheme: scheme, informer: inf, ns: map[string]nsState{},
		log: ctrl.Log.WithName("sharding").WithValues("shard", shard)}
	// Only the name and the shard label are ever read: thousands of
	// namespaces cost a few hundred KiB.
	if err := inf.SetTransform(func(obj any) (any, error) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return obj, nil
		}
		out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
		}}
		if v, ok := m.Labels[labhookv1alpha1.LabelShard]; ok {
			out.Labels = map[string]string{labhookv1alpha1.LabelShard: v}
		}
		return out, nil
	}); err != nil {
		return nil, err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.observe(obj, true) },
		UpdateFunc: func(_, obj any) { o.observe(obj, true) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			o.observe(obj, false)
		},
	}); err != nil {
		return nil, err
	}
	return o, nil
}

// Shard is the name this manager serves ("" for the unassigned organisations).
func (o *Organisations) Shard() string { return o.shard }

// Has reports whether this manager serves namespace ns. A namespace not
// seen yet counts as unlabelled.
func (o *Organisations) Has(ns string) bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.served(o.ns[ns])
}

func (o *Organisations) served(st nsState) bool {
	if st.known {
		return st.served
	}
	return o.shard == ""
}

// keep reports whether objects of namespace ns belong in the cache, and
// remembers what it decided for a namespace that may join or leave.
func (o *Organisations) keep(ns string) bool {
	o.mu.RLock()
	st := o.ns[ns]
	o.mu.RUnlock()
	if st.known && (st.served || st.dropped) {
		return st.served
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	st = o.ns[ns]
	served := o.served(st)
	switch {
	case !served:
		st.dropped = true
	case !st.known:
		st.passed = true
	default:
		return true
	}
	o.ns[ns] = st
	return served
}

// Namespaces returns how many namespaces this manager serves.
func (o *Organisations) Namespaces() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.count
}

// observe records a namespace's label, or its deletion, and makes the
// informers list again when what they hold is no longer what it serves: a
// namespace that joins needs a list only if its objects were left out; one
// that leaves always does, so its objects leave the cache as deletions (an
// event let through just before the change may not be in the store yet);
// one seen for the first time with another shard's label, only if its
// objects were let in meanwhile.
func (o *Organisations) observe(obj any, exists bool) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	name := m.GetName()
	label := m.GetLabels()[labhookv1alpha1.LabelShard]
	o.mu.Lock()
	st := o.ns[name]
	was := o.served(st)
	now := exists && label == o.shard
	relist := false
	switch {
	case !exists:
		// Its objects are deleted before the Namespace is.
		relist = was && o.anyObjects(name)
		delete(o.ns, name)
	case now && !was:
		relist = st.dropped
		o.ns[name] = nsState{known: true, served: true}
	case !now && was && st.known:
		relist = true
		o.ns[name] = nsState{known: true, dropped: true}
	case !now && was:
		relist = st.passed || o.anyObjects(name)
		o.ns[name] = nsState{known: true, dropped: st.passed}
	default:
		o.ns[name] = nsState{known: true, served: now, dropped: st.dropped && !now}
	}
	o.count += b2i(exists && now) - b2i(st.known && st.served)
	servedNamespaces.Set(float64(o.count))
	synced, scopes := o.synced, append([]*scopedListWatch(nil), o.scopes...)
	o.mu.Unlock()
	if relist {
		if synced {
			o.log.Info("listing again", "namespace", name, "informers", len(scopes))
		}
		for _, s := range scopes {
			s.expire()
		}
	}
	if !synced || now == was || (!st.known && !now) {
		return
	}
	msg := "organisation left this shard"
	switch {
	case !exists:
		msg = "organisation deleted"
	case now:
		msg = "organisation joined this shard"
	}
	o.log.Info(msg, "namespace", name, "label", label)
}

// anyObjects reports whether any informer holds an object of ns.
func (o *Organisations) anyObjects(ns string) bool {
	for _, s := range o.scopes {
		if s.hasObjects(ns) {
			return true
		}
	}
	return false
}

// start runs the Namespace informer and waits until it has every
// namespace, so the cache never starts with organisations it does not know.
func (o *Organisations) start(ctx context.Context) error {
	o.startOnce.Do(func() {
		go o.informer.RunWithContext(ctx)
		if !toolscache.WaitForCacheSync(ctx.Done(), o.informer.HasSynced) {
			o.startErr = fmt.Errorf("namespaces not synced: %w", ctx.Err())
			return
		}
		o.mu.Lock()
		o.synced = true
		n := o.count
		o.mu.Unlock()
		o.log.Info("serving organisations", "namespaces", n, "leaderElectionID", LeaderElectionID(o.shard))
	})
	return o.startErr
}

// subscribe registers an informer's scope for membership changes.
func (o *Organisations) subscribe(s *scopedListWatch) {
	o.mu.Lock()
	o.scopes = append(o.scopes, s)
	o.mu.Unlock()
}

// waitSynced waits for the Namespace informer.
func (o *Organisations) waitSynced(ctx context.Context) bool {
	for {
		o.mu.RLock()
		synced := o.synced
		o.mu.RUnlock()
		if synced {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
