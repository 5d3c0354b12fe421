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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// outboxMonitor counts the outbox from the cache every interval: it sets the
// pending and failed gauges, and the Backlogged condition of each
// WebhookConfig whose Pending messages pass BacklogWarning. It writes a
// WebhookConfig only when its Backlogged condition changes. It runs on the
// leader only (a manager.Runnable without NeedLeaderElection).
type outboxMonitor struct {
	client   client.Client
	recorder recorder.EventRecorder
	warning  int
	interval time.Duration
	// maxRetained bounds Delivered messages per namespace; 0 means no cap.
	maxRetained int
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
	for i := range configs.Items {
		if err := m.markBacklog(ctx, &configs.Items[i], byTarget[client.ObjectKeyFromObject(&configs.Items[i])]); err != nil {
			return err
		}
	}
	return nil
}

// markBacklog sets Backlogged (and deliveries.pending) when the condition
// changes, with one Warning event when the backlog passes the warning.
func (m *outboxMonitor) markBacklog(ctx context.Context, whc *labhookv1alpha1.WebhookConfig, n int) error {
	over := n > m.warning
	cur := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionBacklogged)
	if (cur == nil && !over) || (cur != nil && (cur.Status == metav1.ConditionTrue) == over) {
		return nil
	}
	orig := whc.DeepCopy()
	c := metav1.Condition{Type: labhookv1alpha1.ConditionBacklogged, ObservedGeneration: whc.Generation,
		Status: metav1.ConditionFalse, Reason: labhookv1alpha1.ReasonBacklogOK,
		Message: fmt.Sprintf("%d Pending messages, warning at %d", n, m.warning)}
	if over {
		c.Status, c.Reason = metav1.ConditionTrue, labhookv1alpha1.ReasonBacklogged
	}
	meta.SetStatusCondition(&whc.Status.Conditions, c)
	if whc.Status.Deliveries == nil {
		whc.Status.Deliveries = &labhookv1alpha1.DeliveryStats{}
	}
	whc.Status.Deliveries.Pending = int32(n)
	// Conditions are replaced whole by a merge patch: lock on the
	// resourceVersion so a concurrent write by the WebhookConfig controller
	// wins and the next count retries.
	if err := m.client.Status().Patch(ctx, whc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	if over {
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
