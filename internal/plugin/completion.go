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
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Shell completion asks the cluster for names, one page at most: a
// completion is a hint, not a listing.

// completeRefs completes the argument as "<short name>/NAME".
func (c *cli) completeRefs(k kindNames, names func(context.Context, client.Client, string) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		kc, err := c.kube()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ns, err := c.namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		list, err := names(cmd.Context(), kc, ns)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		out := make([]cobra.Completion, 0, len(list))
		for _, n := range list {
			out = append(out, k.names[0]+"/"+n)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func listWebhookConfigNames(ctx context.Context, kc client.Client, ns string) ([]string, error) {
	var l labhookv1alpha1.WebhookConfigList
	if err := kc.List(ctx, &l, client.InNamespace(ns), client.Limit(pageSize)); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Items))
	for _, w := range l.Items {
		out = append(out, w.Name)
	}
	return out, nil
}

// outgoingMessageNames offers the messages redeliver accepts: Delivered
// and Failed ones.
func listOutgoingMessageNames(ctx context.Context, kc client.Client, ns string) ([]string, error) {
	var l labhookv1alpha1.OutgoingMessageList
	if err := kc.List(ctx, &l, client.InNamespace(ns), client.Limit(pageSize)); err != nil {
		return nil, err
	}
	var out []string
	for _, om := range l.Items {
		if om.Status.Phase == labhookv1alpha1.MessageDelivered || om.Status.Phase == labhookv1alpha1.MessageFailed {
			out = append(out, om.Name)
		}
	}
	return out, nil
}

// completeConfigFlag completes --config with the WebhookConfigs of the
// organisation (--org when the command has it, else -n).
func (c *cli) completeConfigFlag(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	kc, err := c.kube()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	org := ""
	if f := cmd.Flags().Lookup("org"); f != nil {
		org = f.Value.String()
	}
	ns, err := c.org(org)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	names, err := listWebhookConfigNames(cmd.Context(), kc, ns)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeNamespaces completes -n and --org with namespace names.
func (c *cli) completeNamespaces(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	kc, err := c.kube()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var l corev1.NamespaceList
	if err := kc.List(cmd.Context(), &l, client.Limit(pageSize)); err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []cobra.Completion
	for _, n := range l.Items {
		if strings.HasPrefix(n.Name, prefix) {
			out = append(out, n.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
