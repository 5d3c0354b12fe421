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
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/internal/echo"
)

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
	if ann[labhookv1alpha1.AnnotationSourceMessageID] == msg.SourceMessageID && ann[labhookv1alpha1.AnnotationSourceBodyHash] == p.bodyHash {
		op := ann[labhookv1alpha1.AnnotationSourceOperation]
		if op == "" {
			op = OpUnchanged
		}
		return verdict{op: op, replay: true}, nil
	}
	if err := p.ambiguous(cur); err != nil {
		return verdict{}, err
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

// ambiguous refuses a message when obj reflects another body with the
// same source_message_id, action and timestamp.
func (p *messagePlan) ambiguous(obj client.Object) error {
	ann := obj.GetAnnotations()
	if ann[labhookv1alpha1.AnnotationSourceMessageID] == p.msg.SourceMessageID &&
		ann[labhookv1alpha1.AnnotationSourceAction] == p.msg.Action &&
		ann[labhookv1alpha1.AnnotationSourceTimestamp] == p.msg.Timestamp &&
		ann[labhookv1alpha1.AnnotationSourceBodyHash] != p.bodyHash {
		return &reuseError{msg: p.msg}
	}
	return nil
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
		// A DELETED is judged object by object as it deletes (deleteOne);
		// only an ambiguous reuse refuses it whole.
		for _, r := range p.resources {
			if r.cur != nil {
				if err := p.ambiguous(r.cur); err != nil {
					return err
				}
			}
		}
		for _, f := range p.interfaces {
			if f.cur != nil {
				if err := p.ambiguous(f.cur); err != nil {
					return err
				}
			}
		}
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
