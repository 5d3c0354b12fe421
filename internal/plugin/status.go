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
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// pageSize bounds what one list request returns, so status holds one page
// of objects at a time however many an organisation has.
const pageSize = 500

// statusReport is what `status` prints: one entry per organisation.
type statusReport struct {
	Organisations []*orgStatus `json:"organisations"`
}

// orgStatus is one organisation's delivery state, and what is wrong with it.
type orgStatus struct {
	Organisation string `json:"organisation"`
	// Problems are what stops or delays its messages, most important first,
	// each with what to do. Empty when all is well.
	Problems       []string       `json:"problems"`
	WebhookConfigs []configStatus `json:"webhookConfigs"`
	Messages       messageCounts  `json:"outgoingMessages"`
	LabObjects     labCounts      `json:"labObjects"`
	// LastDelivery is the newest delivery seen on a WebhookConfig, an
	// OutgoingMessage or a lab object's lastMessage.
	LastDelivery *metav1.Time `json:"lastDelivery,omitempty"`
}

// configStatus is one WebhookConfig as status shows it.
type configStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Default is true for the namespace default: spec.default without a
	// DefaultConflict.
	Default             bool                               `json:"default"`
	State               labhookv1alpha1.WebhookConfigState `json:"state"`
	Ready               metav1.ConditionStatus             `json:"ready"`
	Reason              string                             `json:"reason,omitempty"`
	Message             string                             `json:"message,omitempty"`
	LastSuccess         *metav1.Time                       `json:"lastSuccess,omitempty"`
	LastFailure         *metav1.Time                       `json:"lastFailure,omitempty"`
	LastError           string                             `json:"lastError,omitempty"`
	ConsecutiveFailures int32                              `json:"consecutiveFailures,omitempty"`
	Pending             int32                              `json:"pending"`
	Owed                int32                              `json:"owed"`
	Backlogged          bool                               `json:"backlogged"`
	LastTest            *labhookv1alpha1.WebhookConfigTest `json:"lastTest,omitempty"`
	NextTestTime        *metav1.Time                       `json:"nextTestTime,omitempty"`

	conditions []metav1.Condition
	deactivate bool
	created    metav1.Time
}

// messageCounts sums up an organisation's OutgoingMessages.
type messageCounts struct {
	Pending   int `json:"pending"`
	Failed    int `json:"failed"`
	Delivered int `json:"delivered"`
	// PendingByReason counts Pending messages by their Ready reason
	// (NoUsableWebhookConfig, WaitingForEarlierMessage, Retrying, ...).
	PendingByReason map[string]int `json:"pendingByReason,omitempty"`
	// OldestPendingByReason is the oldest Pending message of each reason.
	OldestPendingByReason map[string]*messageRef `json:"oldestPendingByReason,omitempty"`
	OldestPending         *messageRef            `json:"oldestPending,omitempty"`
	NewestFailed          *messageRef            `json:"newestFailed,omitempty"`
}

// messageRef is one OutgoingMessage, as an example of many.
type messageRef struct {
	Name    string      `json:"name"`
	Type    string      `json:"type"`
	Status  string      `json:"status"`
	Target  string      `json:"target,omitempty"`
	Created metav1.Time `json:"created"`
	Reason  string      `json:"reason,omitempty"`
	Message string      `json:"message,omitempty"`
	// LastError and LastHTTPStatus are of the last attempt.
	LastError      string `json:"lastError,omitempty"`
	LastHTTPStatus int32  `json:"lastHTTPStatus,omitempty"`
	Attempts       int32  `json:"attempts,omitempty"`
}

// labCounts sums up an organisation's LabResources and LabInterfaces.
type labCounts struct {
	LabResources  int `json:"labResources"`
	LabInterfaces int `json:"labInterfaces"`
	// Owed counts lab objects whose status is behind their spec: their
	// message is not produced yet.
	Owed int `json:"owed"`
	// LastMessageFailed counts lab objects whose last message Failed.
	LastMessageFailed int `json:"lastMessageFailed"`
}

