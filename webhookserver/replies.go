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

// findOutgoingMessage returns the read, run with the prefetch, of the
// OutgoingMessage source_message_id names in the organisation's namespace.
func (s *Server) findOutgoingMessage(ctx context.Context, oc orgClient, p *messagePlan) []func() error {
	id := p.msg.SourceMessageID
	if len(validation.IsDNS1123Subdomain(id)) > 0 {
		return nil // no object can have that name
	}
	return []func() error{func() (err error) {
		p.om, err = readAs[labhookv1alpha1.OutgoingMessage](ctx, s, oc, kindOutgoingMessage, id, false)
		return err
	}}
}

// findReply decides, once the prefetch is done, what source_message_id
// answers, in the organisation's namespace and only there: the
// OutgoingMessage of that name; else a LabResource or LabInterface the
// message names whose status.lastMessage is that message (a message
// delivered at once has no OutgoingMessage; a backend answers it about the
// object it was about); else, with --find-replies-in-namespace, any
// LabResource or LabInterface of the namespace whose last message it is,
// through the selectable field. That last search costs the API server a
// pass over every LabResource and LabInterface of the namespace, for every
// message whose id names nothing, so it is off by default.
func (s *Server) findReply(ctx context.Context, oc orgClient, p *messagePlan) error {
	id := p.msg.SourceMessageID
	if p.om != nil {
		p.reply = &ReplyTo{MessageID: id, Type: string(p.om.Spec.Type), Status: p.om.Spec.Status}
		return nil
	}
	var named []*labhookv1alpha1.LastMessage
	for _, r := range p.resources {
		if r.cur != nil {
			named = append(named, r.cur.Status.LastMessage)
		}
	}
	for _, f := range p.interfaces {
		if f.cur != nil {
			named = append(named, f.cur.Status.LastMessage)
		}
	}
	if !s.opts.FindRepliesInNamespace {
		p.reply = replyFrom(id, named)
		return nil
	}
	if p.reply = replyFrom(id, named); p.reply != nil {
		return nil
	}
	var lrs labhookv1alpha1.LabResourceList
	var lis labhookv1alpha1.LabInterfaceList
	lists := []client.ObjectList{&lrs, &lis}
	err := firstError(each(len(lists), func(i int) error {
		return oc.list(ctx, lists[i], client.MatchingFields{lastMessageIDField: id}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}})
	}))
	if err != nil {
		return err
	}
	for _, lr := range lrs.Items {
		named = append(named, lr.Status.LastMessage)
	}
	for _, li := range lis.Items {
		named = append(named, li.Status.LastMessage)
	}
	p.reply = replyFrom(id, named)
	return nil
}

// replyFrom is the message with id among last messages, if it is one.
func replyFrom(id string, last []*labhookv1alpha1.LastMessage) *ReplyTo {
	for _, lm := range last {
		if lm != nil && lm.ID == id {
			return &ReplyTo{MessageID: id, Type: lm.Type, Status: lm.Status}
		}
	}
	return nil
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
