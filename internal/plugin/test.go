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
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// testResult is what `test --wait` prints.
type testResult struct {
	WebhookConfig string                             `json:"webhookConfig"`
	Namespace     string                             `json:"namespace"`
	Requested     string                             `json:"requested"`
	Handled       bool                               `json:"handled"`
	State         labhookv1alpha1.WebhookConfigState `json:"state"`
	Reason        string                             `json:"reason,omitempty"`
	Message       string                             `json:"message,omitempty"`
	LastTest      *labhookv1alpha1.WebhookConfigTest `json:"lastTest,omitempty"`
}

func (c *cli) testCommand() *cobra.Command {
	return c.configRequestCommand(&cobra.Command{
		Use:   "test whc/NAME",
		Short: "Send a WebhookConfig a new test message, and wait for its state",
		Long: `Ask labhook to send a WebhookConfig a new signed test message (the
labhook.io/test-requested-at annotation). With --wait, wait until the
manager has handled the request and print the state and the test's outcome;
the exit status is then non-zero unless the config is valid.`,
		Example: `  kubectl labhook test whc/main -n acme --wait`,
	}, false, c.runTest)
}

func (c *cli) runTest(ctx context.Context, name string, f requestFlags) error {
	r, err := c.request(ctx, name, labhookv1alpha1.AnnotationTestRequestedAt, f,
		func(w *labhookv1alpha1.WebhookConfig) error {
			if w.Spec.Deactivated {
				return fmt.Errorf("webhookconfig/%s in %s is deactivated (spec.deactivated: true): it is not tested; set spec.deactivated to false, which tests it", name, w.Namespace)
			}
			return nil
		},
		func(st *labhookv1alpha1.WebhookConfigStatus) string { return st.LastHandledTestRequest })
	if err != nil {
		return err
	}
	res := testResult{WebhookConfig: name, Namespace: r.namespace, Requested: r.value, Handled: r.handled}
	if f.wait {
		res.State, res.LastTest = r.whc.Status.State, r.whc.Status.LastTest
		if cond := meta.FindStatusCondition(r.whc.Status.Conditions, labhookv1alpha1.ConditionReady); cond != nil {
			res.Reason, res.Message = cond.Reason, cond.Message
		}
	}
	if f.output != "" {
		if err := printStructured(c.Out, f.output, res); err != nil {
			return err
		}
	} else {
		c.printTest(&res, f.wait)
	}
	switch {
	case !f.wait:
		return nil
	case !res.Handled:
		return fmt.Errorf("%w; state %s, %s: %s", notHandled(name, "test", f.timeout), orDash(string(res.State)), orDash(res.Reason), orDash(res.Message))
	case res.State != labhookv1alpha1.StateValid:
		return fmt.Errorf("webhookconfig/%s is %s", name, orDash(string(res.State)))
	}
	return nil
}

func (c *cli) printTest(res *testResult, wait bool) {
	if !wait {
		fmt.Fprintf(c.Out, "webhookconfig/%s test requested (%s=%s)\n", res.WebhookConfig, labhookv1alpha1.AnnotationTestRequestedAt, res.Requested)
		return
	}
	if !res.Handled {
		return
	}
	fmt.Fprintf(c.Out, "webhookconfig/%s: %s (%s)\n", res.WebhookConfig, cell(string(res.State)), cell(orDash(res.Reason)))
	if t := res.LastTest; t != nil {
		fmt.Fprintf(c.Out, "  test message %s: %s in %s\n", cell(t.MessageID), cell(attemptOutcome(t.HTTPStatus, t.Error)), t.Duration.Duration.Round(time.Millisecond))
	}
	if res.Message != "" && res.State != labhookv1alpha1.StateValid {
		fmt.Fprintf(c.Out, "  %s\n", cell(res.Message))
	}
}

// attemptOutcome describes an attempt that may have succeeded.
func attemptOutcome(status int32, err string) string {
	if err == "" && status >= 200 && status < 300 {
		return fmt.Sprintf("HTTP %d", status)
	}
	return attemptError(status, err)
}
