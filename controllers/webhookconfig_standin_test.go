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

package controllers_test

// Stand-in until branch whc's WebhookConfig reconciler is merged: tests
// make a config valid by writing its signing Secret and status themselves.
// Delete this file after that merge; makeValid then waits for the real
// controller to test the receiver.

import (
	"context"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

func init() {
	makeValid = func(ctx context.Context, whc *labhookv1alpha1.WebhookConfig) {
		sec, err := wire.GenerateSecret()
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: whc.Namespace, Name: whc.Name + "-signing"},
			StringData: map[string]string{"secret": sec}})).To(Succeed())
		whc.Status.State = labhookv1alpha1.StateValid
		whc.Status.SecretName = whc.Name + "-signing"
		Expect(k8sClient.Status().Update(ctx, whc)).To(Succeed())
	}
}
