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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
)

const (
	kindResource  = "LabResource"
	kindInterface = "LabInterface"
	kindSecret    = "Secret"
)

// messagePlan is a validated message with the names of what it writes.
type messagePlan struct {
	ns         string
	msg        *wire.IncomingMessage
	resources  []plannedResource
	interfaces []plannedInterface
	byID       map[string]*plannedResource
	errs       field.ErrorList

	// fetched is the metadata of every object the message names, read
	// from the API server once before the first write.
	fetched map[string]fetchedMeta
}

type fetchedMeta struct {
	obj   *metav1.PartialObjectMetadata
	found bool
}

type plannedResource struct {
	in   wire.IncomingResource
	name string
	path *field.Path
}

type plannedInterface struct {
	in                   wire.IncomingInterface
	name, resource, auth string
	path                 *field.Path
}

// plan names every object of msg, refusing two entries that would write
// the same object.
func plan(ns string, msg *wire.IncomingMessage) *messagePlan {
	p := &messagePlan{ns: ns, msg: msg, byID: map[string]*plannedResource{}}
	data := field.NewPath("data")
	taken := map[string]*field.Path{}
	for i, r := range msg.Resources {
		pr := plannedResource{in: r, name: ResourceName(r.ID), path: data.Child("resources").Index(i)}
		if first, ok := taken[pr.name]; ok {
			p.errs = append(p.errs, field.Invalid(pr.path.Child("id"), r.ID, fmt.Sprintf("gives the object name %s, as %s does", pr.name, first)))
		}
		taken[pr.name] = pr.path
		p.resources = append(p.resources, pr)
	}
	for i := range p.resources {
		p.byID[p.resources[i].in.ID] = &p.resources[i]
	}
	taken = map[string]*field.Path{}
	for i, f := range msg.Interfaces {
		pi := plannedInterface{in: f, resource: ResourceName(f.ResourceID), path: data.Child("interfaces").Index(i)}
		pi.name = InterfaceName(pi.resource, f.Name)
		if f.Config != nil && f.Config.Authentication != nil {
			pi.auth = CredentialSecretName(pi.name)
		}
		if first, ok := taken[pi.name]; ok {
			p.errs = append(p.errs, field.Invalid(pi.path.Child("name"), f.Name, fmt.Sprintf("gives the object name %s, as %s does", pi.name, first)))
		}
		taken[pi.name] = pi.path
		p.interfaces = append(p.interfaces, pi)
	}
	return p
}

// checkReferences finds what the API server would accept but cannot work:
// an interface on a resource in neither the message nor the namespace, and
// TERMINAL or DESKTOP on a URL resource. The error is for a failed read.
func (s *Server) checkReferences(ctx context.Context, p *messagePlan) (field.ErrorList, error) {
	if p.msg.Action == wire.ActionDeleted {
		return nil, nil
	}
	var errs field.ErrorList
	// The type of each resource the message refers to but does not carry,
	// read from the API server once per resource ("" when there is none).
	inCluster := map[string]string{}
	for _, f := range p.interfaces {
		typ := ""
		if r, ok := p.byID[f.in.ResourceID]; ok {
			typ = r.in.Type
		} else {
			t, read := inCluster[f.in.ResourceID]
			if !read {
				lr := &labhookv1alpha1.LabResource{}
				err := s.reader.Get(ctx, types.NamespacedName{Namespace: p.ns, Name: f.resource}, lr)
				if err != nil && !apierrors.IsNotFound(err) {
					return nil, err
				}
				if err == nil && lr.Spec.ID == f.in.ResourceID && lr.DeletionTimestamp == nil {
					t = string(lr.Spec.Type)
				}
				inCluster[f.in.ResourceID] = t
			}
			if t == "" {
				errs = append(errs, field.Invalid(f.path.Child("resource_id"), f.in.ResourceID,
					fmt.Sprintf("no resource has this id in the message or in organisation %s", p.ns)))
				continue
			}
			typ = t
		}
		if typ == "URL" && (f.in.Type == "TERMINAL" || f.in.Type == "DESKTOP") {
			errs = append(errs, field.Invalid(f.path.Child("type"), f.in.Type,
				fmt.Sprintf("a %s interface needs a VM, and resource %s is a URL", f.in.Type, f.in.ResourceID)))
		}
	}
	return errs, nil
}

