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

package plugin

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// diagnose says what stops or delays an organisation's messages, most
// important first, each with what to do. It reads only what labhook
// recorded in status; it never guesses from time alone, except that a
// config still new after newConfigGrace hints at a manager not running.
func diagnose(o *orgStatus, now time.Time) []string {
	p := []string{}
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	ns := o.Organisation

	hasDefault := false
	for _, w := range o.WebhookConfigs {
		hasDefault = hasDefault || w.Default
	}
	switch {
	case len(o.WebhookConfigs) == 0:
		add("no WebhookConfig: nothing is delivered for this organisation; create one with spec.default: true")
	case !hasDefault:
		add("no default WebhookConfig: messages and lab objects that name no webhookConfigRef wait; set spec.default: true on one")
	}
	for i := range o.WebhookConfigs {
		p = append(p, configProblems(ns, &o.WebhookConfigs[i], now)...)
	}

	m := o.Messages
	if n := m.PendingByReason[labhookv1alpha1.ReasonNoUsableConfig]; n > 0 {
		old := m.OldestPendingByReason[labhookv1alpha1.ReasonNoUsableConfig]
		add("%d OutgoingMessage(s) wait for a usable WebhookConfig (oldest %s: %s)", n, old.Name, orDash(old.Message))
	}
	if m.Failed > 0 {
		f := m.NewestFailed
		add("%d OutgoingMessage(s) Failed, their retries exhausted (newest %s, %s %s to %s: %s); once the receiver is fixed: kubectl labhook redeliver --failed -n %s",
			m.Failed, f.Name, f.Type, f.Status, orDash(f.Target), attemptError(f.LastHTTPStatus, f.LastError), ns)
	}
	if o.LabObjects.Owed > 0 {
		add("%d lab object(s) owe a message (status behind spec): being sent, or waiting for the problems above", o.LabObjects.Owed)
	}
	return p
}

// configProblems are one WebhookConfig's problems.
func configProblems(ns string, w *configStatus, now time.Time) []string {
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	name := "WebhookConfig " + w.Name
	if w.Default {
		name += " (default)"
	}
	retest := fmt.Sprintf("kubectl labhook test whc/%s -n %s --wait", w.Name, ns)
	switch w.State {
	case labhookv1alpha1.StateDeactivated:
		add("%s is deactivated (spec.deactivated: true): nothing is delivered to it", name)
	case labhookv1alpha1.StateInvalid:
		if w.Reason == labhookv1alpha1.ReasonEndpointGone {
			add("%s is invalid: the receiver answered 410 Gone, so nothing is sent to it until spec.url changes or it is re-tested: %s", name, retest)
			break
		}
		next := ""
		if w.NextTestTime != nil {
			next = fmt.Sprintf("; next automatic test %s", ago(now, w.NextTestTime))
		}
		add("%s is invalid (%s): %s%s; once the receiver is fixed: %s", name, orDash(w.Reason), orDash(w.Message), next, retest)
	case labhookv1alpha1.StateNew, "":
		if w.LastTest == nil && now.Sub(w.created.Time) > newConfigGrace {
			add("%s has waited %s for its first test: is the labhook manager running?", name, ago(now, &w.created))
		} else {
			add("%s is new: waiting for its test message to be answered", name)
		}
	case labhookv1alpha1.StateValid:
		if w.ConsecutiveFailures > 0 {
			add("%s: deliveries failing (%d in a row, last %s: %s); it becomes invalid if this lasts --invalidate-after",
				name, w.ConsecutiveFailures, ago(now, w.LastFailure), orDash(w.LastError))
		}
	}
	for _, t := range []string{labhookv1alpha1.ConditionStalled, labhookv1alpha1.ConditionDefaultConflict, labhookv1alpha1.ConditionBacklogged} {
		if c := meta.FindStatusCondition(w.conditions, t); c != nil && c.Status == metav1.ConditionTrue {
			add("%s: %s: %s", name, t, c.Message)
		}
	}
	return p
}

// attemptError describes a failed attempt.
func attemptError(status int32, err string) string {
	switch {
	case err != "" && status != 0 && !strings.Contains(err, strconv.Itoa(int(status))):
		return fmt.Sprintf("HTTP %d: %s", status, err)
	case err != "":
		return err
	case status != 0:
		return fmt.Sprintf("HTTP %d", status)
	}
	return "no attempt recorded"
}
