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

// Package secretcache keeps Secret data out of the manager's informers.
//
// A cached controller-runtime client starts a cluster-wide informer holding
// every Secret's data the first time it reads one Secret: the manager's
// memory then grows with every tenant's Secrets, and the process holds them
// all. The manager needs the data of a few Secrets only (signing and
// authorization Secrets of WebhookConfigs), so its client here:
//
//   - never reads Secrets from an informer with data (client DisableFor, as
//     Flux does); Secret watches are metadata-only;
//   - serves Secret metadata from the metadata informer, and the data of a
//     Secret it needs from a small in-process store keyed by the Secret's
//     resourceVersion, as the metadata informer last saw it. The delivery
//     hot path therefore does not GET a Secret per message, and a change to
//     the Secret (a new resourceVersion) is read from the API server once.
//
// Transform is the informers' transform: it drops what labhook never reads
// (managedFields, kubectl's last-applied-configuration, which for a Secret
// holds its data) and any Secret data, should an informer with data ever
// be started.
package secretcache

import (
	"container/list"
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultMaxBytes bounds the data the store holds. Signing and
// authorization Secrets are a few hundred bytes each, so this holds
// thousands of them.
const DefaultMaxBytes = 8 << 20

// lastApplied is kubectl's annotation holding the whole applied object.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// secretGVK is what metadata reads of Secrets carry.
var secretGVK = corev1.SchemeGroupVersion.WithKind("Secret")

// Transform is a cache.Options.DefaultTransform: it strips managedFields
// and kubectl's last-applied-configuration annotation from every object,
// and data from any Secret.
func Transform(obj any) (any, error) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		return tomb, nil
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[lastApplied] != "" {
			delete(a, lastApplied)
			m.SetAnnotations(a)
		}
	}
	if s, ok := obj.(*corev1.Secret); ok {
		s.Data, s.StringData = nil, nil
	}
	return obj, nil
}

// NewClient returns a client.NewClientFunc (ctrl.Options.NewClient) that
// builds the manager's client as described in the package comment, with a
// store of at most maxBytes of Secret data (DefaultMaxBytes when <= 0).
func NewClient(maxBytes int) client.NewClientFunc {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return func(config *rest.Config, options client.Options) (client.Client, error) {
		var informers client.Reader
		if options.Cache != nil {
			informers = options.Cache.Reader
			disabled := append([]client.Object{}, options.Cache.DisableFor...)
			options.Cache.DisableFor = append(disabled, &corev1.Secret{})
		}
		c, err := client.New(config, options)
		if err != nil {
			return nil, err
		}
		return &Client{Client: c, informers: informers, store: newStore(maxBytes)}, nil
	}
}

// Client is a client.Client whose Secret reads never go through an
// informer with data.
type Client struct {
	client.Client
	// informers is the manager's cache; only Secret metadata is read from it.
	informers client.Reader
	store     *store
}

// Get reads Secret metadata from the metadata informer and Secret data
// through the resourceVersion-keyed store; everything else as usual.
func (c *Client) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if c.informers == nil {
		return c.Client.Get(ctx, key, obj, opts...)
	}
	switch o := obj.(type) {
	case *metav1.PartialObjectMetadata:
		if o.GroupVersionKind() == secretGVK {
			return c.informers.Get(ctx, key, o, opts...)
		}
	case *corev1.Secret:
		return c.getSecret(ctx, key, o, opts...)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// List lists Secret metadata from the metadata informer; everything else as
// usual (a list of Secrets with data goes to the API server).
func (c *Client) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*metav1.PartialObjectMetadataList); ok && c.informers != nil &&
		l.GroupVersionKind() == corev1.SchemeGroupVersion.WithKind("SecretList") {
		return c.informers.List(ctx, l, opts...)
	}
	return c.Client.List(ctx, list, opts...)
}

func (c *Client) getSecret(ctx context.Context, key client.ObjectKey, s *corev1.Secret, opts ...client.GetOption) error {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(secretGVK)
	if err := c.informers.Get(ctx, key, m); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		// Not seen by the informer (yet): the API server decides.
		c.store.forget(key)
		return c.Client.Get(ctx, key, s, opts...)
	}
	if c.store.get(key, m.ResourceVersion, s) {
		return nil
	}
	if err := c.Client.Get(ctx, key, s, opts...); err != nil {
		if apierrors.IsNotFound(err) {
			c.store.forget(key)
		}
		return err
	}
	c.store.put(key, s)
	return nil
}

// store is a least-recently-used set of Secrets, bounded by the bytes of
// their data.
type store struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	lru      *list.List // of *entry, most recent first
	byKey    map[types.NamespacedName]*list.Element
}

type entry struct {
	key    types.NamespacedName
	secret *corev1.Secret
	size   int
}

func newStore(maxBytes int) *store {
	return &store{maxBytes: maxBytes, lru: list.New(), byKey: map[types.NamespacedName]*list.Element{}}
}

// size estimates what s costs in memory: its data and keys, plus metadata.
func size(s *corev1.Secret) int {
	n := 512
	for k, v := range s.Data {
		n += len(k) + len(v)
	}
	return n
}

// get copies the stored Secret into out when it is at resourceVersion rv.
func (st *store) get(key types.NamespacedName, rv string, out *corev1.Secret) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	el, ok := st.byKey[key]
	if !ok || el.Value.(*entry).secret.ResourceVersion != rv {
		return false
	}
	st.lru.MoveToFront(el)
	el.Value.(*entry).secret.DeepCopyInto(out)
	return true
}

// put stores a copy of s, evicting the least recently used entries to stay
// within maxBytes. A Secret larger than a sixteenth of the budget is not
// stored: the Secrets labhook needs are small, and one large one must not
// evict them all.
func (st *store) put(key types.NamespacedName, s *corev1.Secret) {
	n := size(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.forgetLocked(key)
	if n > st.maxBytes/16 {
		return
	}
	for st.bytes+n > st.maxBytes && st.lru.Len() > 0 {
		st.forgetLocked(st.lru.Back().Value.(*entry).key)
	}
	st.byKey[key] = st.lru.PushFront(&entry{key: key, secret: s.DeepCopy(), size: n})
	st.bytes += n
}

func (st *store) forget(key types.NamespacedName) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.forgetLocked(key)
}

func (st *store) forgetLocked(key types.NamespacedName) {
	if el, ok := st.byKey[key]; ok {
		st.bytes -= el.Value.(*entry).size
		st.lru.Remove(el)
		delete(st.byKey, key)
	}
}
