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

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers"
)

const (
	testSecretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

func createSecret(ctx context.Context, ns, name string, data map[string]string) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
}

// createAuthorizationSecret creates a Secret opted in for use by
// authorizationSecretRef.
func createAuthorizationSecret(ctx context.Context, ns, name string, data map[string]string) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{labhookv1alpha1.LabelWebhookAuthorization: "true"}},
		StringData: data,
	}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
}

var _ = Describe("SigningSecrets and AuthorizationValue", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
	})

	whc := func(name string) *labhookv1alpha1.WebhookConfig {
		return &labhookv1alpha1.WebhookConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       labhookv1alpha1.WebhookConfigSpec{URL: "https://example.com/hook"},
		}
	}

	It("reads the generated <name>-signing Secret and adds previousSecret only during the rotation grace", func() {
		createSecret(ctx, ns, "gen-signing", map[string]string{"secret": testSecretB, "previousSecret": testSecretA})
		w := whc("gen")
		Expect(controllers.SigningSecrets(ctx, k8sClient, w)).To(Equal([]string{testSecretB}),
			"without status.rotation the previous secret is not used")

		w.Status.Rotation = &labhookv1alpha1.SecretRotation{
			RotatedTime:       metav1.Now(),
			PreviousExpiresAt: metav1.NewTime(time.Now().Add(time.Hour)),
		}
		Expect(controllers.SigningSecrets(ctx, k8sClient, w)).To(Equal([]string{testSecretB, testSecretA}))

		w.Status.Rotation.PreviousExpiresAt = metav1.NewTime(time.Now().Add(-time.Second))
		Expect(controllers.SigningSecrets(ctx, k8sClient, w)).To(Equal([]string{testSecretB}))
	})

	It("reads a user-provided secretRef, honouring its previousSecret while the user keeps it", func() {
		createSecret(ctx, ns, "mine", map[string]string{"secret": testSecretA + "\n", "previousSecret": testSecretB})
		w := whc("user")
		w.Spec.SecretRef = &labhookv1alpha1.LocalObjectReference{Name: "mine"}
		Expect(controllers.SigningSecrets(ctx, k8sClient, w)).To(Equal([]string{testSecretA, testSecretB}))
	})

	It("reports a missing Secret as NotFound and a bad one as ErrSecretUnusable, without the value", func() {
		_, err := controllers.SigningSecrets(ctx, k8sClient, whc("absent"))
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)

		createSecret(ctx, ns, "nokey-signing", map[string]string{"other": "x"})
		_, err = controllers.SigningSecrets(ctx, k8sClient, whc("nokey"))
		Expect(err).To(MatchError(controllers.ErrSecretUnusable))

		createSecret(ctx, ns, "bad-signing", map[string]string{"secret": "whsec_not base64 !!"})
		_, err = controllers.SigningSecrets(ctx, k8sClient, whc("bad"))
		Expect(err).To(MatchError(controllers.ErrSecretUnusable))
		Expect(err.Error()).NotTo(ContainSubstring("not base64 !!"))
	})

	It("returns the authorization value trimmed, or empty without a ref", func() {
		w := whc("auth")
		Expect(controllers.AuthorizationValue(ctx, k8sClient, w)).To(BeEmpty())

		createAuthorizationSecret(ctx, ns, "backend", map[string]string{"token": "user:key\n"})
		w.Spec.AuthorizationSecretRef = &labhookv1alpha1.SecretKeyReference{Name: "backend", Key: "token"}
		Expect(controllers.AuthorizationValue(ctx, k8sClient, w)).To(Equal("user:key"))

		w.Spec.AuthorizationSecretRef.Key = "missing"
		_, err := controllers.AuthorizationValue(ctx, k8sClient, w)
		Expect(err).To(MatchError(controllers.ErrSecretUnusable))

		w.Spec.AuthorizationSecretRef.Name = "gone"
		_, err = controllers.AuthorizationValue(ctx, k8sClient, w)
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
	})

	It("refuses a Secret without the authorization label, as ErrSecretNotOptedIn and ErrSecretUnusable, without the value", func() {
		createSecret(ctx, ns, "other", map[string]string{"token": "not-for-you"})
		w := whc("auth")
		w.Spec.AuthorizationSecretRef = &labhookv1alpha1.SecretKeyReference{Name: "other", Key: "token"}
		_, err := controllers.AuthorizationValue(ctx, k8sClient, w)
		Expect(err).To(MatchError(controllers.ErrSecretNotOptedIn))
		Expect(err).To(MatchError(controllers.ErrSecretUnusable))
		Expect(err.Error()).NotTo(ContainSubstring("not-for-you"))

		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wrong-value",
			Labels: map[string]string{labhookv1alpha1.LabelWebhookAuthorization: "yes"}}, StringData: map[string]string{"token": "x"}}
		Expect(k8sClient.Create(ctx, s)).To(Succeed())
		w.Spec.AuthorizationSecretRef.Name = "wrong-value"
		_, err = controllers.AuthorizationValue(ctx, k8sClient, w)
		Expect(err).To(MatchError(controllers.ErrSecretNotOptedIn), "only the value \"true\" opts in")
	})
})
