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
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// An incoming message answers an outgoing one: its source_message_id is
// the message_id labhook sent (seed 000). Several incoming messages may
// answer one outgoing message (the lab created, then the lab ready).

// ReplyTo names the outgoing message an incoming message answers.
type ReplyTo struct {
	MessageID string `json:"message_id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
}

// lastMessageIDField is the selectable field of LabResources and
// LabInterfaces that holds the id of the last message labhook sent about them.
const lastMessageIDField = "status.lastMessage.id"

// lookupReply returns the reads that find what source_message_id names in
// the organisation's namespace, and only there: an OutgoingMessage of that
// name, or a LabResource or LabInterface whose last message has that id
// (lab messages delivered at once need no OutgoingMessage). resolve,
// called once the reads are done, records it in p.
func (s *Server) lookupReply(ctx context.Context, oc orgClient, p *messagePlan) (jobs []func() error, resolve func()) {
	id := p.msg.SourceMessageID
	var om *labhookv1alpha1.OutgoingMessage
	if len(validation.IsDNS1123Subdomain(id)) == 0 {
		jobs = append(jobs, func() (err error) {
			om, err = readAs[labhookv1alpha1.OutgoingMessage](ctx, s, oc, kindOutgoingMessage, id, false)
			return err
		})
	}
	var lrs labhookv1alpha1.LabResourceList
	var lis labhookv1alpha1.LabInterfaceList
	for _, l := range []client.ObjectList{&lrs, &lis} {
		jobs = append(jobs, func() error {
			err := oc.list(ctx, l, client.MatchingFields{lastMessageIDField: id}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}})
			if apierrors.IsBadRequest(err) {
				// The CRD has no such selectable field (an older one):
				// lab messages cannot be told apart; the id is unknown.
				logf.FromContext(ctx).Info("cannot select lab objects by their last message; is the CRD current?", "error", err.Error())
				return nil
			}
			return err
		})
	}
	return jobs, func() {
		switch {
		case om != nil:
			p.om = om
			p.reply = &ReplyTo{MessageID: id, Type: string(om.Spec.Type), Status: om.Spec.Status}
		case len(lrs.Items) > 0 && lrs.Items[0].Status.LastMessage != nil:
			lm := lrs.Items[0].Status.LastMessage
			p.reply = &ReplyTo{MessageID: id, Type: lm.Type, Status: lm.Status}
		case len(lis.Items) > 0 && lis.Items[0].Status.LastMessage != nil:
			lm := lis.Items[0].Status.LastMessage
			p.reply = &ReplyTo{MessageID: id, Type: lm.Type, Status: lm.Status}
		}
	}
}

// maxReplyObjects is how many objects status.replies.objects lists.
const maxReplyObjects = 20

// recordReply counts the message in the OutgoingMessage's status.replies,
// with server-side apply of that field alone, so the manager's status
// fields are left to the manager. A reply is known by its action and
// timestamp (two bodies with the same source_message_id, action and
// timestamp are refused as ambiguous), so the last reply recorded again
// is not counted twice; nor is a retry of an older reply that writes
// nothing new.
func (s *Server) recordReply(ctx context.Context, oc orgClient, p *messagePlan, results []Result, wrote bool) error {
	om := p.om
	at := p.msg.Time.Truncate(time.Second)
	for attempt := 1; ; attempt++ {
		next := labhookv1alpha1.Replies{}
		newer := false
		if rep := om.Status.Replies; rep != nil {
			if rep.LastAction == p.msg.Action && rep.LastTime != nil && rep.LastTime.Equal(&metav1.Time{Time: at}) {
				return nil
			}
			newer = rep.LastTime != nil && rep.LastTime.After(at)
			if newer && !wrote {
				return nil
			}
			next = *rep.DeepCopy()
		}
		next.Count++
		if !newer {
			next.LastTime = &metav1.Time{Time: at}
			next.LastAction = p.msg.Action
			next.Objects = replyObjects(results)
		}
		replies, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&next)
		if err != nil {
			return err
		}
		u := applyObject(kindOutgoingMessage, p.ns, om.Name, map[string]any{"resourceVersion": om.ResourceVersion})
		u.Object["status"] = map[string]any{"replies": replies}
		err = asFieldConflict(kindOutgoingMessage+" "+om.Name+" status", oc.applyStatus(ctx, u))
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !isPreconditionConflict(err) || attempt == maxAttempts {
			return err
		}
		if om, err = readAs[labhookv1alpha1.OutgoingMessage](ctx, s, oc, kindOutgoingMessage, om.Name, true); om == nil {
			return err
		}
	}
}

// replyObjects are the objects a reply applied (at most maxReplyObjects).
func replyObjects(results []Result) []labhookv1alpha1.ObjectReference {
	var out []labhookv1alpha1.ObjectReference
	for _, r := range results {
		if r.Operation == OpStale || r.Operation == OpNotFound || len(out) == maxReplyObjects {
			continue
		}
		out = append(out, labhookv1alpha1.ObjectReference{Kind: r.Kind, Name: r.Name})
	}
	return out
}