// metaOf is an empty metadata-only object of kind.
func metaOf(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(labhookv1alpha1.GroupVersion.WithKind(kind))
	return m
}

// get reads the metadata of a LabResource or LabInterface: what was
// prefetched for the message, or, when fresh, the API server's current
// state. The webhookserver keeps no cache of them: it is judged against
// the API server, so replicas never disagree about what an object reflects.
func (s *Server) get(ctx context.Context, p *messagePlan, name, kind string, fresh bool, opts ...client.GetOption) (*metav1.PartialObjectMetadata, bool, error) {
	if f, ok := p.fetched[kind+"/"+name]; ok && !fresh {
		return f.obj, f.found, nil
	}
	m := metaOf(kind)
	err := s.reader.Get(ctx, types.NamespacedName{Namespace: p.ns, Name: name}, m, opts...)
	if apierrors.IsNotFound(err) {
		return m, false, nil
	}
	return m, err == nil, err
}

// fromWatchCache serves a read from the API server's watch cache instead of
// etcd: cheaper, and at most moments old. A write judged on an old version
// fails its resourceVersion precondition and is judged again on a quorum
// read; an object this replica created but the watch cache does not show
// yet is read again from etcd (see wroteRecently).
var fromWatchCache = &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}

func recentKey(ns, kind, name string) string { return ns + "/" + kind + "/" + name }

// wroteRecently tells whether this replica applied the object lately.
func (s *Server) wroteRecently(ns, kind, name string) bool {
	_, ok := s.recent.Get(recentKey(ns, kind, name))
	return ok
}

// prefetch reads, in parallel, the metadata of every object of the message.
func (s *Server) prefetch(ctx context.Context, p *messagePlan) error {
	type item struct{ kind, name string }
	var items []item
	for _, r := range p.resources {
		items = append(items, item{kindResource, r.name})
	}
	for _, f := range p.interfaces {
		items = append(items, item{kindInterface, f.name})
	}
	got := make([]fetchedMeta, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { got[i].obj, got[i].found, errs[i] = s.get(ctx, p, it.name, it.kind, true, fromWatchCache) })
	}
	wg.Wait()
	p.fetched = make(map[string]fetchedMeta, len(items))
	for i, it := range items {
		if errs[i] == nil && !got[i].found && s.wroteRecently(p.ns, it.kind, it.name) {
			// This replica wrote it a moment ago and the watch cache does
			// not show it yet: a quorum read, so the write is judged on it.
			got[i].obj, got[i].found, errs[i] = s.get(ctx, p, it.name, it.kind, true)
		}
		if errs[i] != nil {
			return errs[i]
		}
		p.fetched[it.kind+"/"+it.name] = got[i]
	}
	return nil
}

// reuseError is a source_message_id already applied with another body.
type reuseError struct{ id, object string }

func (e *reuseError) Error() string {
	return fmt.Sprintf("source_message_id %q was already applied to %s with a different message body", e.id, e.object)
}

// fieldConflictError is a server-side apply conflict with another field
// manager. It does not wrap the API error, so retry.RetryOnConflict does not
// retry it: only a person can settle who owns a field.
type fieldConflictError struct {
	object  string
	message string
	causes  []metav1.StatusCause
}

func (e *fieldConflictError) Error() string { return e.object + ": " + e.message }

// asFieldConflict turns an apply conflict with another manager into a
// fieldConflictError, and leaves other errors alone.
func asFieldConflict(object string, err error) error {
	st, ok := apiStatus(err)
	if !ok || !apierrors.IsConflict(err) || st.Details == nil {
		return err
	}
	var causes []metav1.StatusCause
	for _, c := range st.Details.Causes {
		if c.Type == metav1.CauseTypeFieldManagerConflict {
			causes = append(causes, c)
		}
	}
	if len(causes) == 0 {
		return err
	}
	return &fieldConflictError{object: object, message: st.Message, causes: causes}
}

