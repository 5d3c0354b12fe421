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
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
)

const (
	kindResource        = "LabResource"
	kindInterface       = "LabInterface"
	kindSecret          = "Secret"
	kindOutgoingMessage = "OutgoingMessage"
)

// A message is applied in three stages. Prefetch reads every object the
// message names, in parallel. Judge decides, for each object, before any
// write, what the message does to it: create or update it, nothing (a
// replay of this very message, or a stale message), or refuse the whole
// message (another entity's object, an object being deleted, an ambiguous
// reuse of source_message_id, a Secret the webhookserver did not create).
// Write applies the verdicts in dependency order; each write carries the
// resourceVersion it was judged on, so a concurrent change makes it read
// the object again and judge it again rather than overwrite.

// messagePlan is a validated message, what it names and what was read.
type messagePlan struct {
	ns         string
	msg        *wire.IncomingMessage
	bodyHash   string
	resources  []*plannedResource
	interfaces []*plannedInterface
	byID       map[string]*plannedResource

	// refs are the resources that interfaces refer to and the message
	// does not carry, by id; nil when there is none.
	refs map[string]*labhookv1alpha1.LabResource
	// reply is the outgoing message source_message_id names, if labhook
	// sent it to this organisation; om is it when it is an OutgoingMessage.
	reply *ReplyTo
	om    *labhookv1alpha1.OutgoingMessage
}

type plannedResource struct {
	in   wire.IncomingResource
	name string
	path *field.Path
	cur  *labhookv1alpha1.LabResource // nil: absent
	v    verdict
}

type plannedInterface struct {
	in                   wire.IncomingInterface
	name, resource, auth string
	path                 *field.Path
	cur                  *labhookv1alpha1.LabInterface // nil: absent
	secret               *corev1.Secret                // nil: absent or no auth
	v                    verdict
}

// plan names every object of msg.
func plan(ns string, msg *wire.IncomingMessage, bodyHash string) *messagePlan {
	p := &messagePlan{ns: ns, msg: msg, bodyHash: bodyHash, byID: map[string]*plannedResource{}}
	data := field.NewPath("data")
	for i, r := range msg.Resources {
		pr := &plannedResource{in: r, name: ResourceName(r.ID), path: data.Child("resources").Index(i)}
		p.resources = append(p.resources, pr)
		p.byID[r.ID] = pr
	}
	for i, f := range msg.Interfaces {
		pi := &plannedInterface{in: f, resource: ResourceName(f.ResourceID), name: InterfaceName(f.ResourceID, f.Name), path: data.Child("interfaces").Index(i)}
		if f.Config != nil && f.Config.Authentication != nil {
			pi.auth = CredentialSecretName(pi.name)
		}
		p.interfaces = append(p.interfaces, pi)
	}
	return p
}

// calls is at most how many API calls the message makes when no write
// has to be judged again: for each object a read and up to two writes
// (spec and phase, or a mark and a delete), a read and a write for each
// credential Secret, and up to three reads for what source_message_id
// answers.
func (p *messagePlan) calls() int {
	n := 3 + 3*(len(p.resources)+len(p.interfaces))
	for _, f := range p.interfaces {
		if f.auth != "" {
			n += 2
		}
	}
	return n
}

// process applies p and returns what happened to each LabResource and
// LabInterface. On an error, the results are what was done before it; the
// same message sent again converges.
func (s *Server) process(ctx context.Context, oc orgClient, p *messagePlan) ([]Result, error) {
	if err := s.prefetch(ctx, oc, p); err != nil {
		return nil, err
	}
	if errs := p.checkReferences(); len(errs) > 0 {
		return nil, &referenceError{errs: errs}
	}
	if err := p.judge(); err != nil {
		return nil, err
	}
	var results []Result
	var wrote bool
	var err error
	if p.msg.Action == wire.ActionDeleted {
		results, wrote, err = s.delete(ctx, oc, p)
	} else {
		results, wrote, err = s.write(ctx, oc, p)
	}
	if err != nil {
		return results, err
	}
	if p.om != nil {
		err = s.recordReply(ctx, oc, p, results, wrote)
	}
	return results, err
}

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

