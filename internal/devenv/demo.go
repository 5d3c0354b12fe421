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

package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Names of the demo organisation's objects.
const (
	DemoNamespace     = "demo"
	DemoAPIKeySecret  = "demo-api-key"
	DemoSigningSecret = "demo-signing"
	DemoWebhookConfig = "demo"
)

// demoOrg is what createDemo made; the API key is printed once and kept
// nowhere else outside the cluster.
type demoOrg struct {
	apiKey string
}

// createDemo makes the demo organisation: its namespace, an incoming API
// key, the signing Secret the receiver also holds, and a default
// WebhookConfig pointing at the receiver.
func createDemo(ctx context.Context, c client.Client, receiverURL, signingSecret string) (*demoOrg, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate API key: %w", err)
	}
	apiKey := hex.EncodeToString(raw)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DemoNamespace}},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: DemoAPIKeySecret, Namespace: DemoNamespace,
				Labels: map[string]string{labhookv1alpha1.LabelAPIKey: "true"},
			},
			StringData: map[string]string{labhookv1alpha1.SecretKeyAPIKey: apiKey},
		},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: DemoSigningSecret, Namespace: DemoNamespace},
			StringData: map[string]string{labhookv1alpha1.SecretKeySigning: signingSecret},
		},
		&labhookv1alpha1.WebhookConfig{
			ObjectMeta: metav1.ObjectMeta{Name: DemoWebhookConfig, Namespace: DemoNamespace},
			Spec: labhookv1alpha1.WebhookConfigSpec{
				URL:       receiverURL,
				Default:   true,
				SecretRef: &labhookv1alpha1.LocalObjectReference{Name: DemoSigningSecret},
			},
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("create demo %T %s: %w", o, o.GetName(), err)
		}
	}
	log.FromContext(ctx).Info("created the demo organisation", "namespace", DemoNamespace)
	return &demoOrg{apiKey: apiKey}, nil
}