// state is what the cache knows of an object labhook applied.
type state struct {
	exists   bool
	uid      types.UID
	rv       string
	ann      map[string]string
	deleting bool
}

func stateOf(found bool, obj client.Object) state {
	if !found {
		return state{}
	}
	return state{exists: true, uid: obj.GetUID(), rv: obj.GetResourceVersion(), ann: obj.GetAnnotations(), deleting: obj.GetDeletionTimestamp() != nil}
}

// replayOf tells whether st already reflects this very message; it is an
// error for the same id with another body.
func replayOf(st state, msg *wire.IncomingMessage, bodyHash, object string) (bool, error) {
	if !st.exists || st.ann[labhookv1alpha1.AnnotationSourceMessageID] != msg.SourceMessageID {
		return false, nil
	}
	if h := st.ann[labhookv1alpha1.AnnotationSourceBodyHash]; h != "" && h != bodyHash {
		return false, &reuseError{id: msg.SourceMessageID, object: object}
	}
	return true, nil
}

// stale tells whether st reflects a message newer than msg.
func stale(st state, msg *wire.IncomingMessage) bool {
	ts, err := time.Parse(time.RFC3339Nano, st.ann[labhookv1alpha1.AnnotationSourceTimestamp])
	return err == nil && msg.Time.Before(ts)
}

// apply writes the plan in dependency order and returns what happened to
// each LabResource and LabInterface. On an error, the results are what was
// done before it; the same message sent again converges.
func (s *Server) apply(ctx context.Context, p *messagePlan, bodyHash string) ([]Result, error) {
	if err := s.prefetch(ctx, p); err != nil {
		return nil, err
	}
	if err := s.checkReuse(ctx, p, bodyHash); err != nil {
		return nil, err
	}
	if p.msg.Action == wire.ActionDeleted {
		return s.delete(ctx, p, bodyHash)
	}
	// Each step writes its objects in parallel; the steps go in
	// dependency order. The credentials of an existing interface go first,
	// so it never names credentials that are not there yet. A new
	// interface's Secret is written once the interface exists, owned by it
	// from its first write: a failure in between can leave an interface
	// that is not Ready (AuthSecretNotFound) until the message is retried,
	// never a credential Secret that nothing owns.
	withAuth := make([]plannedInterface, 0, len(p.interfaces))
	for _, f := range p.interfaces {
		if f.auth != "" {
			withAuth = append(withAuth, f)
		}
	}
	owners := make([]types.UID, len(withAuth))
	if _, err := parallel(withAuth, func(i int, f plannedInterface) (Result, error) {
		li, found, err := s.get(ctx, p, f.name, kindInterface, false)
		if err != nil || !found {
			return Result{}, err
		}
		owners[i] = li.UID
		return Result{}, s.applySecret(ctx, p.ns, f, li.UID)
	}); err != nil {
		return nil, err
	}
	results, err := parallel(p.resources, func(_ int, r plannedResource) (Result, error) {
		return s.applyResource(ctx, p, r, bodyHash)
	})
	if err != nil {
		return results, err
	}
	uids := map[string]types.UID{}
	var mu sync.Mutex
	ifResults, err := parallel(p.interfaces, func(_ int, f plannedInterface) (Result, error) {
		res, uid, err := s.applyInterface(ctx, p, f, bodyHash)
		mu.Lock()
		uids[f.name] = uid
		mu.Unlock()
		return res, err
	})
	results = append(results, ifResults...)
	if err != nil {
		return results, err
	}
	_, err = parallel(withAuth, func(i int, f plannedInterface) (Result, error) {
		if owners[i] != "" || uids[f.name] == "" {
			return Result{}, nil
		}
		return Result{}, s.applySecret(ctx, p.ns, f, uids[f.name])
	})
	return results, err
}