// verdict is what the message does to one object.
type verdict struct {
	// op is the result's operation.
	op string
	// write: apply the message to the object. Without it the object is
	// left alone: it reflects this very message (replay) or a newer one.
	write  bool
	replay bool
}

// Refusals decided before any write.
type (
	// reuseError: source_message_id, action and timestamp already applied
	// with another body.
	reuseError struct{ msg *wire.IncomingMessage }
	// identityError: the object the name leads to is another entity's.
	identityError struct{ object, has, wants string }
	// deletingError: the object is being deleted.
	deletingError struct{ object string }
	// foreignSecretError: a credential Secret the webhookserver did not create.
	foreignSecretError struct{ secret, iface string }
)

func (e *reuseError) Error() string {
	return fmt.Sprintf("source_message_id %q with action %s and timestamp %s was already applied with a different body: the message is ambiguous; "+
		"a new message answering the same outgoing message needs its own timestamp", e.msg.SourceMessageID, e.msg.Action, e.msg.Timestamp)
}

func (e *identityError) Error() string {
	return fmt.Sprintf("%s is %s, not %s: it belongs to another entity and is left alone", e.object, e.has, e.wants)
}

func (e *deletingError) Error() string {
	return fmt.Sprintf("%s is being deleted; send the message again once it is gone", e.object)
}

func (e *foreignSecretError) Error() string {
	return fmt.Sprintf("Secret %s exists and was not created by the webhookserver for LabInterface %s (label %s and owner reference); it is left alone: delete or rename it, or leave out the interface's authentication",
		e.secret, e.iface, labhookv1alpha1.LabelLabInterface)
}

// judgeObject decides what the message does to an object, given its
// current state (nil: absent) and whether the message changes it.
func judgeObject(kind, name string, cur client.Object, p *messagePlan, changes func() bool) (verdict, error) {
	if cur == nil {
		return verdict{op: OpCreated, write: true}, nil
	}
	ann := cur.GetAnnotations()
	msg := p.msg
	if ann[labhookv1alpha1.AnnotationSourceMessageID] == msg.SourceMessageID {
		if ann[labhookv1alpha1.AnnotationSourceBodyHash] == p.bodyHash {
			op := ann[labhookv1alpha1.AnnotationSourceOperation]
			if op == "" {
				op = OpUnchanged
			}
			return verdict{op: op, replay: true}, nil
		}
		if ann[labhookv1alpha1.AnnotationSourceAction] == msg.Action && ann[labhookv1alpha1.AnnotationSourceTimestamp] == msg.Timestamp {
			return verdict{}, &reuseError{msg: msg}
		}
	}
	if stale(ann, msg) {
		return verdict{op: OpStale}, nil
	}
	if cur.GetDeletionTimestamp() != nil {
		return verdict{}, &deletingError{object: kind + " " + name}
	}
	if changes() {
		return verdict{op: OpUpdated, write: true}, nil
	}
	return verdict{op: OpUnchanged, write: true}, nil
}

// stale tells whether an object annotated ann reflects a message newer than msg.
func stale(ann map[string]string, msg *wire.IncomingMessage) bool {
	ts, err := time.Parse(time.RFC3339Nano, ann[labhookv1alpha1.AnnotationSourceTimestamp])
	return err == nil && msg.Time.Before(ts)
}

func (r *plannedResource) identity() error {
	if r.cur != nil && r.cur.Spec.ID != r.in.ID {
		return &identityError{object: kindResource + " " + r.name, has: fmt.Sprintf("resource id %q", r.cur.Spec.ID), wants: fmt.Sprintf("%q", r.in.ID)}
	}
	return nil
}

func (r *plannedResource) judge(p *messagePlan) error {
	if err := r.identity(); err != nil {
		return err
	}
	hash := echo.SpecHash(resourceSpec(r.in))
	var err error
	r.v, err = judgeObject(kindResource, r.name, objectOrNil(r.cur), p, func() bool {
		return r.cur.Annotations[labhookv1alpha1.AnnotationSourceSpecHash] != hash || r.phaseChanges()
	})
	return err
}