func (c *cli) statusCommand() *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each organisation's WebhookConfigs, messages and what stops them",
		Long: `Show an organisation's delivery state: its WebhookConfigs and their states
with reasons, Pending and Failed OutgoingMessages, lab objects that owe a
message, the last delivery, and what stops or delays its messages with what
to do about it. -A shows every organisation (a summary table, then problems).

Exit status 0 whatever the state: read the problems, or -o json's
organisations[].problems.`,
		Example: `  kubectl labhook status -n acme
  kubectl labhook status -A
  kubectl labhook status -n acme -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ns := ""
			if !all {
				var err error
				if ns, err = c.namespace(); err != nil {
					return err
				}
			}
			rep, err := c.collectStatus(cmd.Context(), ns)
			if err != nil {
				return err
			}
			if output != "" {
				return printStructured(c.Out, output, rep)
			}
			if all {
				return c.printSummary(rep)
			}
			return c.printOrg(rep.Organisations[0])
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every organisation (namespace)")
	addOutputFlag(cmd, &output)
	return cmd
}

// collectStatus reads the organisation ns, or every organisation when ns is
// empty, one page at a time, keeping counts and one example of each kind
// of trouble rather than the objects.
func (c *cli) collectStatus(ctx context.Context, ns string) (*statusReport, error) {
	kc, err := c.kube()
	if err != nil {
		return nil, err
	}
	orgs := map[string]*orgStatus{}
	org := func(name string) *orgStatus {
		o, ok := orgs[name]
		if !ok {
			o = &orgStatus{Organisation: name, Problems: []string{}, WebhookConfigs: []configStatus{}}
			orgs[name] = o
		}
		return o
	}
	if ns != "" {
		org(ns)
	}

	var whcs labhookv1alpha1.WebhookConfigList
	if err := eachPage(ctx, kc, &whcs, ns, func() {
		for i := range whcs.Items {
			o := org(whcs.Items[i].Namespace)
			cs := newConfigStatus(&whcs.Items[i])
			o.WebhookConfigs = append(o.WebhookConfigs, cs)
			o.LastDelivery = newest(o.LastDelivery, cs.LastSuccess)
		}
	}); err != nil {
		return nil, fmt.Errorf("list WebhookConfigs: %w", err)
	}

	var oms labhookv1alpha1.OutgoingMessageList
	if err := eachPage(ctx, kc, &oms, ns, func() {
		for i := range oms.Items {
			o := org(oms.Items[i].Namespace)
			o.Messages.add(&oms.Items[i])
			o.LastDelivery = newest(o.LastDelivery, oms.Items[i].Status.DeliveredTime)
		}
	}); err != nil {
		return nil, fmt.Errorf("list OutgoingMessages: %w", err)
	}

	var lrs labhookv1alpha1.LabResourceList
	if err := eachPage(ctx, kc, &lrs, ns, func() {
		for i := range lrs.Items {
			r := &lrs.Items[i]
			o := org(r.Namespace)
			o.LabObjects.LabResources++
			o.addLab(r.Generation, r.Status.ObservedGeneration, r.Status.LastMessage)
		}
	}); err != nil {
		return nil, fmt.Errorf("list LabResources: %w", err)
	}

	var lis labhookv1alpha1.LabInterfaceList
	if err := eachPage(ctx, kc, &lis, ns, func() {
		for i := range lis.Items {
			li := &lis.Items[i]
			o := org(li.Namespace)
			o.LabObjects.LabInterfaces++
			o.addLab(li.Generation, li.Status.ObservedGeneration, li.Status.LastMessage)
		}
	}); err != nil {
		return nil, fmt.Errorf("list LabInterfaces: %w", err)
	}

	rep := &statusReport{}
	for _, name := range slices.Sorted(maps.Keys(orgs)) {
		o := orgs[name]
		slices.SortFunc(o.WebhookConfigs, func(a, b configStatus) int {
			if a.Default != b.Default {
				if a.Default {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Name, b.Name)
		})
		o.Problems = diagnose(o, c.Now())
		rep.Organisations = append(rep.Organisations, o)
	}
	return rep, nil
}

// eachPage lists list in pages of pageSize, calling page after each.
func eachPage(ctx context.Context, c client.Client, list client.ObjectList, ns string, page func()) error {
	opts := []client.ListOption{client.Limit(pageSize)}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	for cont := ""; ; {
		if err := c.List(ctx, list, append(opts, client.Continue(cont))...); err != nil {
			return err
		}
		page()
		if cont = list.GetContinue(); cont == "" {
			return nil
		}
	}
}

func newConfigStatus(w *labhookv1alpha1.WebhookConfig) configStatus {
	cs := configStatus{
		Name: w.Name, URL: w.Spec.URL, State: w.Status.State, Ready: metav1.ConditionUnknown,
		Default:      w.Spec.Default && !meta.IsStatusConditionTrue(w.Status.Conditions, labhookv1alpha1.ConditionDefaultConflict),
		Backlogged:   meta.IsStatusConditionTrue(w.Status.Conditions, labhookv1alpha1.ConditionBacklogged),
		LastTest:     w.Status.LastTest,
		NextTestTime: w.Status.NextTestTime,
		conditions:   w.Status.Conditions,
		deactivate:   w.Spec.Deactivated,
		created:      w.CreationTimestamp,
	}
	if r := meta.FindStatusCondition(w.Status.Conditions, labhookv1alpha1.ConditionReady); r != nil {
		cs.Ready, cs.Reason, cs.Message = r.Status, r.Reason, r.Message
	}
	if d := w.Status.Deliveries; d != nil {
		cs.LastSuccess, cs.LastFailure, cs.LastError = d.LastSuccessTime, d.LastFailureTime, d.LastError
		cs.ConsecutiveFailures, cs.Pending, cs.Owed = d.ConsecutiveFailures, d.Pending, d.Owed
	}
	return cs
}

func (m *messageCounts) add(om *labhookv1alpha1.OutgoingMessage) {
	switch om.Status.Phase {
	case labhookv1alpha1.MessageDelivered:
		m.Delivered++
	case labhookv1alpha1.MessageFailed:
		m.Failed++
		if m.NewestFailed == nil || m.NewestFailed.Created.Before(&om.CreationTimestamp) {
			m.NewestFailed = newMessageRef(om)
		}
	default: // Pending, or not reconciled yet
		m.Pending++
		ref := newMessageRef(om)
		reason := orDash(ref.Reason)
		if m.PendingByReason == nil {
			m.PendingByReason, m.OldestPendingByReason = map[string]int{}, map[string]*messageRef{}
		}
		m.PendingByReason[reason]++
		if old := m.OldestPendingByReason[reason]; old == nil || om.CreationTimestamp.Before(&old.Created) {
			m.OldestPendingByReason[reason] = ref
		}
		if m.OldestPending == nil || om.CreationTimestamp.Before(&m.OldestPending.Created) {
			m.OldestPending = ref
		}
	}
}

func newMessageRef(om *labhookv1alpha1.OutgoingMessage) *messageRef {
	r := &messageRef{
		Name: om.Name, Type: string(om.Spec.Type), Status: om.Spec.Status, Target: om.Status.Target,
		Created: om.CreationTimestamp, Attempts: om.Status.Attempts,
	}
	if c := meta.FindStatusCondition(om.Status.Conditions, labhookv1alpha1.ConditionReady); c != nil {
		r.Reason, r.Message = c.Reason, c.Message
	}
	if a := om.Status.LastAttempt; a != nil {
		r.LastError, r.LastHTTPStatus = a.Error, a.HTTPStatus
	}
	return r
}

func (o *orgStatus) addLab(generation, observed int64, last *labhookv1alpha1.LastMessage) {
	if observed < generation {
		o.LabObjects.Owed++
	}
	if last == nil {
		return
	}
	switch last.Phase {
	case labhookv1alpha1.MessageFailed:
		o.LabObjects.LastMessageFailed++
	case labhookv1alpha1.MessageDelivered:
		o.LastDelivery = newest(o.LastDelivery, last.Time)
	}
}

func newest(a, b *metav1.Time) *metav1.Time {
	if b == nil || b.IsZero() || (a != nil && !a.Before(b)) {
		return a
	}
	return b
}

// newConfigGrace is how long a new WebhookConfig may wait for its first
// test before status suspects the manager is not running.
const newConfigGrace = 2 * time.Minute