// parallel runs f on every item at once and returns, in item order, the
// results of those that succeeded, with the first error by item order.
func parallel[T any](items []T, f func(int, T) (Result, error)) ([]Result, error) {
	out := make([]Result, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { out[i], errs[i] = f(i, it) })
	}
	wg.Wait()
	var results []Result
	var first error
	for i := range items {
		if errs[i] != nil {
			if first == nil {
				first = errs[i]
			}
			continue
		}
		if out[i].Kind != "" {
			results = append(results, out[i])
		}
	}
	return results, first
}

// checkReuse refuses, before any write, a source_message_id that some
// object of the message already carries with another body.
func (s *Server) checkReuse(ctx context.Context, p *messagePlan, bodyHash string) error {
	for _, r := range p.resources {
		lr, found, err := s.get(ctx, p, r.name, kindResource, false)
		if err != nil {
			return err
		}
		if _, err := replayOf(stateOf(found, lr), p.msg, bodyHash, "LabResource "+r.name); err != nil {
			return err
		}
	}
	for _, f := range p.interfaces {
		li, found, err := s.get(ctx, p, f.name, kindInterface, false)
		if err != nil {
			return err
		}
		if _, err := replayOf(stateOf(found, li), p.msg, bodyHash, "LabInterface "+f.name); err != nil {
			return err
		}
	}
	return nil
}

// annotations marks an applied object for staleness, replay and echo
// suppression.
func annotations(msg *wire.IncomingMessage, bodyHash string, spec any) map[string]any {
	out := map[string]any{labhookv1alpha1.AnnotationSourceBodyHash: bodyHash}
	for k, v := range echo.Mark(msg.SourceMessageID, msg.Timestamp, spec) {
		out[k] = v
	}
	return out
}

func applyObject(kind, ns, name string, meta map[string]any) *unstructured.Unstructured {
	meta["name"], meta["namespace"] = name, ns
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": kind, "metadata": meta,
	}}
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

// applied is what applySpec did to one LabResource or LabInterface.
type applied struct {
	op     string
	before state
	// after is the object as the API server returned it; nil when nothing
	// was written (a replay or a stale message).
	after *unstructured.Unstructured
}

// applySpec applies spec to the named object of kind, stamped with the
// message, unless the object already reflects this message (unchanged) or
// a newer one (stale). The write carries the resourceVersion it was judged
// on as a precondition, so a lost race re-reads from the API server and
// judges again.
func (s *Server) applySpec(ctx context.Context, p *messagePlan, kind, name string, spec any, bodyHash string) (applied, error) {
	specMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(spec)
	if err != nil {
		return applied{}, err
	}
	hash := echo.SpecHash(spec)
	var out applied
	fresh := false
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, found, err := s.get(ctx, p, name, kind, fresh)
		fresh = true
		if err != nil {
			return err
		}
		st := stateOf(found, obj)
		out = applied{before: st}
		if replay, _ := replayOf(st, p.msg, bodyHash, ""); replay {
			out.op = OpUnchanged
			return nil
		}
		if stale(st, p.msg) {
			out.op = OpStale
			return nil
		}
		switch {
		case !st.exists:
			out.op = OpCreated
		case st.ann[labhookv1alpha1.AnnotationSourceSpecHash] != hash:
			out.op = OpUpdated
		default:
			out.op = OpUnchanged
		}
		u := applyObject(kind, p.ns, name, map[string]any{"annotations": annotations(p.msg, bodyHash, spec)})
		u.Object["spec"] = specMap
		if st.exists {
			u.SetResourceVersion(st.rv)
		}
		if err := s.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(labhookv1alpha1.FieldManagerWebhookServer)); err != nil {
			return asFieldConflict(kind+" "+name, err)
		}
		s.recent.Add(recentKey(p.ns, kind, name), struct{}{})
		out.after = u
		return nil
	})
	return out, err
}

