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
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// TestSummariseDerivesReconcilingAndStalledFromReady covers every way a
// WebhookConfig gets its Ready condition, including the outbox's (410 Gone,
// failing deliveries), which the envtest suite reaches only slowly.
func TestSummariseDerivesReconcilingAndStalledFromReady(t *testing.T) {
	next := metav1.NewTime(epoch)
	for _, c := range []struct {
		name            string
		state           labhookv1alpha1.WebhookConfigState
		ready           metav1.ConditionStatus
		reason          string
		nextTest        *metav1.Time
		reconciling     metav1.ConditionStatus
		reconcileReason string
		stalled         bool
	}{
		{"test pending", labhookv1alpha1.StateNew, metav1.ConditionUnknown, labhookv1alpha1.ReasonTestPending, nil,
			metav1.ConditionTrue, labhookv1alpha1.ReasonTestPending, false},
		{"valid", labhookv1alpha1.StateValid, metav1.ConditionTrue, labhookv1alpha1.ReasonTestSucceeded, nil,
			metav1.ConditionFalse, labhookv1alpha1.ReasonSucceeded, false},
		{"test failed, retried on backoff", labhookv1alpha1.StateInvalid, metav1.ConditionFalse, labhookv1alpha1.ReasonHTTPStatus, &next,
			metav1.ConditionTrue, labhookv1alpha1.ReasonRetrying, false},
		{"deliveries failing, backoff not started", labhookv1alpha1.StateInvalid, metav1.ConditionFalse, labhookv1alpha1.ReasonDeliveryFailing, nil,
			metav1.ConditionFalse, labhookv1alpha1.ReasonDeliveryFailing, false},
		{"refused by policy", labhookv1alpha1.StateInvalid, metav1.ConditionFalse, labhookv1alpha1.ReasonRefusedByPolicy, &next,
			metav1.ConditionFalse, labhookv1alpha1.ReasonRefusedByPolicy, true},
		{"410 Gone", labhookv1alpha1.StateInvalid, metav1.ConditionFalse, labhookv1alpha1.ReasonEndpointGone, nil,
			metav1.ConditionFalse, labhookv1alpha1.ReasonEndpointGone, true},
		{"bad secret", labhookv1alpha1.StateInvalid, metav1.ConditionFalse, labhookv1alpha1.ReasonSecretError, nil,
			metav1.ConditionFalse, labhookv1alpha1.ReasonSecretError, true},
		{"deactivated", labhookv1alpha1.StateDeactivated, metav1.ConditionFalse, labhookv1alpha1.ReasonDeactivated, nil,
			metav1.ConditionFalse, labhookv1alpha1.ReasonDeactivated, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			whc := &labhookv1alpha1.WebhookConfig{Status: labhookv1alpha1.WebhookConfigStatus{State: c.state, NextTestTime: c.nextTest}}
			// A Stalled left over from an earlier state must go when it no longer applies.
			setCondition(whc, labhookv1alpha1.ConditionStalled, metav1.ConditionTrue, labhookv1alpha1.ReasonSecretError, "old")
			setCondition(whc, labhookv1alpha1.ConditionReady, c.ready, c.reason, "why")
			summarise(whc)
			r := meta.FindStatusCondition(whc.Status.Conditions, labhookv1alpha1.ConditionReconciling)
			if r == nil || r.Status != c.reconciling || r.Reason != c.reconcileReason {
				t.Errorf("Reconciling = %+v, want %s %s", r, c.reconciling, c.reconcileReason)
			}
			if got := meta.IsStatusConditionTrue(whc.Status.Conditions, labhookv1alpha1.ConditionStalled); got != c.stalled {
				t.Errorf("Stalled True = %v, want %v", got, c.stalled)
			}
			if c.stalled && r.Status == metav1.ConditionTrue {
				t.Error("Reconciling and Stalled are both True")
			}
		})
	}
}
