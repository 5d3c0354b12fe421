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

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// off before its Secret converges). A new Secret is created, never applied:
// a create fails when a Secret of that name appeared since it was read,
// where server-side apply would merge into it. An existing one is written
// only when the webhookserver created it, only when it does not hold these
// credentials already, and with the resourceVersion it was judged on. It
// carries the timestamp of the message it holds, so an older message never
// overwrites newer credentials, even from another replica.
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
		var err error
		if sec == nil {
			err = oc.create(ctx, credentialSecret(p, f, &corev1.Secret{}, data, owner))
		} else {
			if !ownCredentialSecret(sec, f.name) {
				return false, &foreignSecretError{secret: f.auth, iface: f.name}
			}
			if stale(sec.Annotations, p.msg) || (equalData(sec.Data, data) && ownedBy(sec, owner)) {
				return false, nil
			}
			err = oc.update(ctx, credentialSecret(p, f, sec.DeepCopy(), data, owner))
		}
		if err == nil {
			objectsApplied.WithLabelValues(kindSecret, "applied").Inc()
			return true, nil
		}
		if !(apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) || attempt == maxAttempts {
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

// credentialSecret is sec with f's credentials from the message: its data,
// its interface's label, the message's timestamp, and the interface as its
// only owner. Other labels and annotations are kept.
func credentialSecret(p *messagePlan, f *plannedInterface, sec *corev1.Secret, data map[string][]byte, owner types.UID) *corev1.Secret {
	sec.Name, sec.Namespace = f.auth, p.ns
	if sec.Type == "" {
		sec.Type = corev1.SecretTypeOpaque
	}
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	sec.Labels[labhookv1alpha1.LabelLabInterface] = f.name
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Annotations[labhookv1alpha1.AnnotationSourceTimestamp] = p.msg.Timestamp
	sec.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: labhookv1alpha1.GroupVersion.String(), Kind: kindInterface, Name: f.name, UID: owner,
	}}
	sec.Data = data
	return sec
}
