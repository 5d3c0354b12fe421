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
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// apiKeyBytes is the entropy of a generated API key.
const apiKeyBytes = 32

// apiKeyGenerateName prefixes the name of an API-key Secret created
// without --name.
const apiKeyGenerateName = "labhook-api-key-"

// createdKey is what `keys create` prints: the only time the key is shown.
type createdKey struct {
	Organisation  string `json:"organisation"`
	Secret        string `json:"secret"`
	WebhookConfig string `json:"webhookConfig,omitempty"`
	APIKey        string `json:"apiKey"`
	// Authorization is the header value a backend sends.
	Authorization string `json:"authorization"`
}

func (c *cli) keysCommand() *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Manage the API keys organisations' backends send incoming messages with",
	}
	var org, config, name, output string
	create := &cobra.Command{
		Use:   "create --org ORG [--config NAME]",
		Short: "Create an API key for an organisation, stored only as its SHA-256, and print it once",
		Long: `Create an API key for an organisation's backend: a random key, kept in a
Secret labelled labhook.io/api-key: "true" that holds only the key's SHA-256
(apiKeySHA256), so the key itself is stored nowhere. The key is printed once;
give it to the backend, which sends "Authorization: Bearer ORG:KEY".

--config names the WebhookConfig that objects written through this key
refer to (the labhook.io/webhook-config annotation on the Secret), so the
messages about them go there instead of to the organisation's default.
Several keys may be live at once: create the new one, switch the backend,
then delete the old Secret.`,
		Example: `  kubectl labhook keys create --org acme
  kubectl labhook keys create --org acme --config emea --name acme-emea-key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return c.createKey(cmd.Context(), org, config, name, output)
		},
	}
	create.Flags().StringVar(&org, "org", "", "the organisation (namespace); default: the -n namespace")
	create.Flags().StringVar(&config, "config", "", "the WebhookConfig objects written through this key refer to")
	create.Flags().StringVar(&name, "name", "", "the Secret's name (default: "+apiKeyGenerateName+"<random>)")
	addOutputFlag(create, &output)
	_ = create.RegisterFlagCompletionFunc("org", c.completeNamespaces)
	_ = create.RegisterFlagCompletionFunc("config", c.completeConfigFlag)
	keys.AddCommand(create)
	return keys
}

func (c *cli) createKey(ctx context.Context, orgFlag, config, name, output string) error {
	if name != "" {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return fmt.Errorf("--name %q: %v", name, errs)
		}
	}
	ns, err := c.org(orgFlag)
	if err != nil {
		return err
	}
	kc, err := c.kube()
	if err != nil {
		return err
	}
	if config != "" {
		var whc labhookv1alpha1.WebhookConfig
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: config}, &whc); err != nil {
			return fmt.Errorf("--config %s: webhookconfig/%s in %s: %w", config, config, ns, err)
		}
	}
	raw := make([]byte, apiKeyBytes)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("generate API key: %w", err)
	}
	key := hex.EncodeToString(raw)
	sum := sha256.Sum256([]byte(key))
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Labels:    map[string]string{labhookv1alpha1.LabelAPIKey: "true"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{labhookv1alpha1.SecretKeyAPIKeySHA256: []byte(hex.EncodeToString(sum[:]))},
	}
	if name != "" {
		sec.Name = name
	} else {
		sec.GenerateName = apiKeyGenerateName
	}
	if config != "" {
		sec.Annotations = map[string]string{labhookv1alpha1.AnnotationWebhookConfig: config}
	}
	if err := kc.Create(ctx, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("organisation %s: namespace not found", ns)
		}
		return fmt.Errorf("create the API-key Secret in %s: %w", ns, err)
	}
	res := createdKey{Organisation: ns, Secret: sec.Name, WebhookConfig: config, APIKey: key,
		Authorization: "Bearer " + ns + ":" + key}
	if output != "" {
		return printStructured(c.Out, output, res)
	}
	fmt.Fprintf(c.Out, "secret/%s created in %s (it holds only the key's SHA-256)\n", res.Secret, ns)
	if config != "" {
		fmt.Fprintf(c.Out, "objects written through this key refer to webhookconfig/%s\n", config)
	}
	fmt.Fprintf(c.Out, "\nAPI key (shown this once; it is stored nowhere):\n  %s\n\nThe backend sends:\n  Authorization: %s\n", key, res.Authorization)
	return nil
}
