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

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
	"github.com/labhook/labhook/test/internal/recorder"
	"github.com/labhook/labhook/test/internal/stack"
)

// receiverFor starts a recording receiver and a WebhookConfig in ns named
// name that signs for it; not the default.
func receiverFor(ctx context.Context, ns, name string, deactivated bool) *recorder.Recorder {
	GinkgoHelper()
	secret, err := wire.GenerateSecret()
	Expect(err).NotTo(HaveOccurred())
	rec, err := recorder.Start(secret)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(rec.Close)
	Expect(cl.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-signing", Namespace: ns},
		StringData: map[string]string{labhookv1alpha1.SecretKeySigning: secret},
	})).To(Succeed())
	Expect(cl.Client.Create(ctx, &labhookv1alpha1.WebhookConfig{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: labhookv1alpha1.WebhookConfigSpec{URL: rec.URL, Deactivated: deactivated,
			SecretRef: &labhookv1alpha1.LocalObjectReference{Name: name + "-signing"}},
	})).To(Succeed())
	return rec
}

// keyFor creates an API-key Secret in ns whose key names config.
func keyFor(ctx context.Context, ns, config string) string {
	GinkgoHelper()
	key := "key-for-" + config + "-0123456789abcdef"
	Expect(cl.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "key-" + config, Namespace: ns,
			Labels:      map[string]string{labhookv1alpha1.LabelAPIKey: "true"},
			Annotations: map[string]string{labhookv1alpha1.AnnotationWebhookConfig: config}},
		StringData: map[string]string{labhookv1alpha1.SecretKeyAPIKey: key},
	})).To(Succeed())
	return ns + ":" + key
}

// createLab posts a message creating the VM id with the key auth, retrying
// while the webhookserver's cache does not have the key yet.
func createLab(base, auth, id string) {
	GinkgoHelper()
	body := []byte(`{"source_message_id": "m-` + id + `", "type": "RESOURCE", "action": "CREATED", "timestamp": "2026-01-01T10:00:00Z",
	  "data": {"resources": [{"id": "` + id + `", "type": "VM", "status": "READY", "name": "` + id + `"}]}}`)
	Eventually(func(g Gomega) {
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/webhooks/events/incoming", bytes.NewReader(body))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(b))
	}).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// restart asks for a restart of the resource id, as a person would: the
// webhookserver's own writes are the backend's and are not sent back to
// it, this is the first message about the resource that goes out.
func restart(ctx context.Context, ns, id string) {
	GinkgoHelper()
	// Once the manager recorded the backend's CREATED as its own (not
	// sent); a restart before that would make it a CREATED of its own.
	Eventually(func(g Gomega) {
		lr := &labhookv1alpha1.LabResource{}
		g.Expect(cl.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, lr)).To(Succeed())
		g.Expect(lr.Status.ObservedGeneration).To(Equal(lr.Generation))
	}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	patch := []byte(`{"spec":{"restartRequestedAt":"` + time.Now().UTC().Format(time.RFC3339) + `"}}`)
	Expect(cl.Client.Patch(ctx, &labhookv1alpha1.LabResource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: id}},
		client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// restartedAt tells whether rec received RESOURCE RESTARTED for id.
func restartedAt(rec *recorder.Recorder, id string) func() bool {
	return func() bool {
		for _, a := range rec.Arrivals() {
			if a.Message.Type == wire.TypeResource && a.Message.Status == wire.StatusRestarted &&
				len(a.Message.EntityIDs) == 1 && a.Message.EntityIDs[0] == id {
				return true
			}
		}
		return false
	}
}

// waiting returns the resource's lastMessage and the Ready condition of the
// OutgoingMessage that holds it, as kubectl get lr / kubectl get om show them.
func waiting(ctx context.Context, ns, id string) (*labhookv1alpha1.LastMessage, *metav1.Condition) {
	GinkgoHelper()
	lr := &labhookv1alpha1.LabResource{}
	Expect(cl.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, lr)).To(Succeed())
	if lr.Status.LastMessage == nil || lr.Status.LastMessage.OutgoingMessage == "" {
		return lr.Status.LastMessage, nil
	}
	om := &labhookv1alpha1.OutgoingMessage{}
	Expect(cl.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: lr.Status.LastMessage.OutgoingMessage}, om)).To(Succeed())
	return lr.Status.LastMessage, meta.FindStatusCondition(om.Status.Conditions, labhookv1alpha1.ConditionReady)
}