func (s *Server) applyResource(ctx context.Context, p *messagePlan, r plannedResource, bodyHash string) (Result, error) {
	res := Result{Kind: kindResource, ID: r.in.ID, Name: r.name, Namespace: p.ns}
	spec := labhookv1alpha1.LabResourceSpec{ID: r.in.ID, Type: labhookv1alpha1.ResourceType(r.in.Type), Name: r.in.Name}
	if c := r.in.Config; c != nil {
		spec.Config = &labhookv1alpha1.LabResourceConfig{Address: c.Address, Extra: extraJSON(c.Extra)}
		for _, n := range c.NetworkInterfaces {
			spec.Config.NetworkInterfaces = append(spec.Config.NetworkInterfaces,
				labhookv1alpha1.NetworkInterface{PublicIP: n.PublicIP, PrivateIP: n.PrivateIP, DNS: n.DNS})
		}
	}
	a, err := s.applySpec(ctx, p, kindResource, r.name, &spec, bodyHash)
	res.Operation = a.op
	if err != nil || a.op == OpStale || r.in.Status == "" {
		return res, err
	}
	// Then the phase, through the status subresource; also on a replay, so
	// a message cut off between spec and status converges. The same phase
	// again is a no-op for the API server: it writes nothing.
	rv := a.before.rv
	if a.after != nil {
		rv = a.after.GetResourceVersion()
	}
	u := applyObject(kindResource, p.ns, r.name, map[string]any{})
	u.Object["status"] = map[string]any{"phase": r.in.Status}
	if err := s.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(labhookv1alpha1.FieldManagerWebhookServer)); err != nil {
		return res, asFieldConflict(kindResource+" "+r.name+" status", err)
	}
	if res.Operation == OpUnchanged && u.GetResourceVersion() != rv {
		res.Operation = OpUpdated
	}
	return res, nil
}

// applyInterface applies one LabInterface and returns its UID, to own its
// credential Secret.
func (s *Server) applyInterface(ctx context.Context, p *messagePlan, f plannedInterface, bodyHash string) (Result, types.UID, error) {
	res := Result{Kind: kindInterface, ID: f.in.ResourceID + "/" + f.in.Name, Name: f.name, Namespace: p.ns}
	spec := labhookv1alpha1.LabInterfaceSpec{
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
	a, err := s.applySpec(ctx, p, kindInterface, f.name, &spec, bodyHash)
	res.Operation = a.op
	uid := a.before.uid
	if a.after != nil {
		uid = a.after.GetUID()
	}
	return res, uid, err
}

// applySecret writes an interface's credentials. With owner set, the
// Secret is owned by the LabInterface, so it goes when the interface goes.
// The Secret carries no message annotations: the same credentials applied
// again change nothing and write nothing.
func (s *Server) applySecret(ctx context.Context, ns string, f plannedInterface, owner types.UID) error {
	data := map[string]any{}
	for k, v := range f.in.Config.Authentication.Data {
		data[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	meta := map[string]any{"labels": map[string]any{labhookv1alpha1.LabelLabInterface: f.name}}
	if owner != "" {
		meta["ownerReferences"] = []any{map[string]any{
			"apiVersion": labhookv1alpha1.GroupVersion.String(), "kind": kindInterface,
			"name": f.name, "uid": string(owner),
		}}
	}
	u := applyObject(kindSecret, ns, f.auth, meta)
	u.Object["apiVersion"] = "v1"
	u.Object["type"] = "Opaque"
	u.Object["data"] = data
	err := s.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(labhookv1alpha1.FieldManagerWebhookServer))
	objectsApplied.WithLabelValues(kindSecret, "applied").Inc()
	return asFieldConflict(kindSecret+" "+f.auth, err)
}

// delete removes the message's interfaces, then its resources. Each is
// first marked with the message, so its DELETED message is not echoed.
func (s *Server) delete(ctx context.Context, p *messagePlan, bodyHash string) ([]Result, error) {
	var results []Result
	for _, f := range p.interfaces {
		res := Result{Kind: kindInterface, ID: f.in.ResourceID + "/" + f.in.Name, Name: f.name, Namespace: p.ns}
		var err error
		res.Operation, err = s.deleteOne(ctx, p, f.name, kindInterface, bodyHash)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	for _, r := range p.resources {
		res := Result{Kind: kindResource, ID: r.in.ID, Name: r.name, Namespace: p.ns}
		var err error
		res.Operation, err = s.deleteOne(ctx, p, r.name, kindResource, bodyHash)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// deleteOne marks obj with the message, with the resourceVersion it was
// judged on as a precondition, then deletes that very object (by UID). A
// lost race re-reads from the API server and judges again.
func (s *Server) deleteOne(ctx context.Context, p *messagePlan, name, kind string, bodyHash string) (string, error) {
	var op string
	fresh := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, found, err := s.get(ctx, p, name, kind, fresh)
		fresh = true
		if err != nil {
			return err
		}
		st := stateOf(found, obj)
		switch {
		case !st.exists:
			op = OpNotFound
			return nil
		case st.deleting:
			op = OpDeleted
			return nil
		case stale(st, p.msg):
			op = OpStale
			return nil
		}
		mark, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": st.rv,
			"annotations": map[string]string{
				labhookv1alpha1.AnnotationSourceDeleted:   p.msg.SourceMessageID,
				labhookv1alpha1.AnnotationSourceMessageID: p.msg.SourceMessageID,
				labhookv1alpha1.AnnotationSourceTimestamp: p.msg.Timestamp,
				labhookv1alpha1.AnnotationSourceBodyHash:  bodyHash,
			},
		}})
		if err := s.client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, mark), client.FieldOwner(labhookv1alpha1.FieldManagerWebhookServer)); err != nil {
			return err
		}
		op = OpDeleted
		return client.IgnoreNotFound(s.client.Delete(ctx, obj, client.Preconditions{UID: &st.uid}))
	})
	if apierrors.IsNotFound(err) {
		return OpNotFound, nil
	}
	return op, err
}