// phaseChanges tells whether the message sets a phase the resource does not have.
func (r *plannedResource) phaseChanges() bool {
	return r.in.Status != "" && (r.cur == nil || string(r.cur.Status.Phase) != r.in.Status)
}

// identityOf tells whether li is the interface the message names: its
// name, its resource, and the resource's id (recorded in its status, or
// read from the resource).
func (f *plannedInterface) identityOf(li *labhookv1alpha1.LabInterface, p *messagePlan) bool {
	if li.Spec.Name != f.in.Name || li.Spec.ResourceRef.Name != f.resource {
		return false
	}
	if li.Status.ResourceID != "" {
		return li.Status.ResourceID == f.in.ResourceID
	}
	if r, ok := p.byID[f.in.ResourceID]; ok && r.cur != nil {
		return r.cur.Spec.ID == f.in.ResourceID
	}
	if lr := p.refs[f.in.ResourceID]; lr != nil {
		return lr.Spec.ID == f.in.ResourceID
	}
	return true
}

func (f *plannedInterface) judge(p *messagePlan) error {
	if f.cur != nil && !f.identityOf(f.cur, p) {
		return &identityError{object: kindInterface + " " + f.name,
			has:   fmt.Sprintf("interface %q of LabResource %s", f.cur.Spec.Name, f.cur.Spec.ResourceRef.Name),
			wants: fmt.Sprintf("interface %q of resource %q", f.in.Name, f.in.ResourceID)}
	}
	hash := echo.SpecHash(interfaceSpec(f))
	var err error
	f.v, err = judgeObject(kindInterface, f.name, objectOrNil(f.cur), p, func() bool {
		return f.cur.Annotations[labhookv1alpha1.AnnotationSourceSpecHash] != hash
	})
	if err != nil || f.auth == "" || (!f.v.write && !f.v.replay) {
		return err
	}
	if f.secret != nil && !ownCredentialSecret(f.secret, f.name) {
		return &foreignSecretError{secret: f.auth, iface: f.name}
	}
	return nil
}

// ownCredentialSecret tells whether sec is a credential Secret the
// webhookserver created for the LabInterface called iface: labelled for it
// and owned by a LabInterface of that name.
func ownCredentialSecret(sec *corev1.Secret, iface string) bool {
	if sec.Labels[labhookv1alpha1.LabelLabInterface] != iface || len(sec.OwnerReferences) == 0 {
		return false
	}
	for _, o := range sec.OwnerReferences {
		if o.Kind != kindInterface || o.Name != iface || o.APIVersion != labhookv1alpha1.GroupVersion.String() {
			return false
		}
	}
	return true
}

// objectOrNil keeps a nil pointer a nil interface.
func objectOrNil(o client.Object) client.Object {
	if o == nil || reflect.ValueOf(o).IsNil() {
		return nil
	}
	return o
}

// judge decides every object's verdict before any write; the first
// refusal refuses the whole message.
func (p *messagePlan) judge() error {
	if p.msg.Action == wire.ActionDeleted {
		return nil
	}
	for _, r := range p.resources {
		if err := r.judge(p); err != nil {
			return err
		}
	}
	for _, f := range p.interfaces {
		if err := f.judge(p); err != nil {
			return err
		}
	}
	return nil
}

func resourceSpec(in wire.IncomingResource) *labhookv1alpha1.LabResourceSpec {
	spec := &labhookv1alpha1.LabResourceSpec{ID: in.ID, Type: labhookv1alpha1.ResourceType(in.Type), Name: in.Name}
	if c := in.Config; c != nil {
		spec.Config = &labhookv1alpha1.LabResourceConfig{Address: c.Address, Extra: extraJSON(c.Extra)}
		for _, n := range c.NetworkInterfaces {
			spec.Config.NetworkInterfaces = append(spec.Config.NetworkInterfaces,
				labhookv1alpha1.NetworkInterface{PublicIP: n.PublicIP, PrivateIP: n.PrivateIP, DNS: n.DNS})
		}
	}
	return spec
}

