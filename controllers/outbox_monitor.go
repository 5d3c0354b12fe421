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

package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// outboxMonitor counts the outbox from the cache every interval: it sets the
// pending, failed and owed gauges, the Backlogged condition of each
// WebhookConfig whose Pending messages pass BacklogWarning, and each
// config's status.deliveries.owed. It writes a WebhookConfig only when its
// Backlogged condition or its owed count changes. It runs on the leader
// only (a manager.Runnable without NeedLeaderElection).
type outboxMonitor struct {
	client   client.Client
	recorder recorder.EventRecorder
	warning  int
	interval time.Duration
	// maxRetained bounds Delivered messages per namespace; 0 means no cap.
	maxRetained int
	outbox      *outbox
	// owedNamespaces are the namespaces the owed gauge has a series for.
	owedNamespaces map[string]bool
	// stale are the owing objects the last count expected to be sent.
	stale map[types.UID]bool
}

// Start counts until ctx ends.
func (m *outboxMonitor) Start(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.count(ctx); err != nil {
				log.FromContext(ctx).Info("could not count the outbox", "error", err.Error())
			}
			if err := m.capDelivered(ctx); err != nil {
				log.FromContext(ctx).Info("could not prune Delivered messages", "error", err.Error())
			}
		}
	}
}

func (m *outboxMonitor) count(ctx context.Context) error {
	var pending labhookv1alpha1.OutgoingMessageList
	if err := m.client.List(ctx, &pending, client.MatchingFields{indexMessagePhase: string(labhookv1alpha1.MessagePending)},
		client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var failedList labhookv1alpha1.OutgoingMessageList
	if err := m.client.List(ctx, &failedList, client.MatchingFields{indexMessagePhase: string(labhookv1alpha1.MessageFailed)},
		client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	messagesPending.Set(float64(len(pending.Items)))
	messagesFailed.Set(float64(len(failedList.Items)))

	byTarget := map[client.ObjectKey]int{}
	for i := range pending.Items {
		if t := pending.Items[i].Status.Target; t != "" {
			byTarget[client.ObjectKey{Namespace: pending.Items[i].Namespace, Name: t}]++
		}
	}
	var configs labhookv1alpha1.WebhookConfigList
	if err := m.client.List(ctx, &configs); err != nil {
		return err
	}
	owed, err := m.countOwed(ctx, configs.Items)
	if err != nil {
		return err
	}
	for i := range configs.Items {
		key := client.ObjectKeyFromObject(&configs.Items[i])
		if err := m.markBacklog(ctx, &configs.Items[i], byTarget[key], owed[key]); err != nil {
			return err
		}
	}
	return nil
}

// countOwed counts the lab objects that hold a message they owe (not in
// flight: their config is not accepting, or their own earlier message is
// still Pending), per config, and sets the per-organisation gauge.
func (m *outboxMonitor) countOwed(ctx context.Context, configs []labhookv1alpha1.WebhookConfig) (map[client.ObjectKey]int, error) {
	defaults := map[string]string{}
	byKey := map[client.ObjectKey]*labhookv1alpha1.WebhookConfig{}
	byNamespace := map[string][]labhookv1alpha1.WebhookConfig{}
	for i := range configs {
		byKey[client.ObjectKeyFromObject(&configs[i])] = &configs[i]
		byNamespace[configs[i].Namespace] = append(byNamespace[configs[i].Namespace], configs[i])
	}
	for ns, items := range byNamespace {
		if d := oldestDefault(items); d != nil {
			defaults[ns] = d.Name
		}
	}
	perConfig := map[client.ObjectKey]int{}
	perNamespace := map[string]int{}
	stale := map[types.UID]bool{}
	defer func() { m.stale = stale }()
	add := func(obj client.Object, ref *labhookv1alpha1.LocalObjectReference, requeue func(client.Object)) {
		if m.outbox.labAttempts.inFlight(obj.GetUID()) {
			return
		}
		name := refNameOf(ref)
		if name == "" {
			name = defaults[obj.GetNamespace()]
		}
		key := client.ObjectKey{Namespace: obj.GetNamespace(), Name: name}
		whc := byKey[key]
		if whc != nil && whc.Status.State == labhookv1alpha1.StateValid && m.outbox.health.accepting(whc) &&
			m.outbox.labPending.ofObject(obj.GetUID()) == 0 {
			// Not held: it is about to be sent. Should it still owe at the
			// next count, the reconcile that would send it was lost (say, it
			// held behind another object's message that since left Pending
			// without waking it): wake it. Level-triggered, whatever the cause.
			if m.stale[obj.GetUID()] {
				requeue(obj)
			}
			stale[obj.GetUID()] = true
			return
		}
		perNamespace[obj.GetNamespace()]++
		perConfig[key]++
	}
	var lrs labhookv1alpha1.LabResourceList
	if err := m.client.List(ctx, &lrs, client.MatchingFields{indexOwes: owesAny}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range lrs.Items {
		add(&lrs.Items[i], lrs.Items[i].Spec.WebhookConfigRef, func(o client.Object) {
			m.outbox.requeueResources.add(client.ObjectKeyFromObject(o))
		})
	}
	var lis labhookv1alpha1.LabInterfaceList
	if err := m.client.List(ctx, &lis, client.MatchingFields{indexOwes: owesAny}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range lis.Items {
		add(&lis.Items[i], lis.Items[i].Spec.WebhookConfigRef, func(o client.Object) {
			m.outbox.requeueInterfaces.add(client.ObjectKeyFromObject(o))
		})
	}
	if m.owedNamespaces == nil {
		m.owedNamespaces = map[string]bool{}
	}
	for ns := range m.owedNamespaces {
		if perNamespace[ns] == 0 {
			messagesOwed.DeleteLabelValues(ns)
			delete(m.owedNamespaces, ns)
		}
	}
	for ns, n := range perNamespace {
		messagesOwed.WithLabelValues(ns).Set(float64(n))
		m.owedNamespaces[ns] = true
	}
	return perConfig, nil
}

// markBacklog sets Backlogged (and deliveries.pending) when the condition
// changes, with one Warning event when the backlog passes the warning, and
// deliveries.owed when it changes.
func (m *outboxMonitor) markBacklog(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, n, owed int) error {
	over := n > m.warning
	cur := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionBacklogged)
	backlogChanged := !((cur == nil && !over) || (cur != nil && (cur.Status == metav1.ConditionTrue) == over))
	var owedBefore int32
	if whc.Status.Deliveries != nil {
		owedBefore = whc.Status.Deliveries.Owed
	}
	if !backlogChanged && owedBefore == int32(owed) {
		return nil
	}
	wrote, err := writeStatus(ctx, m.outbox.health.statusWriter(), whc, func(w *labhookv1alpha1.WebhookConfig) bool {
		if w.Status.Deliveries == nil {
			w.Status.Deliveries = &labhookv1alpha1.DeliveryStats{}
		}
		w.Status.Deliveries.Owed = int32(owed)
		if backlogChanged {
			c := metav1.Condition{Type: labhookv1alpha1.ConditionBacklogged, ObservedGeneration: w.Generation,
				Status: metav1.ConditionFalse, Reason: labhookv1alpha1.ReasonBacklogOK,
				Message: fmt.Sprintf("%d Pending messages, warning at %d", n, m.warning)}
			if over {
				c.Status, c.Reason = metav1.ConditionTrue, labhookv1alpha1.ReasonBacklogged
			}
			meta.SetStatusCondition(&w.Status.Conditions, c)
			w.Status.Deliveries.Pending = int32(n)
		}
		return true
	})
	if err != nil || !wrote {
		return err
	}
	if backlogChanged && over {
		m.recorder.Eventf(whc, nil, corev1.EventTypeWarning, labhookv1alpha1.ReasonBacklogged, "Count",
			"%d messages are Pending, past --backlog-warning=%d", n, m.warning)
	}
	return nil
}

// capDelivered keeps at most maxRetained Delivered messages per namespace,
// deleting the oldest deliveries first. One pruner on the leader, not every
// delivery worker, so deletes are never raced or repeated.
func (m *outboxMonitor) capDelivered(ctx context.Context) error {
	if m.maxRetained <= 0 {
		return nil
	}
	var list labhookv1alpha1.OutgoingMessageList
	if err := m.client.List(ctx, &list, client.MatchingFields{indexMessagePhase: string(labhookv1alpha1.MessageDelivered)},
		client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list Delivered messages: %w", err)
	}
	byNamespace := map[string][]*labhookv1alpha1.OutgoingMessage{}
	for i := range list.Items {
		om := &list.Items[i]
		byNamespace[om.Namespace] = append(byNamespace[om.Namespace], om)
	}
	for _, items := range byNamespace {
		excess := len(items) - m.maxRetained
		if excess <= 0 {
			continue
		}
		slices.SortFunc(items, func(a, b *labhookv1alpha1.OutgoingMessage) int {
			if c := deliveredAt(a).Compare(deliveredAt(b)); c != 0 {
				return c
			}
			if before(a, b) {
				return -1
			}
			return 1
		})
		for _, om := range items[:excess] {
			if err := deleteMessage(ctx, m.client, om); err != nil {
				return err
			}
		}
	}
	return nil
}
