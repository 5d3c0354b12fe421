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
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// each runs f(0) … f(n-1), at most maxParallel at once, and returns their
// errors by index.
func each(n int, f func(i int) error) []error {
	errs := make([]error, n)
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errs
}

// maxParallel bounds the API calls one message makes at once.
const maxParallel = 16

// firstError is the first non-nil error, by index.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// read gets name into obj, which stays as it is when there is no such
// object (found false). Reads come from the API server's watch cache,
// except fresh ones and those of objects this replica wrote a moment ago,
// which come from etcd.
func (s *Server) read(ctx context.Context, oc orgClient, kind, name string, obj client.Object, fresh bool) (bool, error) {
	var opts []client.GetOption
	if !fresh {
		opts = append(opts, fromWatchCache)
	}
	err := oc.get(ctx, name, obj, opts...)
	if apierrors.IsNotFound(err) && !fresh && s.wroteRecently(oc.ns, kind, name) {
		err = oc.get(ctx, name, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// readAs reads the object of kind called name; nil when there is none.
func readAs[T any, P interface {
	*T
	client.Object
}](ctx context.Context, s *Server, oc orgClient, kind, name string, fresh bool) (P, error) {
	obj := P(new(T))
	found, err := s.read(ctx, oc, kind, name, obj, fresh)
	if !found {
		return nil, err
	}
	return obj, nil
}

func (s *Server) readResource(ctx context.Context, oc orgClient, name string, fresh bool) (*labhookv1alpha1.LabResource, error) {
	return readAs[labhookv1alpha1.LabResource](ctx, s, oc, kindResource, name, fresh)
}

func (s *Server) readInterface(ctx context.Context, oc orgClient, name string, fresh bool) (*labhookv1alpha1.LabInterface, error) {
	return readAs[labhookv1alpha1.LabInterface](ctx, s, oc, kindInterface, name, fresh)
}

func (s *Server) readSecret(ctx context.Context, oc orgClient, name string, fresh bool) (*corev1.Secret, error) {
	return readAs[corev1.Secret](ctx, s, oc, kindSecret, name, fresh)
}

// prefetch reads, in parallel, every object the message names, the
// resources its interfaces refer to, the credential Secrets it would
// write, and what source_message_id answers.
func (s *Server) prefetch(ctx context.Context, oc orgClient, p *messagePlan) error {
	var jobs []func() error
	for _, r := range p.resources {
		jobs = append(jobs, func() (err error) { r.cur, err = s.readResource(ctx, oc, r.name, false); return err })
	}
	for _, f := range p.interfaces {
		jobs = append(jobs, func() (err error) { f.cur, err = s.readInterface(ctx, oc, f.name, false); return err })
		if f.auth != "" {
			jobs = append(jobs, func() (err error) { f.secret, err = s.readSecret(ctx, oc, f.auth, false); return err })
		}
	}
	var mu sync.Mutex
	p.refs = map[string]*labhookv1alpha1.LabResource{}
	for _, f := range p.interfaces {
		if _, inMessage := p.byID[f.in.ResourceID]; inMessage {
			continue
		}
		if _, queued := p.refs[f.in.ResourceID]; queued {
			continue
		}
		p.refs[f.in.ResourceID] = nil
		id := f.in.ResourceID
		jobs = append(jobs, func() error {
			lr, err := s.readResource(ctx, oc, ResourceName(id), false)
			mu.Lock()
			p.refs[id] = lr
			mu.Unlock()
			return err
		})
	}
	jobs = append(jobs, s.findOutgoingMessage(ctx, oc, p)...)
	if err := firstError(each(len(jobs), func(i int) error { return jobs[i]() })); err != nil {
		return err
	}
	return s.findReply(ctx, oc, p)
}

// referenceError is a message that refers to what cannot be (422).
type referenceError struct{ errs field.ErrorList }

func (e *referenceError) Error() string {
	return fmt.Sprintf("the message refers to what cannot be: %d problem(s)", len(e.errs))
}

// resourceType is the type of the resource with id, in the message or in
// the namespace; "" when there is none.
func (p *messagePlan) resourceType(id string) string {
	if r, ok := p.byID[id]; ok {
		return r.in.Type
	}
	if lr := p.refs[id]; lr != nil && lr.Spec.ID == id && lr.DeletionTimestamp == nil {
		return string(lr.Spec.Type)
	}
	return ""
}

// checkReferences finds what the API server would accept but cannot work:
// an interface on a resource in neither the message nor the namespace, and
// TERMINAL or DESKTOP on a URL resource.
func (p *messagePlan) checkReferences() field.ErrorList {
	if p.msg.Action == wire.ActionDeleted {
		return nil
	}
	var errs field.ErrorList
	for _, f := range p.interfaces {
		typ := p.resourceType(f.in.ResourceID)
		switch {
		case typ == "":
			errs = append(errs, field.Invalid(f.path.Child("resource_id"), f.in.ResourceID,
				fmt.Sprintf("no resource has this id in the message or in organisation %s", p.ns)))
		case typ == "URL" && (f.in.Type == "TERMINAL" || f.in.Type == "DESKTOP"):
			errs = append(errs, field.Invalid(f.path.Child("type"), f.in.Type,
				fmt.Sprintf("a %s interface needs a VM, and resource %s is a URL", f.in.Type, f.in.ResourceID)))
		}
	}
	return errs
}