func interfaceSpec(f *plannedInterface) *labhookv1alpha1.LabInterfaceSpec {
	spec := &labhookv1alpha1.LabInterfaceSpec{
		Name: f.in.Name, Type: labhookv1alpha1.InterfaceType(f.in.Type), Region: f.in.Region,
		ResourceRef: labhookv1alpha1.LocalObjectReference{Name: f.resource},
	}
	if c := f.in.Config; c != nil {
		spec.Config = &labhookv1alpha1.LabInterfaceConfig{Port: c.Port, Extra: extraJSON(c.Extra)}
		if c.Authentication != nil {
			spec.Config.Authentication = &labhookv1alpha1.InterfaceAuthentication{
				Type:      labhookv1alpha1.AuthenticationType(c.Authentication.Type),
				SecretRef: labhookv1alpha1.LocalObjectReference{Name: f.auth},
			}
		}
	}
	return spec
}

// extraJSON keeps unknown config keys as JSON. encoding/json sorts map
// keys at every depth, the form the API server returns, so spec hashes agree.
func extraJSON(extra map[string]any) *apiextensionsv1.JSON {
	if len(extra) == 0 {
		return nil
	}
	b, _ := json.Marshal(extra)
	return &apiextensionsv1.JSON{Raw: b}
}

// marks are the annotations of an object the message applied, for
// staleness, replay, echo suppression and replies.
func (p *messagePlan) marks(op string, spec any) map[string]any {
	out := map[string]any{
		labhookv1alpha1.AnnotationSourceBodyHash:  p.bodyHash,
		labhookv1alpha1.AnnotationSourceAction:    p.msg.Action,
		labhookv1alpha1.AnnotationSourceOperation: op,
	}
	if spec != nil {
		for k, v := range echo.Mark(p.msg.SourceMessageID, p.msg.Timestamp, spec) {
			out[k] = v
		}
	} else {
		out[labhookv1alpha1.AnnotationSourceMessageID] = p.msg.SourceMessageID
		out[labhookv1alpha1.AnnotationSourceTimestamp] = p.msg.Timestamp
	}
	if p.reply != nil {
		out[labhookv1alpha1.AnnotationReplyTo] = p.reply.MessageID
	}
	return out
}

func applyObject(kind, ns, name string, meta map[string]any) *unstructured.Unstructured {
	meta["name"], meta["namespace"] = name, ns
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": kind, "metadata": meta,
	}}
}

// maxAttempts bounds how often one object is judged again after a
// concurrent change.
const maxAttempts = 5

// isPreconditionConflict is a write refused because the object changed
// since it was read (not a field owned by another manager).
func isPreconditionConflict(err error) bool {
	_, owned := err.(*fieldConflictError)
	return apierrors.IsConflict(err) && !owned
}

// write applies a CREATED or UPDATED message: LabResources (spec, then
// phase), then LabInterfaces, then the credential Secrets of the
// interfaces just written, owned by them (so a credential Secret never
// outlives its interface, and a Secret is written only after its
// interface's write decided the message is not stale). wrote tells
// whether anything was written.
func (s *Server) write(ctx context.Context, oc orgClient, p *messagePlan) ([]Result, bool, error) {
	var wrote atomic.Bool
	// step writes n objects in parallel and appends their results.
	results := make([]Result, 0, len(p.resources)+len(p.interfaces))
	step := func(n int, f func(i int) (Result, bool, error)) error {
		rs := make([]Result, n)
		err := firstError(each(n, func(i int) error {
			var w bool
			var err error
			rs[i], w, err = f(i)
			wrote.CompareAndSwap(false, w)
			return err
		}))
		results = appendDone(results, rs)
		return err
	}
	err := step(len(p.resources), func(i int) (Result, bool, error) { return s.applyResource(ctx, oc, p, p.resources[i]) })
	if err == nil {
		err = step(len(p.interfaces), func(i int) (Result, bool, error) { return s.applyInterface(ctx, oc, p, p.interfaces[i]) })
	}
	if err == nil {
		err = step(len(p.interfaces), func(i int) (Result, bool, error) {
			w, err := s.applySecret(ctx, oc, p, p.interfaces[i])
			return Result{}, w, err
		})
	}
	return results, wrote.Load(), err
}

