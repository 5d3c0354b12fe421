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
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// redelivered is one message `redeliver` asked to send again.
type redelivered struct {
	Name       string                       `json:"name"`
	Namespace  string                       `json:"namespace"`
	Type       string                       `json:"type"`
	Status     string                       `json:"status"`
	Phase      labhookv1alpha1.MessagePhase `json:"phase"`
	Target     string                       `json:"target,omitempty"`
	LastTry    *metav1.Time                 `json:"lastAttempt,omitempty"`
	LastResult string                       `json:"lastResult,omitempty"`
}

type redeliverResult struct {
	Requested string        `json:"requested"`
	DryRun    bool          `json:"dryRun,omitempty"`
	Messages  []redelivered `json:"messages"`
}

type redeliverFlags struct {
	failed bool
	config string
	since  time.Duration
	all    bool
	dryRun bool
	output string
}

func (c *cli) redeliverCommand() *cobra.Command {
	var f redeliverFlags
	cmd := &cobra.Command{
		Use:   "redeliver (om/NAME | --failed [--config NAME] [--since DURATION])",
		Short: "Send a Delivered or Failed OutgoingMessage again, or every Failed one in a scope",
		Long: `Ask labhook to deliver OutgoingMessages again (the
labhook.io/redeliver-requested-at annotation): their attempts start over,
with the same message_id, so receivers can deduplicate.

om/NAME names one Delivered or Failed message. --failed takes every Failed
message of the organisation (-n) or of all (-A), optionally only those for
one WebhookConfig (--config) or whose last attempt was within --since.
A Pending message is already being delivered and is refused.`,
		Example: `  kubectl labhook redeliver om/5f0c2a... -n acme
  kubectl labhook redeliver --failed -n acme --config main --since 2h
  kubectl labhook redeliver --failed -A --dry-run`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: c.completeRefs(outgoingMessageNames, listOutgoingMessageNames),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			switch {
			case len(args) == 1 && (f.failed || f.config != "" || f.since != 0 || f.all):
				return errors.New("name one message (om/NAME) or use --failed, not both")
			case len(args) == 0 && !f.failed:
				return errors.New("name a message (om/NAME) or use --failed")
			case f.since < 0:
				return fmt.Errorf("--since %s: must be positive", f.since)
			}
			if len(args) == 1 {
				name, err := parseRef(args[0], outgoingMessageNames)
				if err != nil {
					return err
				}
				return c.redeliverOne(cmd.Context(), name, f)
			}
			return c.redeliverFailed(cmd.Context(), f)
		},
	}
	cmd.Flags().BoolVar(&f.failed, "failed", false, "every Failed message in the scope")
	cmd.Flags().StringVar(&f.config, "config", "", "with --failed: only messages for this WebhookConfig")
	cmd.Flags().DurationVar(&f.since, "since", 0, "with --failed: only messages whose last attempt is at most this old (e.g. 1h)")
	cmd.Flags().BoolVarP(&f.all, "all-namespaces", "A", false, "with --failed: every organisation")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would be redelivered, change nothing")
	addOutputFlag(cmd, &f.output)
	_ = cmd.RegisterFlagCompletionFunc("config", c.completeConfigFlag)
	return cmd
}

func (c *cli) redeliverOne(ctx context.Context, name string, f redeliverFlags) error {
	kc, err := c.kube()
	if err != nil {
		return err
	}
	ns, err := c.namespace()
	if err != nil {
		return err
	}
	om := &labhookv1alpha1.OutgoingMessage{}
	if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, om); err != nil {
		return fmt.Errorf("outgoingmessage/%s in %s: %w", name, ns, err)
	}
	if p := om.Status.Phase; p != labhookv1alpha1.MessageDelivered && p != labhookv1alpha1.MessageFailed {
		next := ""
		if om.Status.NextAttemptTime != nil {
			next = ", next attempt " + ago(c.Now(), om.Status.NextAttemptTime)
		}
		return fmt.Errorf("outgoingmessage/%s is %s%s: it is being delivered already; redeliver sends Delivered or Failed messages again",
			name, orDash(string(p)), next)
	}
	return c.redeliver(ctx, kc, []labhookv1alpha1.OutgoingMessage{*om}, f)
}

