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
	"maps"
	"slices"
	"strings"

	"k8s.io/cli-runtime/pkg/printers"
)

// printOrg prints one organisation in detail: problems first, then its
// WebhookConfigs as a table, then its messages and lab objects.
func (c *cli) printOrg(o *orgStatus) error {
	now := c.Now()
	w := printers.GetNewTabWriter(c.Out)
	fmt.Fprintf(w, "Organisation %s: %s\n", o.Organisation, verdict(o))
	for _, p := range o.Problems {
		fmt.Fprintf(w, "  ! %s\n", cell(p))
	}
	fmt.Fprintln(w)
	if len(o.WebhookConfigs) > 0 {
		fmt.Fprintln(w, "WEBHOOKCONFIG\tDEFAULT\tSTATE\tREADY\tREASON\tLAST SUCCESS\tLAST FAILURE\tFAILURES\tPENDING\tOWED\tBACKLOGGED\tURL")
		for _, cs := range o.WebhookConfigs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n",
				cell(cs.Name), yesNo(cs.Default), cell(orDash(string(cs.State))), cell(string(cs.Ready)), cell(orDash(cs.Reason)),
				ago(now, cs.LastSuccess), ago(now, cs.LastFailure), cs.ConsecutiveFailures,
				cs.Pending, cs.Owed, yesNo(cs.Backlogged), cell(cs.URL))
		}
		fmt.Fprintln(w)
	}
	m := o.Messages
	fmt.Fprintf(w, "OUTGOING MESSAGES\t%d Pending%s, %d Failed, %d Delivered\n", m.Pending, cell(byReason(m.PendingByReason)), m.Failed, m.Delivered)
	if m.OldestPending != nil {
		op := m.OldestPending
		fmt.Fprintf(w, "OLDEST PENDING\t%s\n", cell(fmt.Sprintf("%s (%s %s, created %s, %d attempt(s)): %s", op.Name, op.Type,
			op.Status, ago(now, &op.Created), op.Attempts, orDash(op.Message))))
	}
	l := o.LabObjects
	fmt.Fprintf(w, "LAB OBJECTS\t%d LabResources, %d LabInterfaces, %d owe a message, %d whose last message Failed\n",
		l.LabResources, l.LabInterfaces, l.Owed, l.LastMessageFailed)
	fmt.Fprintf(w, "LAST DELIVERY\t%s\n", ago(now, o.LastDelivery))
	return w.Flush()
}

// printSummary prints one line per organisation, then the problems of
// those that have any.
func (c *cli) printSummary(rep *statusReport) error {
	now := c.Now()
	w := printers.GetNewTabWriter(c.Out)
	if len(rep.Organisations) == 0 {
		fmt.Fprintln(w, "No labhook objects in any namespace.")
		return w.Flush()
	}
	fmt.Fprintln(w, "ORGANISATION\tCONFIGS\tVALID\tPENDING\tFAILED\tOWED\tLAST DELIVERY\tSTATUS")
	for _, o := range rep.Organisations {
		valid := 0
		for _, cs := range o.WebhookConfigs {
			if cs.State == "valid" {
				valid++
			}
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", o.Organisation, len(o.WebhookConfigs), valid,
			o.Messages.Pending, o.Messages.Failed, o.LabObjects.Owed, ago(now, o.LastDelivery), verdict(o))
	}
	for _, o := range rep.Organisations {
		if len(o.Problems) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", o.Organisation)
		for _, p := range o.Problems {
			fmt.Fprintf(w, "  ! %s\n", cell(p))
		}
	}
	return w.Flush()
}

func verdict(o *orgStatus) string {
	switch n := len(o.Problems); n {
	case 0:
		return "ok"
	case 1:
		return "1 problem"
	default:
		return fmt.Sprintf("%d problems", n)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// byReason prints " (NoUsableWebhookConfig 40, Retrying 2)".
func byReason(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
