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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// rotateResult is what `rotate` prints.
type rotateResult struct {
	WebhookConfig string `json:"webhookConfig"`
	Namespace     string `json:"namespace"`
	Requested     string `json:"requested"`
	Handled       bool   `json:"handled"`
	// Secret is the Secret that holds the new signing secret (or key pair).
	Secret            string       `json:"secret,omitempty"`
	RotatedTime       *metav1.Time `json:"rotatedTime,omitempty"`
	PreviousExpiresAt *metav1.Time `json:"previousExpiresAt,omitempty"`
	// Refused says why labhook did not rotate (a secretRef the user owns).
	Refused string `json:"refused,omitempty"`
}

func (c *cli) rotateCommand() *cobra.Command {
	return c.configRequestCommand(&cobra.Command{
		Use:   "rotate whc/NAME",
		Short: "Rotate a WebhookConfig's signing secret (or key pair), and say when the old one stops signing",
		Long: `Ask labhook to rotate the signing secret (or Ed25519 key pair) it generated
for a WebhookConfig (the labhook.io/rotate-secret-requested-at annotation),
wait until the manager has done it, and print when the previous secret stops
being used (status.rotation.previousExpiresAt). Until then every message
carries a signature with each secret, so receivers can switch at their pace.

A secret named by spec.secretRef belongs to you: labhook refuses to rotate
it and says how to rotate it yourself; the exit status is then non-zero.`,
		Example: `  kubectl labhook rotate whc/main -n acme`,
	}, true, c.runRotate)
}

func (c *cli) runRotate(ctx context.Context, name string, f requestFlags) error {
	r, err := c.request(ctx, name, labhookv1alpha1.AnnotationRotateSecretRequestedAt, f,
		func(*labhookv1alpha1.WebhookConfig) error { return nil },
		func(st *labhookv1alpha1.WebhookConfigStatus) string { return st.LastHandledRotateRequest })
	if err != nil {
		return err
	}
	res := rotateResult{WebhookConfig: name, Namespace: r.namespace, Requested: r.value, Handled: r.handled}
	if r.handled {
		st := &r.whc.Status
		res.Secret = st.SecretName
		if st.Rotation != nil {
			res.RotatedTime, res.PreviousExpiresAt = &st.Rotation.RotatedTime, &st.Rotation.PreviousExpiresAt
		}
		if cond := meta.FindStatusCondition(st.Conditions, labhookv1alpha1.ConditionSecretRotation); cond != nil && cond.Status == metav1.ConditionFalse {
			res.Refused = cond.Message
		}
	}
	if f.output != "" {
		if err := printStructured(c.Out, f.output, res); err != nil {
			return err
		}
	} else {
		c.printRotate(&res, f.wait)
	}
	switch {
	case !f.wait:
		return nil
	case !res.Handled:
		return notHandled(name, "rotation", f.timeout)
	case res.Refused != "":
		return fmt.Errorf("webhookconfig/%s: rotation refused", name)
	}
	return nil
}

func (c *cli) printRotate(res *rotateResult, wait bool) {
	switch {
	case !wait:
		fmt.Fprintf(c.Out, "webhookconfig/%s rotation requested (%s=%s)\n", res.WebhookConfig, labhookv1alpha1.AnnotationRotateSecretRequestedAt, res.Requested)
	case res.Refused != "":
		fmt.Fprintf(c.Out, "webhookconfig/%s: %s\n", res.WebhookConfig, cell(res.Refused))
	case res.Handled:
		fmt.Fprintf(c.Out, "webhookconfig/%s: signing secret rotated (Secret %s)\n", res.WebhookConfig, cell(res.Secret))
		if res.PreviousExpiresAt != nil {
			fmt.Fprintf(c.Out, "  the previous secret also signs until %s (%s); give receivers the new one before then\n",
				res.PreviousExpiresAt.UTC().Format(time.RFC3339), ago(c.Now(), res.PreviousExpiresAt))
		}
	}
}
