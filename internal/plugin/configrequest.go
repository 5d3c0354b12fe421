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
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// requestFlags are the flags of a command that asks the manager for
// something on one WebhookConfig (test, rotate).
type requestFlags struct {
	wait    bool
	timeout time.Duration
	output  string
}

// configRequestCommand completes cmd into a command on one WebhookConfig
// argument with --wait, --timeout and -o; run gets the config's name.
func (c *cli) configRequestCommand(cmd *cobra.Command, waitByDefault bool, run func(context.Context, string, requestFlags) error) *cobra.Command {
	var f requestFlags
	cmd.Args = cobra.ExactArgs(1)
	cmd.ValidArgsFunction = c.completeRefs(webhookConfigNames, listWebhookConfigNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(f.output); err != nil {
			return err
		}
		name, err := parseRef(args[0], webhookConfigNames)
		if err != nil {
			return err
		}
		return run(cmd.Context(), name, f)
	}
	cmd.Flags().BoolVar(&f.wait, "wait", waitByDefault, "wait until the labhook manager has handled the request")
	cmd.Flags().DurationVar(&f.timeout, "timeout", time.Minute, "how long --wait waits")
	addOutputFlag(cmd, &f.output)
	return cmd
}

// configRequest is one request made through an annotation on a WebhookConfig.
type configRequest struct {
	kc        client.WithWatch
	namespace string
	// value is the annotation's new value; the manager records it in
	// status once handled.
	value string
	// whc is the config as last seen.
	whc *labhookv1alpha1.WebhookConfig
	// handled says the manager recorded value within the timeout.
	handled bool
}

// request reads webhookconfig/name in the -n namespace, lets check refuse
// the request, sets annotation to a new value, and with f.wait waits until
// handledValue (the status field where the manager records it) equals it.
// A timeout is not an error: r.handled says.
func (c *cli) request(ctx context.Context, name, annotation string, f requestFlags,
	check func(*labhookv1alpha1.WebhookConfig) error,
	handledValue func(*labhookv1alpha1.WebhookConfigStatus) string) (*configRequest, error) {
	kc, err := c.kube()
	if err != nil {
		return nil, err
	}
	ns, err := c.namespace()
	if err != nil {
		return nil, err
	}
	r := &configRequest{kc: kc, namespace: ns, value: requestValue(c.Now()), whc: &labhookv1alpha1.WebhookConfig{}}
	if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, r.whc); err != nil {
		return nil, fmt.Errorf("webhookconfig/%s in %s: %w", name, ns, err)
	}
	if err := check(r.whc); err != nil {
		return nil, err
	}
	if err := annotate(ctx, kc, r.whc, annotation, r.value); err != nil {
		return nil, fmt.Errorf("webhookconfig/%s: set %s: %w", name, annotation, err)
	}
	if !f.wait {
		return r, nil
	}
	r.whc, err = waitFor(ctx, kc, r.whc, &labhookv1alpha1.WebhookConfigList{}, f.timeout, func(w *labhookv1alpha1.WebhookConfig) bool {
		return handledValue(&w.Status) == r.value
	})
	if err != nil && !errors.Is(err, errWaitTimeout) {
		return nil, fmt.Errorf("wait for webhookconfig/%s: %w", name, err)
	}
	r.handled = err == nil
	return r, nil
}

// notHandled is the error of a request nobody handled in time.
func notHandled(name, what string, timeout time.Duration) error {
	return fmt.Errorf("webhookconfig/%s: the %s was not handled within %s (is the labhook manager running?)", name, what, timeout)
}