// apiStatus is the API server's answer inside err, if it is one.
func apiStatus(err error) (metav1.Status, bool) {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return metav1.Status{}, false
	}
	return status.Status(), true
}

// classify turns a failed write into an answer: 409 for a reused id or a
// field owned by another manager, 422 for what the API server's own
// validation refused, and 503 (retry later) when the API server could not
// be reached or was overloaded.
func classify(err error) (int, string, []Detail) {
	if e, ok := errors.AsType[*reuseError](err); ok {
		return http.StatusConflict, e.Error(), nil
	}
	if e, ok := errors.AsType[*fieldConflictError](err); ok {
		det := make([]Detail, 0, len(e.causes))
		for _, c := range e.causes {
			det = append(det, Detail{Field: e.object + " " + c.Field, Message: c.Message})
		}
		return http.StatusConflict, fmt.Sprintf("%s: fields this message sets are owned by another field manager: %s", e.object, e.message), det
	}
	st, ok := apiStatus(err)
	if !ok {
		return http.StatusServiceUnavailable, "the Kubernetes API server is unavailable; retry later", nil
	}
	switch {
	case apierrors.IsInvalid(err):
		var det []Detail
		if d := st.Details; d != nil {
			for _, c := range d.Causes {
				det = append(det, Detail{Field: d.Kind + " " + d.Name + " " + c.Field, Message: c.Message})
			}
		}
		return http.StatusUnprocessableEntity, "the API server refused an object: " + err.Error(), det
	case apierrors.IsConflict(err), apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err),
		apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err):
		return http.StatusServiceUnavailable, "the Kubernetes API server is busy; retry later: " + err.Error(), nil
	case apierrors.IsForbidden(err):
		return http.StatusInternalServerError, "the webhookserver is not allowed to write this; check its RBAC: " + strings.TrimSpace(err.Error()), nil
	}
	return http.StatusInternalServerError, err.Error(), nil
}
