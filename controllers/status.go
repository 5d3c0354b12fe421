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

package controllers

import (
	"context"
	"reflect"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// statusWriter is how every labhook writer writes a status: the
// reconcilers (WebhookConfig, OutgoingMessage, LabResource, LabInterface)
// and the outbox's writers of WebhookConfig status (delivery stats and
// invalidation, 410 Gone, the Backlogged count). Each states its change as
// a function of the object as read (apply), and writeStatus holds the
// rules they share:
//
//   - nothing is written when apply changes nothing;
//   - the write goes through the status subresource and is guarded by the
//     resourceVersion read, so it never overwrites what another writer
//     changed meanwhile;
//   - on a conflict, apply runs again on a fresh read and the write is
//     retried (client-go's retry.DefaultRetry); a writer without Reader
//     gets the conflict back and reconciles again (requeued with backoff)
//     instead: its change depends on what it read;
//   - an object that went away is not an error.
//
// apply changes only what its writer owns (fields, and conditions by type:
// setOwnedConditions), which is what lets the writers share one object.
// The WebhookConfig writers re-apply after a conflict: what they write is
// theirs whatever else changed. The OutgoingMessage and lab reconcilers
// read from the cache and act on it (a POST, a redeliver request), so a
// conflict means their decision may be stale: they reconcile again.
type statusWriter struct {
	Client client.Client
	// Reader reads the fresh copy after a conflict, uncached: the cache may
	// still hold the version that conflicted. Nil: the conflict is returned.
	Reader client.Reader
	// Update writes with an Update of the status subresource rather than a
	// JSON merge patch. The lab objects use it on purpose: it costs the API
	// server less (README, outgoing), and as the status of a lab object has
	// one writer in the manager, the whole status is the writer's own.
	Update bool
}

// writeStatus applies apply to a copy of read and writes the result as
// w says. It reports whether it wrote.
func writeStatus[T client.Object](ctx context.Context, w statusWriter, read T, apply func(T) bool) (bool, error) {
	obj := read.DeepCopyObject().(T)
	if !apply(obj) || equality.Semantic.DeepEqual(read, obj) {
		return false, nil
	}
	err := w.send(ctx, read, obj)
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	case !apierrors.IsConflict(err), w.Reader == nil:
		return false, err
	}
	wrote := false
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := reflect.New(reflect.TypeOf(read).Elem()).Interface().(T)
		if err := w.Reader.Get(ctx, client.ObjectKeyFromObject(read), fresh); err != nil {
			return err
		}
		if fresh.GetUID() != read.GetUID() {
			return nil // recreated under the same name: not what apply was for
		}
		base := fresh.DeepCopyObject().(T)
		if !apply(fresh) || equality.Semantic.DeepEqual(base, fresh) {
			return nil
		}
		if err := w.send(ctx, base, fresh); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	return wrote, client.IgnoreNotFound(err)
}

func (w statusWriter) send(ctx context.Context, base, obj client.Object) error {
	if w.Update {
		return w.Client.Status().Update(ctx, obj)
	}
	return w.Client.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// setOwnedConditions makes the conditions of the given types in dst what
// they are in src (set, or removed), keeping every other writer's.
func setOwnedConditions(dst *[]metav1.Condition, src []metav1.Condition, owned ...string) {
	for _, t := range owned {
		if c := meta.FindStatusCondition(src, t); c != nil {
			meta.SetStatusCondition(dst, *c)
		} else {
			meta.RemoveStatusCondition(dst, t)
		}
	}
}

// observeGeneration stamps generation on the owned conditions, as the
// status's own observedGeneration says the whole status was computed for it.
func observeGeneration(conditions []metav1.Condition, generation int64, owned ...string) {
	for i := range conditions {
		if slices.Contains(owned, conditions[i].Type) {
			conditions[i].ObservedGeneration = generation
		}
	}
}