// appendDone appends the results that were reached (an operation is set).
func appendDone(out, rs []Result) []Result {
	for _, r := range rs {
		if r.Operation != "" {
			out = append(out, r)
		}
	}
	return out
}

// applySpec applies spec to the object of kind called name, whose current
// state cur (nil: absent) gave the verdict v. A concurrent change makes it
// read the object again and judge it again with rejudge. It returns the
// object as written (nil when nothing was), and the final verdict.
func (s *Server) applySpec(ctx context.Context, oc orgClient, p *messagePlan, kind, name string, cur client.Object, v verdict,
	spec any, rejudge func(ctx context.Context) (client.Object, verdict, error)) (*unstructured.Unstructured, verdict, error) {
	specMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(spec)
	if err != nil {
		return nil, v, err
	}
	for attempt := 1; ; attempt++ {
		if !v.write {
			return nil, v, nil
		}
		u := applyObject(kind, p.ns, name, map[string]any{"annotations": p.marks(v.op, spec)})
		u.Object["spec"] = specMap
		if cur != nil {
			u.SetResourceVersion(cur.GetResourceVersion())
		}
		err := oc.apply(ctx, u)
		if err == nil {
			s.recent.Add(recentKey(p.ns, kind, name), struct{}{})
			return u, v, nil
		}
		err = asFieldConflict(kind+" "+name, err)
		if !isPreconditionConflict(err) || attempt == maxAttempts {
			return nil, v, err
		}
		if cur, v, err = rejudge(ctx); err != nil {
			return nil, v, err
		}
	}
}

func (s *Server) applyResource(ctx context.Context, oc orgClient, p *messagePlan, r *plannedResource) (Result, bool, error) {
	res := Result{Kind: kindResource, ID: r.in.ID, Name: r.name, Namespace: p.ns}
	u, v, err := s.applySpec(ctx, oc, p, kindResource, r.name, objectOrNil(r.cur), r.v, resourceSpec(r.in),
		func(ctx context.Context) (client.Object, verdict, error) {
			var err error
			if r.cur, err = s.readResource(ctx, oc, r.name, true); err != nil {
				return nil, verdict{}, err
			}
			err = r.judge(p)
			return objectOrNil(r.cur), r.v, err
		})
	if err != nil {
		return res, false, err
	}
	res.Operation = v.op
	wrote := u != nil
	if !v.write && !v.replay {
		return res, wrote, nil
	}
	// Then the phase, through the status subresource; also on a replay, so
	// a message cut off between spec and status converges.
	rv := ""
	if u != nil {
		rv = u.GetResourceVersion()
	} else if r.cur != nil {
		rv = r.cur.ResourceVersion
	}
	if !r.phaseChanges() {
		return res, wrote, nil
	}
	statusWrote, err := s.applyPhase(ctx, oc, p, r, rv)
	return res, wrote || statusWrote, err
}

// applyPhase sets the resource's status.phase, on the version rv the spec
// write left. If the object changed since, it is read again: when it no
// longer reflects this message, a newer one owns the phase.
func (s *Server) applyPhase(ctx context.Context, oc orgClient, p *messagePlan, r *plannedResource, rv string) (bool, error) {
	if r.in.Status == "" {
		return false, nil
	}
	for attempt := 1; ; attempt++ {
		u := applyObject(kindResource, p.ns, r.name, map[string]any{"resourceVersion": rv})
		u.Object["status"] = map[string]any{"phase": r.in.Status}
		err := oc.applyStatus(ctx, u)
		if err == nil {
			return true, nil
		}
		err = asFieldConflict(kindResource+" "+r.name+" status", err)
		if !isPreconditionConflict(err) || attempt == maxAttempts {
			return false, err
		}
		lr, err := s.readResource(ctx, oc, r.name, true)
		if err != nil || lr == nil {
			return false, err
		}
		if lr.Annotations[labhookv1alpha1.AnnotationSourceMessageID] != p.msg.SourceMessageID ||
			lr.Annotations[labhookv1alpha1.AnnotationSourceBodyHash] != p.bodyHash {
			return false, nil
		}
		if string(lr.Status.Phase) == r.in.Status {
			return false, nil
		}
		rv = lr.ResourceVersion
	}
}