func waitsWith(ctx context.Context, ns, id, reason, msg string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		last, ready := waiting(ctx, ns, id)
		g.Expect(last).NotTo(BeNil())
		g.Expect(last.Phase).To(Equal(labhookv1alpha1.MessagePending))
		g.Expect(last.Status).To(Equal(wire.StatusRestarted))
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(reason))
		g.Expect(ready.Message).To(ContainSubstring(msg))
		// kubectl describe lr shows it too.
		var events corev1.EventList
		g.Expect(cl.Client.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		g.Expect(events.Items).To(ContainElement(And(
			HaveField("InvolvedObject.Kind", "LabResource"), HaveField("InvolvedObject.Name", id),
			HaveField("Type", corev1.EventTypeWarning), HaveField("Reason", reason),
			HaveField("Message", And(ContainSubstring("RESOURCE RESTARTED waits"), ContainSubstring(msg))))))
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func deliveredTo(ctx context.Context, rec *recorder.Recorder, ns, id string) {
	GinkgoHelper()
	if !rec.WaitFor(30*time.Second, restartedAt(rec, id)) {
		lr := &labhookv1alpha1.LabResource{}
		_ = cl.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, lr)
		Fail(fmt.Sprintf("RESOURCE RESTARTED %s should arrive; arrivals %+v; resource %+v %+v", id, rec.Arrivals(), lr.Spec, lr.Status))
	}
	Eventually(func() labhookv1alpha1.MessagePhase {
		last, _ := waiting(ctx, ns, id)
		if last == nil {
			return ""
		}
		return last.Phase
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Equal(labhookv1alpha1.MessageDelivered))
}

var _ = Describe("A webhook config per key", func() {
	It("delivers messages about objects written with a key to that key's config, waits visibly for a missing or deactivated one, and never reaches another organisation's", func(ctx SpecContext) {
		mgr, err := stack.Manager(binary("manager"), cl.Kubeconfig, logPath("perkey-manager"), "--probe-interval=1s")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { mgr.Stop(10 * time.Second) })
		ws, base, err := stack.WebhookServer(binary("webhookserver"), cl.Kubeconfig, logPath("perkey-webhookserver"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { ws.Stop(10 * time.Second) })

		def := newOutbox(ctx, "perkey")
		ns := def.ns
		emea := receiverFor(ctx, ns, "emea", false)
		off := receiverFor(ctx, ns, "off", true)
		def.waitValid(ctx)
		_, err = cl.EnsureValid(ctx, ns, "emea", 20*time.Second)
		Expect(err).NotTo(HaveOccurred())
		plain, err := cl.APIKey(ctx, ns, "plain-key-0123456789abcdef")
		Expect(err).NotTo(HaveOccurred())

		By("a key naming emea: its objects' messages go to emea's receiver, not the default's")
		createLab(base, keyFor(ctx, ns, "emea"), "r-emea")
		createLab(base, plain, "r-default")
		restart(ctx, ns, "r-emea")
		restart(ctx, ns, "r-default")
		deliveredTo(ctx, emea, ns, "r-emea")
		deliveredTo(ctx, def.rec, ns, "r-default")
		Expect(restartedAt(def.rec, "r-emea")()).To(BeFalse(), "the default receiver never hears of r-emea")
		Expect(restartedAt(emea, "r-default")()).To(BeFalse())

		By("a key naming a config that does not exist yet: accepted, and the message waits with the reason until it is created")
		createLab(base, keyFor(ctx, ns, "later"), "r-later")
		restart(ctx, ns, "r-later")
		waitsWith(ctx, ns, "r-later", labhookv1alpha1.ReasonNoUsableConfig, "WebhookConfig later not found")
		later := receiverFor(ctx, ns, "later", false)
		deliveredTo(ctx, later, ns, "r-later")

		By("a key naming a deactivated config: the message waits with the reason until it is active again")
		createLab(base, keyFor(ctx, ns, "off"), "r-off")
		restart(ctx, ns, "r-off")
		waitsWith(ctx, ns, "r-off", labhookv1alpha1.ReasonNoUsableConfig, "WebhookConfig off is deactivated, not valid")
		Expect(restartedAt(off, "r-off")()).To(BeFalse())
		whc := &labhookv1alpha1.WebhookConfig{}
		Expect(cl.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "off"}, whc)).To(Succeed())
		whc.Spec.Deactivated = false
		Expect(cl.Client.Update(ctx, whc)).To(Succeed())
		deliveredTo(ctx, off, ns, "r-off")

		By("a key naming a config that exists only in another organisation: it resolves in the key's own namespace, and waits")
		other := newNamespace(ctx, "perkey-other")
		theirs := receiverFor(ctx, other, "shared", false)
		_, err = cl.EnsureValid(ctx, other, "shared", 20*time.Second)
		Expect(err).NotTo(HaveOccurred())
		createLab(base, keyFor(ctx, ns, "shared"), "r-shared")
		restart(ctx, ns, "r-shared")
		waitsWith(ctx, ns, "r-shared", labhookv1alpha1.ReasonNoUsableConfig, "WebhookConfig shared not found")
		Consistently(func() bool { return restartedAt(theirs, "r-shared")() || restartedAt(def.rec, "r-shared")() }).
			WithTimeout(3*time.Second).WithPolling(200*time.Millisecond).Should(BeFalse(), "another organisation's receiver never hears of it")
		report("per-key configs: RESOURCE RESTARTED reached the key's config's receiver only; a missing and a deactivated config held it (Pending, %s) until created or reactivated; a name of another organisation's config never reached it",
			labhookv1alpha1.ReasonNoUsableConfig)
	}, SpecTimeout(4*time.Minute))
})
