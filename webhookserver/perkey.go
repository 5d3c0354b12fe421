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
	"bytes"
	"errors"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// A webhook config per key (seed 002): an API-key Secret may name a
// WebhookConfig (labhook.io/webhook-config). The LabResources and
// LabInterfaces a message sent with that key writes carry
// spec.webhookConfigRef to it, in the same apply as the rest of their spec,
// so the messages about them go there. A key that names none writes no
// reference, and the apply removes one the webhookserver wrote before: the
// organisation's default config applies. A reference another field
// manager owns (a GitOps pipeline's, a person's kubectl edit) is left as it
// is: the apply leaves the field out, so it can neither conflict nor take
// the field over, and the message is never refused for it.

var (
	refPath     = fieldpath.MakePathOrDie("spec", "webhookConfigRef")
	refNamePath = fieldpath.MakePathOrDie("spec", "webhookConfigRef", "name")
)

// configRef is the spec.webhookConfigRef a message gives an object whose
// current state is cur (nil: absent) and current reference curRef, and
// whether the apply leaves the field out because another field manager
// owns it (the object then keeps curRef, which the spec hash covers, so
// the controllers still recognise the echo).
func (p *messagePlan) configRef(cur client.Object, curRef *labhookv1alpha1.LocalObjectReference) (*labhookv1alpha1.LocalObjectReference, bool) {
	if cur != nil && refOwnedElsewhere(cur) {
		return curRef, true
	}
	if p.config == "" {
		return nil, false
	}
	return &labhookv1alpha1.LocalObjectReference{Name: p.config}, false
}

// refOwnedElsewhere tells whether a field manager other than the
// webhookserver owns obj's spec.webhookConfigRef.
func refOwnedElsewhere(obj client.Object) bool {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == labhookv1alpha1.FieldManagerWebhookServer || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
			continue
		}
		if set.Has(refPath) || set.Has(refNamePath) {
			return true
		}
	}
	return false
}

// isRefConflict is an apply refused only because another field manager
// took spec.webhookConfigRef since the object was read: the object is read
// and judged again, and the field left to that manager.
func isRefConflict(err error) bool {
	var fc *fieldConflictError
	if !errors.As(err, &fc) {
		return false
	}
	for _, c := range fc.causes {
		if !strings.HasPrefix(c.Field, ".spec.webhookConfigRef") {
			return false
		}
	}
	return len(fc.causes) > 0
}

func (r *plannedResource) spec(p *messagePlan) (*labhookv1alpha1.LabResourceSpec, bool) {
	var curRef *labhookv1alpha1.LocalObjectReference
	if r.cur != nil {
		curRef = r.cur.Spec.WebhookConfigRef
	}
	ref, leave := p.configRef(objectOrNil(r.cur), curRef)
	return resourceSpec(r.in, ref), leave
}

func (f *plannedInterface) spec(p *messagePlan) (*labhookv1alpha1.LabInterfaceSpec, bool) {
	var curRef *labhookv1alpha1.LocalObjectReference
	if f.cur != nil {
		curRef = f.cur.Spec.WebhookConfigRef
	}
	ref, leave := p.configRef(objectOrNil(f.cur), curRef)
	return interfaceSpec(f, ref), leave
}