func (s *Server) applyInterface(ctx context.Context, oc orgClient, p *messagePlan, f *plannedInterface) (Result, bool, error) {
	res := Result{Kind: kindInterface, ID: f.in.ResourceID + "/" + f.in.Name, Name: f.name, Namespace: p.ns}
	u, v, err := s.applySpec(ctx, oc, p, kindInterface, f.name, objectOrNil(f.cur), f.v, interfaceSpec(f),
		func(ctx context.Context) (client.Object, verdict, error) {
			var err error
			if f.cur, err = s.readInterface(ctx, oc, f.name, true); err != nil {
				return nil, verdict{}, err
			}
			err = f.judge(p)
			return objectOrNil(f.cur), f.v, err
		})
	f.v = v
	if u != nil {
		f.cur = &labhookv1alpha1.LabInterface{}
		f.cur.SetUID(u.GetUID())
		f.cur.SetResourceVersion(u.GetResourceVersion())
	}
	res.Operation = v.op
	return res, u != nil, err
}

// applySecret writes an interface's credentials into the Secret the
// interface names, owned by the interface, once the interface's write
// decided the message is not stale (and also on a replay, so a message cut
// off before its Secret converges). It writes only a Secret it created,
// and nothing when the Secret already holds these credentials. A Secret
// carries the timestamp of the message it holds, so an older message
// never overwrites newer credentials, even from another replica.
func (s *Server) applySecret(ctx context.Context, oc orgClient, p *messagePlan, f *plannedInterface) (bool, error) {
	if f.auth == "" || (!f.v.write && !f.v.replay) || f.cur == nil {
		return false, nil
	}
	owner := f.cur.GetUID()
	data := map[string][]byte{}
	for k, v := range f.in.Config.Authentication.Data {
		data[k] = []byte(v)
	}
	sec := f.secret
	for attempt := 1; ; attempt++ {
		if sec != nil {
			if !ownCredentialSecret(sec, f.name) {
				return false, &foreignSecretError{secret: f.auth, iface: f.name}
			}
			if stale(sec.Annotations, p.msg) || (equalData(sec.Data, data) && ownedBy(sec, owner)) {
				return false, nil
			}
		}
		u := secretObject(p, f, data, owner)
		if sec != nil {
			u.SetResourceVersion(sec.ResourceVersion)
		}
		err := asFieldConflict(kindSecret+" "+f.auth, oc.apply(ctx, u))
		if err == nil {
			objectsApplied.WithLabelValues(kindSecret, "applied").Inc()
			return true, nil
		}
		if !isPreconditionConflict(err) || attempt == maxAttempts {
			return false, err
		}
		if sec, err = s.readSecret(ctx, oc, f.auth, true); err != nil {
			return false, err
		}
	}
}

func equalData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

func ownedBy(sec *corev1.Secret, uid types.UID) bool {
	return len(sec.OwnerReferences) == 1 && sec.OwnerReferences[0].UID == uid
}

// secretObject is the credential Secret of f as the webhookserver applies it.
func secretObject(p *messagePlan, f *plannedInterface, data map[string][]byte, owner types.UID) *unstructured.Unstructured {
	u := applyObject(kindSecret, p.ns, f.auth, map[string]any{
		"labels":      map[string]any{labhookv1alpha1.LabelLabInterface: f.name},
		"annotations": map[string]any{labhookv1alpha1.AnnotationSourceTimestamp: p.msg.Timestamp},
		"ownerReferences": []any{map[string]any{
			"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": kindInterface,
			"name": f.name, "uid": string(owner),
		}},
	})
	u.Object["apiVersion"] = "v1"
	u.Object["type"] = string(corev1.SecretTypeOpaque)
	obj, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&corev1.Secret{Data: data})
	u.Object["data"] = obj["data"]
	return u
}
