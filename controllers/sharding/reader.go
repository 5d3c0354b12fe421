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

package sharding

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// NewCache wraps next (cache.New) so that the manager's cache serves only
// o's organisations: its informers are o's (NewInformer), its reads answer
// NotFound (Get) or nothing (List) outside them, and it starts once o
// knows every namespace.
func (o *Organisations) NewCache(next cache.NewCacheFunc) cache.NewCacheFunc {
	return func(cfg *rest.Config, opts cache.Options) (cache.Cache, error) {
		if opts.NewInformer != nil {
			return nil, errors.New("sharding: cache.Options.NewInformer is set already")
		}
		opts.NewInformer = o.NewInformer
		c, err := next(cfg, opts)
		if err != nil {
			return nil, err
		}
		return &scopedCache{Cache: c, orgs: o}, nil
	}
}

// Reader limits an uncached reader (the manager's API reader) to o's
// organisations, as the cache is.
func (o *Organisations) Reader(r client.Reader) client.Reader {
	return &scopedReader{reader: r, orgs: o}
}

type scopedCache struct {
	cache.Cache
	orgs *Organisations
}

func (c *scopedCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.orgs.get(ctx, c.Cache, key, obj, opts...)
}

func (c *scopedCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.orgs.list(ctx, c.Cache, list, opts...)
}

// Start starts the cache once every namespace is known.
func (c *scopedCache) Start(ctx context.Context) error {
	if err := c.orgs.start(ctx); err != nil {
		return err
	}
	return c.Cache.Start(ctx)
}

func (c *scopedCache) WaitForCacheSync(ctx context.Context) bool {
	return c.orgs.waitSynced(ctx) && c.Cache.WaitForCacheSync(ctx)
}

type scopedReader struct {
	reader client.Reader
	orgs   *Organisations
}

func (r *scopedReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return r.orgs.get(ctx, r.reader, key, obj, opts...)
}

func (r *scopedReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.orgs.list(ctx, r.reader, list, opts...)
}

func (o *Organisations) get(ctx context.Context, r client.Reader, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if key.Namespace != "" && !o.Has(key.Namespace) {
		return apierrors.NewNotFound(o.groupResource(obj), key.Name)
	}
	return r.Get(ctx, key, obj, opts...)
}

// list reads through r and leaves out the items of namespaces not served.
func (o *Organisations) list(ctx context.Context, r client.Reader, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	if lo.Namespace != "" && !o.Has(lo.Namespace) {
		return meta.SetList(list, nil)
	}
	if err := r.List(ctx, list, opts...); err != nil || lo.Namespace != "" {
		return err
	}
	return filterList(list, func(item runtime.Object) bool {
		ns := namespaceOf(item)
		return ns == "" || o.Has(ns)
	})
}

// filterList keeps the items of list that keep accepts. keep sees every
// item once, in order; list is rewritten only when one is left out.
func filterList(list runtime.Object, keep func(runtime.Object) bool) error {
	var kept []bool
	foreign := false
	_ = meta.EachListItem(list, func(item runtime.Object) error {
		k := keep(item)
		kept = append(kept, k)
		foreign = foreign || !k
		return nil
	})
	if !foreign {
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	out := items[:0]
	for i, item := range items {
		if kept[i] {
			out = append(out, item)
		}
	}
	return meta.SetList(list, out)
}

func (o *Organisations) groupResource(obj runtime.Object) schema.GroupResource {
	if o.scheme != nil {
		if gvk, err := apiutil.GVKForObject(obj, o.scheme); err == nil {
			plural, _ := meta.UnsafeGuessKindToResource(gvk)
			return plural.GroupResource()
		}
	}
	return schema.GroupResource{}
}
