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

package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// requestValue is the value a request annotation gets: any new value asks
// labhook to act once, and now's time with nanoseconds is always new.
func requestValue(now time.Time) string { return now.UTC().Format(time.RFC3339Nano) }

// annotate sets one annotation with a merge patch, leaving every other
// field (and whoever manages it) alone.
func annotate(ctx context.Context, c client.Client, obj client.Object, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// errWaitTimeout is returned by waitFor when done never held.
var errWaitTimeout = errors.New("timed out")

// waitFor watches the object named like obj until done holds for it, and
// returns it then. It lists and watches only that object (a field selector
// on its name), as `kubectl wait` does, so it sees the state at once and
// every change after it. On timeout it returns the last state it saw and
// errWaitTimeout.
func waitFor[T client.Object](ctx context.Context, c client.WithWatch, obj T, list client.ObjectList, timeout time.Duration, done func(T) bool) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	byName := fields.OneTermEqualSelector("metadata.name", obj.GetName())
	opts := func(raw metav1.ListOptions) *client.ListOptions {
		return &client.ListOptions{Namespace: obj.GetNamespace(), FieldSelector: byName, Raw: &raw}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l := list.DeepCopyObject().(client.ObjectList)
			return l, c.List(ctx, l, opts(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return c.Watch(ctx, list.DeepCopyObject().(client.ObjectList), opts(o))
		},
	}
	last := obj
	ev, err := watchtools.UntilWithSync(ctx, lw, obj.DeepCopyObject(), nil, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, fmt.Errorf("%s was deleted", obj.GetName())
		case watch.Added, watch.Modified:
			if o, ok := ev.Object.(T); ok {
				last = o
				return done(o), nil
			}
		}
		return false, nil
	})
	if err != nil {
		if wait.Interrupted(err) || errors.Is(err, watchtools.ErrWatchClosed) {
			return last, errWaitTimeout
		}
		return last, err
	}
	return ev.Object.(T), nil
}