func (c *cli) redeliverFailed(ctx context.Context, f redeliverFlags) error {
	kc, err := c.kube()
	if err != nil {
		return err
	}
	ns := ""
	if !f.all {
		if ns, err = c.namespace(); err != nil {
			return err
		}
	}
	now := c.Now()
	var picked []labhookv1alpha1.OutgoingMessage
	var list labhookv1alpha1.OutgoingMessageList
	if err := eachPage(ctx, kc, &list, ns, func() {
		for _, om := range list.Items {
			if om.Status.Phase != labhookv1alpha1.MessageFailed {
				continue
			}
			if f.config != "" && om.Status.Target != f.config &&
				(om.Spec.WebhookConfigRef == nil || om.Spec.WebhookConfigRef.Name != f.config) {
				continue
			}
			if f.since > 0 && lastTry(&om).Time.Before(now.Add(-f.since)) {
				continue
			}
			picked = append(picked, om)
		}
	}); err != nil {
		return fmt.Errorf("list OutgoingMessages: %w", err)
	}
	return c.redeliver(ctx, kc, picked, f)
}

// lastTry is when a message was last attempted, or created.
func lastTry(om *labhookv1alpha1.OutgoingMessage) *metav1.Time {
	if om.Status.LastAttempt != nil {
		return &om.Status.LastAttempt.Time
	}
	return &om.CreationTimestamp
}

// redeliver annotates every message with one request value, and prints
// what it did. It stops at the first failure and says how far it got.
func (c *cli) redeliver(ctx context.Context, kc client.Client, oms []labhookv1alpha1.OutgoingMessage, f redeliverFlags) error {
	res := redeliverResult{Requested: requestValue(c.Now()), DryRun: f.dryRun, Messages: []redelivered{}}
	for i := range oms {
		om := &oms[i]
		if !f.dryRun {
			if err := annotate(ctx, kc, om, labhookv1alpha1.AnnotationRedeliverRequestedAt, res.Requested); err != nil {
				_ = c.printRedelivered(&res, f.output)
				return fmt.Errorf("redeliver outgoingmessage/%s in %s (after %d done): %w", om.Name, om.Namespace, len(res.Messages), err)
			}
		}
		r := redelivered{Name: om.Name, Namespace: om.Namespace, Type: string(om.Spec.Type), Status: om.Spec.Status,
			Phase: om.Status.Phase, Target: om.Status.Target, LastTry: lastTry(om)}
		if a := om.Status.LastAttempt; a != nil {
			r.LastResult = attemptOutcome(a.HTTPStatus, a.Error)
		}
		res.Messages = append(res.Messages, r)
	}
	return c.printRedelivered(&res, f.output)
}

func (c *cli) printRedelivered(res *redeliverResult, output string) error {
	if output != "" {
		return printStructured(c.Out, output, res)
	}
	if len(res.Messages) == 0 {
		fmt.Fprintln(c.Out, "No Failed OutgoingMessages match.")
		return nil
	}
	verb := "redelivery requested"
	if res.DryRun {
		verb = "would be redelivered (dry run)"
	}
	w := printers.GetNewTabWriter(c.Out)
	fmt.Fprintln(w, "NAMESPACE\tOUTGOINGMESSAGE\tTYPE\tSTATUS\tWAS\tTARGET\tLAST ATTEMPT\tLAST RESULT")
	for _, m := range res.Messages {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Namespace, m.Name, m.Type, cell(m.Status), cell(string(m.Phase)),
			cell(orDash(m.Target)), ago(c.Now(), m.LastTry), cell(orDash(m.LastResult)))
	}
	fmt.Fprintf(w, "%d message(s) %s.\n", len(res.Messages), verb)
	return w.Flush()
}
