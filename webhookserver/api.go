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
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// orgClient makes the API calls of one organisation's message within that
// organisation's share: each call takes a token of its API budget
// (--org-api-qps) and one of its slots for calls in flight
// (--org-api-concurrency), so one organisation can neither spend the
// client budget every organisation shares nor fill the API server's queue
// ahead of the others. It reads and writes only in the organisation's
// namespace.
type orgClient struct {
	s  *Server
	ns string
	st *orgState
}

// budgetError is a call the organisation's API budget cannot allow before
// the message's deadline.
type budgetError struct {
	org string
	qps float64
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("organisation %s is over its budget of %g Kubernetes API calls per second; the message was cut short", e.org, e.qps)
}

// wait takes a token and a slot for one call; release gives the slot back.
func (c orgClient) wait(ctx context.Context) (release func(), err error) {
	if lim := c.st.api; lim != nil {
		res := lim.Reserve()
		d := res.Delay()
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
			res.Cancel()
			return nil, &budgetError{org: c.ns, qps: float64(lim.Limit())}
		}
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				res.Cancel()
				return nil, ctx.Err()
			}
		}
	}
	if c.st.slots == nil {
		return func() {}, nil
	}
	select {
	case c.st.slots <- struct{}{}:
		return func() { <-c.st.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c orgClient) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: c.ns, Name: name}
}

// get reads name into obj from the API server (never a cache).
func (c orgClient) get(ctx context.Context, name string, obj client.Object, opts ...client.GetOption) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.reader.Get(ctx, c.key(name), obj, opts...)
}

func (c orgClient) list(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.reader.List(ctx, list, append(opts, client.InNamespace(c.ns))...)
}

var fieldOwner = client.FieldOwner(labhookv1alpha1.FieldManagerWebhookServer)

// apply writes u with server-side apply as labhook-webhookserver.
func (c orgClient) apply(ctx context.Context, u *unstructured.Unstructured) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner)
}

// create creates obj; it fails if an object of that name exists.
func (c orgClient) create(ctx context.Context, obj client.Object) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.client.Create(ctx, obj, fieldOwner)
}

// update replaces obj, at the resourceVersion it carries.
func (c orgClient) update(ctx context.Context, obj client.Object) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.client.Update(ctx, obj, fieldOwner)
}

// applyStatus writes u's status with server-side apply.
func (c orgClient) applyStatus(ctx context.Context, u *unstructured.Unstructured) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner)
}

func (c orgClient) mergePatch(ctx context.Context, obj client.Object, patch []byte) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	return c.s.client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch), fieldOwner)
}

// deleteExactly deletes obj only if it is still the object (UID) at the
// version (resourceVersion) it was judged on.
func (c orgClient) deleteExactly(ctx context.Context, obj client.Object) error {
	release, err := c.wait(ctx)
	if err != nil {
		return err
	}
	defer release()
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	return c.s.client.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &rv})
}

// fromWatchCache serves a read from the API server's watch cache instead of
// etcd: cheaper, and at most moments old. A write judged on an old version
// fails its resourceVersion precondition and is judged again on a quorum
// read; an object this replica created but the watch cache does not show
// yet is read again from etcd (see wroteRecently).
var fromWatchCache = &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}
