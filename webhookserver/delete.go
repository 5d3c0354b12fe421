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
	"encoding/json"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/echo"
)

// delete applies a DELETED message: interfaces, then resources, each only
// when it is the entity the message names (a resource's spec.id; an
// interface's name and resource). An object of that name that is another
// entity's is left alone and reported not_found. wrote tells whether
// anything was written.
func (s *Server) delete(ctx context.Context, oc orgClient, p *messagePlan) ([]Result, bool, error) {
	var wrote atomic.Bool
	ires := make([]Result, len(p.interfaces))
	err := firstError(each(len(p.interfaces), func(i int) error {
		f := p.interfaces[i]
		op, w, err := s.deleteOne(ctx, oc, p, kindInterface, f.name, objectOrNil(f.cur),
			func(o client.Object) bool { return f.identityOf(o.(*labhookv1alpha1.LabInterface), p) },
			func(ctx context.Context) (client.Object, error) {
				li, err := s.readInterface(ctx, oc, f.name, true)
				return objectOrNil(li), err
			})
		wrote.CompareAndSwap(false, w)
		ires[i] = Result{Kind: kindInterface, ID: f.in.ResourceID + "/" + f.in.Name, Name: f.name, Namespace: p.ns, Operation: op}
		return err
	}))
	results := appendDone(nil, ires)
	if err != nil {
		return results, wrote.Load(), err
	}
	rres := make([]Result, len(p.resources))
	err = firstError(each(len(p.resources), func(i int) error {
		r := p.resources[i]
		op, w, err := s.deleteOne(ctx, oc, p, kindResource, r.name, objectOrNil(r.cur),
			func(o client.Object) bool { return o.(*labhookv1alpha1.LabResource).Spec.ID == r.in.ID },
			func(ctx context.Context) (client.Object, error) {
				lr, err := s.readResource(ctx, oc, r.name, true)
				return objectOrNil(lr), err
			})
		wrote.CompareAndSwap(false, w)
		rres[i] = Result{Kind: kindResource, ID: r.in.ID, Name: r.name, Namespace: p.ns, Operation: op}
		return err
	}))
	return appendDone(results, rres), wrote.Load(), err
}

// deleteOne marks obj with the message and the time, on the version it was
// judged on, then deletes that very object at that very version (UID and
// resourceVersion preconditions), so the mark always belongs to this
// deletion. If the delete fails, the mark is taken off again, so it cannot
// make a later deletion look like the backend's own (see
// echo.IsEchoDelete). A lost race reads the object again and judges again.
func (s *Server) deleteOne(ctx context.Context, oc orgClient, p *messagePlan, kind, name string, cur client.Object,
	isIt func(client.Object) bool, reread func(context.Context) (client.Object, error)) (string, bool, error) {
	wrote := false
	for attempt := 1; ; attempt++ {
		switch {
		case cur == nil || !isIt(cur):
			return OpNotFound, wrote, nil
		case cur.GetDeletionTimestamp() != nil:
			return OpDeleted, wrote, nil
		case stale(cur.GetAnnotations(), p.msg):
			return OpStale, wrote, nil
		}
		marks := p.marks(OpDeleted, nil)
		for k, v := range echo.DeleteMark(p.msg.SourceMessageID, time.Now()) {
			marks[k] = v
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": cur.GetResourceVersion(), "annotations": marks}})
		err := oc.mergePatch(ctx, cur, patch)
		if err == nil {
			wrote = true
			err = oc.deleteExactly(ctx, cur)
			if err == nil || apierrors.IsNotFound(err) {
				return OpDeleted, wrote, nil
			}
			s.unmark(ctx, oc, kind, cur)
		}
		if !apierrors.IsConflict(err) || attempt == maxAttempts {
			return "", wrote, err
		}
		if cur, err = reread(ctx); err != nil {
			return "", wrote, err
		}
	}
}

// unmark takes the deletion mark off an object that was not deleted, also
// when the message has run out of time.
func (s *Server) unmark(ctx context.Context, oc orgClient, kind string, obj client.Object) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ann := map[string]any{}
	for k := range echo.DeleteMark("", time.Time{}) {
		ann[k] = nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err := oc.mergePatch(ctx, obj, patch); client.IgnoreNotFound(err) != nil {
		logf.FromContext(ctx).Error(err, "taking the deletion mark off an object that was not deleted", "kind", kind, "name", obj.GetName())
	}
}
