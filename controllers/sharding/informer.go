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
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/watchlist"
)

// NewInformer is a cache.Options.NewInformer: the informer it builds keeps
// only the objects of the namespaces o serves, and lists again when one
// joins or leaves.
func (o *Organisations) NewInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration,
	indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	s := &scopedListWatch{orgs: o, inner: toolscache.ToListerWatcherWithContext(lw), innerRaw: lw,
		watches: map[*scopedWatch]struct{}{}}
	inf := toolscache.NewSharedIndexInformer(s, obj, resync, indexers)
	s.store = inf.GetIndexer()
	o.subscribe(s)
	return inf
}

// scopedListWatch is one informer's list and watch, limited to the
// namespaces its Organisations serve. (Transport drops most other objects
// before they are decoded; this is the check that holds whatever the
// encoding.)
type scopedListWatch struct {
	orgs     *Organisations
	inner    toolscache.ListerWatcherWithContext
	innerRaw toolscache.ListerWatcher
	store    toolscache.Indexer

	mu sync.Mutex
	// stale: the informer must list again; its next watch ends at once.
	stale   bool
	watches map[*scopedWatch]struct{}
}

var (
	_ toolscache.ListerWatcher            = &scopedListWatch{}
	_ toolscache.ListerWatcherWithContext = &scopedListWatch{}
)

// IsWatchListSemanticsUnSupported passes on what the wrapped ListerWatcher
// says about streaming lists.
func (s *scopedListWatch) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(s.innerRaw)
}

func (s *scopedListWatch) List(opts metav1.ListOptions) (runtime.Object, error) {
	return s.ListWithContext(context.Background(), opts)
}

func (s *scopedListWatch) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return s.WatchWithContext(context.Background(), opts)
}

// ListWithContext lists, leaving out the objects of namespaces not served.
// The first page of a list clears the need to list again: what it returns
// is complete for the organisations served now.
func (s *scopedListWatch) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	if opts.Continue == "" {
		s.restart()
	}
	list, err := s.inner.ListWithContext(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := filterList(list, s.keep); err != nil {
		return nil, err
	}
	return list, nil
}

// WatchWithContext watches, passing on only the events of namespaces
// served. While the informer must list again, the watch ends at once with
// 410 Expired, which makes the reflector list.
func (s *scopedListWatch) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		s.restart() // a streaming list
	}
	s.mu.Lock()
	stale := s.stale
	s.mu.Unlock()
	if stale {
		w := watch.NewFake()
		go func() {
			defer w.Stop()
			w.Error(expired())
		}()
		return w, nil
	}
	inner, err := s.inner.WatchWithContext(ctx, opts)
	if err != nil {
		return nil, err
	}
	w := &scopedWatch{scope: s, inner: inner, out: make(chan watch.Event), done: make(chan struct{}), expire: make(chan struct{})}
	s.mu.Lock()
	s.watches[w] = struct{}{}
	if s.stale {
		w.expireOnce.Do(func() { close(w.expire) })
	}
	s.mu.Unlock()
	go w.run()
	return w, nil
}

// restart begins a list: nothing is stale.
func (s *scopedListWatch) restart() {
	s.mu.Lock()
	s.stale = false
	s.mu.Unlock()
}

func (s *scopedListWatch) keep(obj runtime.Object) bool {
	ns := namespaceOf(obj)
	return ns == "" || s.orgs.keep(ns)
}

func (s *scopedListWatch) hasObjects(ns string) bool {
	if s.store == nil {
		return false
	}
	if objs, err := s.store.ByIndex(toolscache.NamespaceIndex, ns); err == nil {
		return len(objs) > 0
	}
	for _, k := range s.store.ListKeys() {
		if strings.HasPrefix(k, ns+"/") {
			return true
		}
	}
	return false
}

// expire makes the informer list again: its open watch ends with 410
// Expired, or the next one does.
func (s *scopedListWatch) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stale {
		relists.Inc()
	}
	s.stale = true
	for w := range s.watches {
		w.expireOnce.Do(func() { close(w.expire) })
	}
}

func expired() *metav1.Status {
	return &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusGone, Reason: metav1.StatusReasonExpired,
		Message: "the organisations this manager serves changed: list again",
	}
}

// scopedWatch passes on the events of served namespaces.
type scopedWatch struct {
	scope      *scopedListWatch
	inner      watch.Interface
	out        chan watch.Event
	done       chan struct{}
	stopOnce   sync.Once
	expire     chan struct{}
	expireOnce sync.Once
}

func (w *scopedWatch) ResultChan() <-chan watch.Event { return w.out }

func (w *scopedWatch) Stop() {
	w.stopOnce.Do(func() { close(w.done) })
}

func (w *scopedWatch) run() {
	defer func() {
		w.inner.Stop()
		w.scope.mu.Lock()
		delete(w.scope.watches, w)
		w.scope.mu.Unlock()
		close(w.out)
	}()
	for {
		select {
		case <-w.done:
			return
		case <-w.expire:
			select {
			case w.out <- watch.Event{Type: watch.Error, Object: expired()}:
			case <-w.done:
			}
			return
		case ev, ok := <-w.inner.ResultChan():
			if !ok {
				return
			}
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				if !w.scope.keep(ev.Object) {
					continue
				}
			}
			select {
			case w.out <- ev:
			case <-w.done:
				return
			}
		}
	}
}

func namespaceOf(obj runtime.Object) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return m.GetNamespace()
}
