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
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// These tests run the production schedules (5s … 10h, a 24h grace period)
// on a fake clock: what the envtest suite can only check with shortened
// schedules and real seconds.

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestRetryScheduleFollowsTheInjectedClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch)
	r := &OutgoingMessageReconciler{Opts: DefaultOptions(), Clock: clk}
	// maxAge at its 720h maximum, so maxAttempts ends the round.
	whc := &labhookv1alpha1.WebhookConfig{ObjectMeta: metav1.ObjectMeta{Name: "backend"},
		Spec: labhookv1alpha1.WebhookConfigSpec{Retry: labhookv1alpha1.RetryPolicy{MaxAge: "720h"}}}
	om := &labhookv1alpha1.OutgoingMessage{}
	first := labhookv1alpha1.DeliveryAttempt{Time: metav1.NewTime(epoch), Error: "HTTPStatus: HTTP 503"}
	for attempt := int32(1); attempt < labhookv1alpha1.DefaultRetryMaxAttempts; attempt++ {
		om.Status.Attempts = attempt
		om.Status.History = append(om.Status.History, first)
		om.Status.LastAttempt = first.DeepCopy()
		now := clk.Now()
		res := r.scheduleRetry(om, whc, 0)
		if om.Status.Phase != labhookv1alpha1.MessagePending || om.Status.NextAttemptTime == nil {
			t.Fatalf("attempt %d: phase %q, next %v; want Pending with a next attempt", attempt, om.Status.Phase, om.Status.NextAttemptTime)
		}
		want := DefaultRetrySchedule[attempt]
		gap := om.Status.NextAttemptTime.Sub(now)
		// ±10% jitter, rounded up to the second status keeps.
		if gap < want*9/10 || gap > want*11/10+time.Second {
			t.Errorf("attempt %d: next attempt %s after it, want %s ±10%%", attempt, gap, want)
		}
		if res.RequeueAfter != gap {
			t.Errorf("attempt %d: requeue after %s, want %s (the fake clock's time to the next attempt)", attempt, res.RequeueAfter, gap)
		}
		clk.SetTime(om.Status.NextAttemptTime.Time)
		first = labhookv1alpha1.DeliveryAttempt{Time: metav1.NewTime(clk.Now()), Error: "HTTPStatus: HTTP 503"}
	}
	om.Status.Attempts = labhookv1alpha1.DefaultRetryMaxAttempts
	r.scheduleRetry(om, whc, 0)
	if om.Status.Phase != labhookv1alpha1.MessageFailed {
		t.Errorf("after %d attempts: phase %q, want Failed", labhookv1alpha1.DefaultRetryMaxAttempts, om.Status.Phase)
	}
}

func TestRetryStopsAtMaxAgeOnTheInjectedClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch)
	r := &OutgoingMessageReconciler{Opts: DefaultOptions(), Clock: clk}
	whc := &labhookv1alpha1.WebhookConfig{}
	a := labhookv1alpha1.DeliveryAttempt{Time: metav1.NewTime(epoch), Error: "Timeout"}
	om := &labhookv1alpha1.OutgoingMessage{Status: labhookv1alpha1.OutgoingMessageStatus{
		Attempts: 3, History: []labhookv1alpha1.DeliveryAttempt{a, a, a}, LastAttempt: a.DeepCopy()}}
	clk.SetTime(epoch.Add(23*time.Hour + 45*time.Minute)) // the next attempt (30m ±10%) would be past maxAge (24h)
	r.scheduleRetry(om, whc, 0)
	if om.Status.Phase != labhookv1alpha1.MessageFailed {
		t.Fatalf("phase %q, want Failed once the next attempt would be past maxAge", om.Status.Phase)
	}
}

func TestRetentionFollowsTheInjectedClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch.Add(10 * time.Minute))
	r := &OutgoingMessageReconciler{Opts: DefaultOptions(), Clock: clk}
	delivered := metav1.NewTime(epoch)
	om := &labhookv1alpha1.OutgoingMessage{Status: labhookv1alpha1.OutgoingMessageStatus{
		Phase: labhookv1alpha1.MessageDelivered, DeliveredTime: &delivered}}
	res, err := r.retainDelivered(t.Context(), om)
	if err != nil || res.RequeueAfter != 50*time.Minute {
		t.Fatalf("retainDelivered = %v, %v; want a requeue after the 50m left of the 1h retention", res, err)
	}
}

func TestRotationGraceFollowsTheInjectedClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch)
	opts := DefaultOptions() // 24h grace
	r := &WebhookConfigReconciler{Options: opts, Clock: clk}
	whc := &labhookv1alpha1.WebhookConfig{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	key, err := newSigningKey(labhookv1alpha1.SignatureHMACSHA256)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{Data: map[string][]byte{labhookv1alpha1.SecretKeySigning: []byte(key)}}
	if err := r.rotate(secret, whc, "r1", clk.Now()); err != nil {
		t.Fatal(err)
	}
	check := func(step time.Duration, wantPrevious bool) {
		t.Helper()
		clk.SetTime(clk.Now().Add(step))
		expireRotation(secret, clk.Now())
		r.reportRotation(whc, secret, &requeue{})
		_, has := secret.Data[labhookv1alpha1.SecretKeyPreviousSigning]
		if has != wantPrevious {
			t.Fatalf("at +%s: previousSecret kept = %v, want %v", clk.Now().Sub(epoch), has, wantPrevious)
		}
		keys, err := secretsFrom(secret, whc, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 2, false: 1}[wantPrevious]; len(keys) != want {
			t.Fatalf("at +%s: %d keys sign, want %d", clk.Now().Sub(epoch), len(keys), want)
		}
	}
	check(0, true)
	var after requeue
	r.reportRotation(whc, secret, &after)
	if got := after.result(clk.Now()).RequeueAfter; got != opts.RotationGracePeriod {
		t.Errorf("wakes up after %s, want at the end of the %s grace period", got, opts.RotationGracePeriod)
	}
	check(opts.RotationGracePeriod-time.Second, true)
	check(time.Second, false)
}

func TestTestBackoffFollowsTheInjectedClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(epoch)
	r := &WebhookConfigReconciler{Options: DefaultOptions(), Clock: clk} // 1m … 1h
	last := metav1.NewTime(epoch)
	next := metav1.NewTime(epoch.Add(4 * time.Minute))
	st := &labhookv1alpha1.WebhookConfigStatus{State: labhookv1alpha1.StateInvalid, TestedFingerprint: "fp",
		LastTest: &labhookv1alpha1.WebhookConfigTest{Time: last, HTTPStatus: 500}, NextTestTime: &next}
	var after requeue
	if r.testDue(st, "fp", clk.Now(), &after) {
		t.Fatal("a test is due before nextTestTime")
	}
	if got := after.result(clk.Now()).RequeueAfter; got != 4*time.Minute {
		t.Errorf("wakes up after %s, want 4m", got)
	}
	clk.SetTime(next.Time)
	if !r.testDue(st, "fp", clk.Now(), &requeue{}) {
		t.Error("no test is due at nextTestTime")
	}
	if got := r.nextBackoff(st); got != 8*time.Minute {
		t.Errorf("next backoff %s, want the 4m wait doubled", got)
	}
}
