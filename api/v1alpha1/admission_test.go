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

package v1alpha1_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

const samplesDir = "../../config/samples"

// object renders a labhook object of kind with the given spec, written as
// YAML at column 0, the way a person would write it for kubectl apply.
func object(kind, spec string) string {
	var b strings.Builder
	b.WriteString("apiVersion: labhook.io/v1alpha1\nkind: " + kind + "\nspec:\n")
	for _, line := range strings.Split(strings.TrimSpace(spec), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

// fromYAML decodes one YAML object without the Go types in between, so a
// test can send what the typed client never would (zero values, unknown
// enum values, missing fields).
func fromYAML(doc string) *unstructured.Unstructured {
	m := map[string]any{}
	Expect(yaml.Unmarshal([]byte(doc), &m)).To(Succeed(), doc)
	return &unstructured.Unstructured{Object: m}
}

// Valid objects the bad ones below start from.
const (
	goodWebhookConfig = `url: https://training.example.com/webhooks/events`
	goodVM            = `
id: 25f377ac
type: VM
name: server`
	goodURL = `
id: acf1109b
type: URL
config:
  address: https://my.webpage.com:3131`
	goodInterface = `
name: Server
type: TERMINAL
region: us-east-1
resourceRef: {name: 25f377ac}`
	goodMessage = `
type: EVENT
status: STARTED
entityIDs: [daf24556]`
)

// badObject is an object the API server must refuse: either create (when
// update and status are empty) or, after create succeeded, the update to
// update, or the write of status (YAML at column 0) through the status
// subresource.
type badObject struct {
	create string
	update string
	status string
	want   string
}

// long is a string of n characters, one more than a bound when n is the
// bound plus one.
func long(n int) string { return strings.Repeat("a", n) }

// items renders a flow-style YAML list of n copies of item.
func items(n int, item string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+", ", n), ", ") + "]"
}

// numbered renders a flow-style YAML list of n distinct strings.
func numbered(n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("e%d", i)
	}
	return "[" + strings.Join(l, ", ") + "]"
}

// keys renders a flow-style YAML map with n distinct keys.
func keys(n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("k%d: %d", i, i)
	}
	return "{" + strings.Join(l, ", ") + "}"
}

// conditions renders n distinct conditions for a status.
func conditions(n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("{type: T%d, status: 'True', reason: R, message: m, lastTransitionTime: '2026-11-25T06:00:00Z'}", i)
	}
	return "conditions: [" + strings.Join(l, ", ") + "]"
}

// sentence joins words as "A, B or C", the way the catalogue's CEL
// messages list statuses.
func sentence(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// catalogueMessage is the admission message for a status that type t does
// not take.
func catalogueMessage(e wire.CatalogueEntry) string {
	return "status must be " + sentence(e.Statuses) + " for type " + e.Type
}

var _ = Describe("Admission", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
	})

	It("accepts every sample in config/samples", func(ctx SpecContext) {
		decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
		files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		created := map[string]int{}
		for _, file := range files {
			f, err := os.Open(file)
			Expect(err).NotTo(HaveOccurred())
			reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
			for {
				doc, err := reader.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				Expect(err).NotTo(HaveOccurred(), file)
				if len(bytes.TrimSpace(doc)) == 0 {
					continue
				}
				// Strict decoding: a field the Go types do not know is a
				// mistake in the sample, not something to drop silently.
				obj, gvk, err := decoder.Decode(doc, nil, nil)
				Expect(err).NotTo(HaveOccurred(), "%s:\n%s", file, doc)
				o := obj.(client.Object)
				o.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, o)).To(Succeed(), "%s %s from %s", gvk.Kind, o.GetName(), file)
				created[gvk.Kind]++
			}
			Expect(f.Close()).To(Succeed())
		}
		// The seeds' examples: one receiver (and one signing with ed25519), 4
		// resources, 5 interfaces with 2 credential Secrets, seed 001's
		// message, an API key naming its own WebhookConfig (seed 002); and
		// the organisation's ResourceQuota, which they fit in.
		Expect(created).To(Equal(map[string]int{
			"WebhookConfig": 2, "LabResource": 4, "LabInterface": 5, "Secret": 3, "OutgoingMessage": 1,
			"ResourceQuota": 1,
		}))
	})

	DescribeTable("refuses a bad object with a message a person understands",
		func(ctx SpecContext, c badObject) {
			obj := fromYAML(c.create)
			obj.SetNamespace(ns)
			obj.SetGenerateName("bad-")
			err := k8sClient.Create(ctx, obj)
			switch {
			case c.update != "":
				Expect(err).NotTo(HaveOccurred(), "the object before the bad update must be valid")
				upd := fromYAML(c.update)
				upd.SetNamespace(ns)
				upd.SetName(obj.GetName())
				upd.SetResourceVersion(obj.GetResourceVersion())
				err = k8sClient.Update(ctx, upd)
			case c.status != "":
				Expect(err).NotTo(HaveOccurred(), "the object before the bad status must be valid")
				st := map[string]any{}
				Expect(yaml.Unmarshal([]byte(c.status), &st)).To(Succeed(), c.status)
				obj.Object["status"] = st
				err = k8sClient.Status().Update(ctx, obj)
			}
			Expect(err).To(HaveOccurred(), "the API server accepted it")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
			Expect(err.Error()).To(ContainSubstring(c.want))
			GinkgoWriter.Println("refused:", err.Error())
		},

		// WebhookConfig
		Entry("WebhookConfig url with another scheme",
			badObject{create: object("WebhookConfig", `url: ftp://training.example.com/events`),
				want: `spec.url: Invalid value: "ftp://training.example.com/events": url must start with https:// or http://`}),
		Entry("WebhookConfig url without a host",
			badObject{create: object("WebhookConfig", `url: https://`),
				want: "url must be an absolute URL with a host, like https://example.com/webhooks"}),
		Entry("WebhookConfig url that is not a URL",
			badObject{create: object("WebhookConfig", `url: "https://exa mple.com/%zz"`),
				want: "url must be an absolute URL with a host, like https://example.com/webhooks"}),
		Entry("WebhookConfig url over 2048 characters",
			badObject{create: object("WebhookConfig", "url: https://example.com/"+strings.Repeat("a", 2030)),
				want: "spec.url: Too long: may not be more than 2048 bytes"}),
		Entry("WebhookConfig without url",
			badObject{create: object("WebhookConfig", `default: true`),
				want: `spec.url: Required value`}),
		Entry("WebhookConfig eventTypes outside the catalogue",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\neventTypes: [EVENT, ALERT]"),
				want: `spec.eventTypes[1]: Unsupported value: "ALERT": supported values: "CLASS", "EVENT", "EVENT_WORKSPACE", "ONDEMAND_COURSE", "ONDEMAND_ENROLLMENT", "RESOURCE", "INTERFACE", "WEBHOOK_CONFIG"`}),
		Entry("WebhookConfig timeoutSeconds of 0",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\ntimeoutSeconds: 0"),
				want: "spec.timeoutSeconds: Invalid value: 0: spec.timeoutSeconds in body should be greater than or equal to 1"}),
		Entry("WebhookConfig timeoutSeconds over 60",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\ntimeoutSeconds: 61"),
				want: "spec.timeoutSeconds: Invalid value: 61: spec.timeoutSeconds in body should be less than or equal to 60"}),
		Entry("WebhookConfig retry.maxAttempts of 0",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nretry: {maxAttempts: 0}"),
				want: "spec.retry.maxAttempts in body should be greater than or equal to 1"}),
		Entry("WebhookConfig retry.maxAge that is not a duration",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nretry: {maxAge: one day}"),
				want: `spec.retry.maxAge in body should match`}),
		Entry("WebhookConfig retry.maxAge in days, which Go durations do not have",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nretry: {maxAge: 1d}"),
				want: `spec.retry.maxAge in body should match`}),
		Entry("WebhookConfig retry.maxAge over 720h",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nretry: {maxAge: 721h}"),
				want: `maxAge must be between 1s and 720h`}),
		Entry("WebhookConfig signing and authorization in one Secret",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nsecretRef: {name: s}\nauthorizationSecretRef: {name: s, key: token}"),
				want: "secretRef and authorizationSecretRef must name different Secrets"}),
		Entry("WebhookConfig secretRef.name over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nsecretRef: {name: "+long(254)+"}"),
				want: "spec.secretRef.name: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig authorizationSecretRef.name over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nauthorizationSecretRef: {name: "+long(254)+", key: token}"),
				want: "spec.authorizationSecretRef.name: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig authorizationSecretRef.key over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nauthorizationSecretRef: {name: a, key: "+long(254)+"}"),
				want: "spec.authorizationSecretRef.key: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig authorizationSecretRef.key that no Secret can have",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nauthorizationSecretRef: {name: a, key: 'to ken'}"),
				want: "spec.authorizationSecretRef.key in body should match"}),
		Entry("WebhookConfig with more than 16 eventTypes",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\neventTypes: "+items(17, "EVENT")),
				want: "spec.eventTypes: Too many: 17: must have at most 16 items"}),
		Entry("WebhookConfig retry.maxAge over 32 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig+"\nretry: {maxAge: "+strings.Repeat("1s", 17)+"}"),
				want: "spec.retry.maxAge: Too long: may not be more than 32 bytes"}),
		Entry("WebhookConfig status.secretName over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "secretName: " + long(254),
				want: "status.secretName: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig status.publicKey over 256 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "publicKey: " + long(257),
				want: "status.publicKey: Too long: may not be more than 256 bytes"}),
		Entry("WebhookConfig status.testedFingerprint over 64 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "testedFingerprint: " + long(65),
				want: "status.testedFingerprint: Too long: may not be more than 64 bytes"}),
		Entry("WebhookConfig status.lastHandledTestRequest over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "lastHandledTestRequest: " + long(254),
				want: "status.lastHandledTestRequest: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig status.lastHandledRotateRequest over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "lastHandledRotateRequest: " + long(254),
				want: "status.lastHandledRotateRequest: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig status.lastTest.messageID over 253 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "lastTest: {time: '2026-11-25T06:00:00Z', messageID: " + long(254) + "}",
				want: "status.lastTest.messageID: Too long: may not be more than 253 bytes"}),
		Entry("WebhookConfig status.lastTest.error over 32768 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "lastTest: {time: '2026-11-25T06:00:00Z', messageID: m, error: " + long(32769) + "}",
				want: "status.lastTest.error: Too long: may not be more than 32768 bytes"}),
		Entry("WebhookConfig status.lastTest.duration in days, which Go durations do not have",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "lastTest: {time: '2026-11-25T06:00:00Z', messageID: m, duration: 1d}",
				want: `status.lastTest.duration: Invalid value: "1d": lastTest.duration in body should match`}),
		Entry("WebhookConfig status.deliveries.lastError over 32768 characters",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: "deliveries: {lastError: " + long(32769) + "}",
				want: "status.deliveries.lastError: Too long: may not be more than 32768 bytes"}),
		Entry("WebhookConfig with more than 16 conditions",
			badObject{create: object("WebhookConfig", goodWebhookConfig), status: conditions(17),
				want: "status.conditions: Too many: 17: must have at most 16 items"}),

		// LabResource
		Entry("LabResource with an unknown type",
			badObject{create: object("LabResource", "id: a1\ntype: VMX"),
				want: `spec.type: Unsupported value: "VMX": supported values: "VM", "URL"`}),
		Entry("LabResource with an empty id",
			badObject{create: object("LabResource", `id: ""`+"\ntype: VM"),
				want: "spec.id: Invalid value: \"\": spec.id in body should be at least 1 chars long"}),
		Entry("LabResource whose id changes",
			badObject{create: object("LabResource", goodVM), update: object("LabResource", "id: 25f377ad\ntype: VM\nname: server"),
				want: `spec.id: Invalid value: "25f377ad": id is immutable`}),
		Entry("LabResource whose type changes",
			badObject{create: object("LabResource", goodVM), update: object("LabResource", "id: 25f377ac\ntype: URL\nconfig: {address: https://my.webpage.com}"),
				want: `spec.type: Invalid value: "URL": type is immutable`}),
		Entry("LabResource of type URL without an address",
			badObject{create: object("LabResource", "id: acf1109b\ntype: URL"),
				want: "config.address is required when type is URL"}),
		Entry("LabResource of type URL with network interfaces",
			badObject{create: object("LabResource", goodURL+"\n  networkInterfaces: [{publicIP: 32.17.144.2}]"),
				want: "config.networkInterfaces is only allowed when type is VM"}),
		Entry("LabResource of type VM with an address",
			badObject{create: object("LabResource", goodVM+"\nconfig: {address: https://my.webpage.com}"),
				want: "config.address is only allowed when type is URL"}),
		Entry("LabResource address that is not an http(s) URL",
			badObject{create: object("LabResource", "id: acf1109b\ntype: URL\nconfig: {address: ftp://my.webpage.com}"),
				want: "address must be an absolute http:// or https:// URL"}),
		Entry("LabResource publicIP that is not an IP address",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: [{publicIP: 32.17.144}]}"),
				want: "publicIP must be an IPv4 or IPv6 address"}),
		Entry("LabResource privateIP that is not an IP address",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: [{privateIP: 10.0.0.256}]}"),
				want: "privateIP must be an IPv4 or IPv6 address"}),
		Entry("LabResource dns that is not a host name",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: [{dns: 'labs_1.example.com!'}]}"),
				want: "dns must be a host name such as labs.example.com"}),
		Entry("LabResource whose restartRequestedAt is removed",
			badObject{create: object("LabResource", goodVM+"\nrestartRequestedAt: '2026-11-25T06:00:00Z'"), update: object("LabResource", goodVM),
				want: "restartRequestedAt cannot be removed once set; set a new time to restart again"}),
		Entry("LabResource whose replaceRequestedAt is removed",
			badObject{create: object("LabResource", goodVM+"\nreplaceRequestedAt: '2026-11-25T06:00:00Z'"), update: object("LabResource", goodVM),
				want: "replaceRequestedAt cannot be removed once set; set a new time to replace again"}),
		Entry("LabResource id over 253 characters",
			badObject{create: object("LabResource", "id: "+long(254)+"\ntype: VM"),
				want: "spec.id: Too long: may not be more than 253 bytes"}),
		Entry("LabResource name over 253 characters",
			badObject{create: object("LabResource", goodVM+long(254)),
				want: "spec.name: Too long: may not be more than 253 bytes"}),
		Entry("LabResource with more than 16 networkInterfaces",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: "+items(17, "{publicIP: 32.17.144.2}")+"}"),
				want: "spec.config.networkInterfaces: Too many: 17: must have at most 16 items"}),
		Entry("LabResource publicIP over 45 characters",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: [{publicIP: "+long(46)+"}]}"),
				want: "spec.config.networkInterfaces[0].publicIP: Too long: may not be more than 45 bytes"}),
		Entry("LabResource privateIP over 45 characters",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: [{privateIP: "+long(46)+"}]}"),
				want: "spec.config.networkInterfaces[0].privateIP: Too long: may not be more than 45 bytes"}),
		Entry("LabResource dns over 253 characters",
			badObject{create: object("LabResource", goodVM+"\nconfig: {networkInterfaces: [{dns: "+long(254)+"}]}"),
				want: "spec.config.networkInterfaces[0].dns: Too long: may not be more than 253 bytes"}),
		Entry("LabResource address over 2048 characters",
			badObject{create: object("LabResource", "id: acf1109b\ntype: URL\nconfig: {address: https://example.com/"+long(2030)+"}"),
				want: "spec.config.address: Too long: may not be more than 2048 bytes"}),
		Entry("LabResource config.extra with more than 64 keys",
			badObject{create: object("LabResource", goodVM+"\nconfig: {extra: "+keys(65)+"}"),
				want: "spec.config.extra: Too many: 65: must have at most 64 items"}),
		Entry("LabResource webhookConfigRef.name over 253 characters",
			badObject{create: object("LabResource", goodVM+"\nwebhookConfigRef: {name: "+long(254)+"}"),
				want: "spec.webhookConfigRef.name: Too long: may not be more than 253 bytes"}),
		Entry("LabResource restartRequestedAt with a lower-case t, which Go's time decoder refuses",
			badObject{create: object("LabResource", goodVM+"\nrestartRequestedAt: '2026-11-25t06:00:00Z'"),
				want: "spec.restartRequestedAt in body should match"}),
		Entry("LabResource restartRequestedAt with a lower-case z",
			badObject{create: object("LabResource", goodVM+"\nrestartRequestedAt: '2026-11-25T06:00:00z'"),
				want: "spec.restartRequestedAt in body should match"}),
		Entry("LabResource restartRequestedAt with an offset without a colon",
			badObject{create: object("LabResource", goodVM+"\nrestartRequestedAt: '2026-11-25T06:00:00+0000'"),
				want: "spec.restartRequestedAt in body must be of type date-time"}),
		Entry("LabResource replaceRequestedAt with a lower-case t",
			badObject{create: object("LabResource", goodVM+"\nreplaceRequestedAt: '2026-11-25t06:00:00Z'"),
				want: "spec.replaceRequestedAt in body should match"}),
		Entry("LabResource replaceRequestedAt over 64 characters",
			badObject{create: object("LabResource", goodVM+"\nreplaceRequestedAt: '2026-11-25T06:00:00."+strings.Repeat("0", 50)+"Z'"),
				want: "spec.replaceRequestedAt: Too long: may not be more than 64 bytes"}),
		Entry("LabResource status.lastSourceMessageID over 253 characters",
			badObject{create: object("LabResource", goodVM), status: "lastSourceMessageID: " + long(254),
				want: "status.lastSourceMessageID: Too long: may not be more than 253 bytes"}),
		Entry("LabResource status.lastMessage.id over 253 characters",
			badObject{create: object("LabResource", goodVM), status: "lastMessage: {id: " + long(254) + ", type: RESOURCE, status: CREATED}",
				want: "status.lastMessage.id: Too long: may not be more than 253 bytes"}),
		Entry("LabResource with more than 16 conditions",
			badObject{create: object("LabResource", goodVM), status: conditions(17),
				want: "status.conditions: Too many: 17: must have at most 16 items"}),

		// LabInterface
		Entry("LabInterface with an unknown type",
			badObject{create: object("LabInterface", "name: Server\ntype: SSH\nregion: us-east-1\nresourceRef: {name: a1}"),
				want: `spec.type: Unsupported value: "SSH": supported values: "TERMINAL", "DESKTOP", "WEB_PAGE"`}),
		Entry("LabInterface region that is not a region code",
			badObject{create: object("LabInterface", "name: Server\ntype: TERMINAL\nregion: US East\nresourceRef: {name: a1}"),
				want: "region must be a cloud region code such as us-east-1 or eu-north-1"}),
		Entry("LabInterface port 0",
			badObject{create: object("LabInterface", goodInterface+"\nconfig: {port: 0}"),
				want: "spec.config.port: Invalid value: 0: spec.config.port in body should be greater than or equal to 1"}),
		Entry("LabInterface port over 65535",
			badObject{create: object("LabInterface", goodInterface+"\nconfig: {port: 65536}"),
				want: "spec.config.port: Invalid value: 65536: spec.config.port in body should be less than or equal to 65535"}),
		Entry("LabInterface WEB_PAGE with authentication",
			badObject{create: object("LabInterface", "name: Hosted Service\ntype: WEB_PAGE\nregion: eu-north-1\nresourceRef: {name: acf1109b}\nconfig: {authentication: {type: keypair, secretRef: {name: k}}}"),
				want: "config.authentication is only allowed for TERMINAL and DESKTOP interfaces"}),
		Entry("LabInterface with an unknown authentication type",
			badObject{create: object("LabInterface", goodInterface+"\nconfig: {authentication: {type: password, secretRef: {name: k}}}"),
				want: `spec.config.authentication.type: Unsupported value: "password": supported values: "keypair", "generated_username_password"`}),
		Entry("LabInterface whose resourceRef changes",
			badObject{create: object("LabInterface", goodInterface), update: object("LabInterface", "name: Server\ntype: TERMINAL\nregion: us-east-1\nresourceRef: {name: 56ea830e}"),
				want: "resourceRef is immutable"}),
		Entry("LabInterface name over 253 characters",
			badObject{create: object("LabInterface", "name: "+long(254)+"\ntype: TERMINAL\nregion: us-east-1\nresourceRef: {name: a1}"),
				want: "spec.name: Too long: may not be more than 253 bytes"}),
		Entry("LabInterface region over 32 characters",
			badObject{create: object("LabInterface", "name: Server\ntype: TERMINAL\nregion: us-"+strings.Repeat("east", 8)+"-1\nresourceRef: {name: a1}"),
				want: "spec.region: Too long: may not be more than 32 bytes"}),
		Entry("LabInterface resourceRef.name over 253 characters",
			badObject{create: object("LabInterface", "name: Server\ntype: TERMINAL\nregion: us-east-1\nresourceRef: {name: "+long(254)+"}"),
				want: "spec.resourceRef.name: Too long: may not be more than 253 bytes"}),
		Entry("LabInterface authentication secretRef.name over 253 characters",
			badObject{create: object("LabInterface", goodInterface+"\nconfig: {authentication: {type: keypair, secretRef: {name: "+long(254)+"}}}"),
				want: "spec.config.authentication.secretRef.name: Too long: may not be more than 253 bytes"}),
		Entry("LabInterface config.extra with more than 64 keys",
			badObject{create: object("LabInterface", goodInterface+"\nconfig: {extra: "+keys(65)+"}"),
				want: "spec.config.extra: Too many: 65: must have at most 64 items"}),
		Entry("LabInterface webhookConfigRef.name over 253 characters",
			badObject{create: object("LabInterface", goodInterface+"\nwebhookConfigRef: {name: "+long(254)+"}"),
				want: "spec.webhookConfigRef.name: Too long: may not be more than 253 bytes"}),
		Entry("LabInterface status.endpoint over 4096 characters",
			badObject{create: object("LabInterface", goodInterface), status: "endpoint: " + long(4097),
				want: "status.endpoint: Too long: may not be more than 4096 bytes"}),
		Entry("LabInterface status.resourceID over 253 characters",
			badObject{create: object("LabInterface", goodInterface), status: "resourceID: " + long(254),
				want: "status.resourceID: Too long: may not be more than 253 bytes"}),
		Entry("LabInterface with more than 16 conditions",
			badObject{create: object("LabInterface", goodInterface), status: conditions(17),
				want: "status.conditions: Too many: 17: must have at most 16 items"}),

		// OutgoingMessage
		Entry("OutgoingMessage with a status its type does not take",
			badObject{create: object("OutgoingMessage", "type: EVENT\nstatus: CREATED\nentityIDs: [daf24556]"),
				want: "spec: Invalid value: status must be STARTED, ENDED or EXTENDED for type EVENT"}),
		Entry("OutgoingMessage with a type outside the catalogue",
			badObject{create: object("OutgoingMessage", "type: ALERT\nstatus: CREATED\nentityIDs: [daf24556]"),
				want: `spec.type: Unsupported value: "ALERT"`}),
		Entry("OutgoingMessage without entityIDs",
			badObject{create: object("OutgoingMessage", "type: EVENT\nstatus: STARTED\nentityIDs: []"),
				want: "spec.entityIDs: Invalid value: 0: spec.entityIDs in body should have at least 1 items"}),
		Entry("OutgoingMessage with an empty entity id",
			badObject{create: object("OutgoingMessage", "type: EVENT\nstatus: STARTED\nentityIDs: ['']"),
				want: "spec.entityIDs[0] in body should be at least 1 chars long"}),
		Entry("OutgoingMessage whose spec changes",
			badObject{create: object("OutgoingMessage", goodMessage), update: object("OutgoingMessage", "type: EVENT\nstatus: ENDED\nentityIDs: [daf24556]"),
				want: "spec is immutable: create a new OutgoingMessage instead"}),
		Entry("OutgoingMessage status over 64 characters",
			badObject{create: object("OutgoingMessage", "type: EVENT\nstatus: "+long(65)+"\nentityIDs: [daf24556]"),
				want: "spec.status: Too long: may not be more than 64 bytes"}),
		Entry("OutgoingMessage with more than 1000 entityIDs",
			badObject{create: object("OutgoingMessage", "type: EVENT\nstatus: STARTED\nentityIDs: "+numbered(1001)),
				want: "spec.entityIDs: Too many: 1001: must have at most 1000 items"}),
		Entry("OutgoingMessage entity id over 253 characters",
			badObject{create: object("OutgoingMessage", "type: EVENT\nstatus: STARTED\nentityIDs: ["+long(254)+"]"),
				want: "spec.entityIDs[0]: Too long: may not be more than 253 bytes"}),
		Entry("OutgoingMessage context with more than 64 keys",
			badObject{create: object("OutgoingMessage", goodMessage+"\ncontext: "+keys(65)),
				want: "spec.context: Too many: 65: must have at most 64 items"}),
		Entry("OutgoingMessage webhookConfigRef.name over 253 characters",
			badObject{create: object("OutgoingMessage", goodMessage+"\nwebhookConfigRef: {name: "+long(254)+"}"),
				want: "spec.webhookConfigRef.name: Too long: may not be more than 253 bytes"}),
		Entry("OutgoingMessage status.target over 253 characters",
			badObject{create: object("OutgoingMessage", goodMessage), status: "target: " + long(254),
				want: "status.target: Too long: may not be more than 253 bytes"}),
		Entry("OutgoingMessage status.lastAttempt.error over 32768 characters",
			badObject{create: object("OutgoingMessage", goodMessage), status: "lastAttempt: {time: '2026-11-25T06:00:00Z', error: " + long(32769) + "}",
				want: "status.lastAttempt.error: Too long: may not be more than 32768 bytes"}),
		Entry("OutgoingMessage status.lastAttempt.duration in days",
			badObject{create: object("OutgoingMessage", goodMessage), status: "lastAttempt: {time: '2026-11-25T06:00:00Z', duration: 1d}",
				want: `status.lastAttempt.duration: Invalid value: "1d": lastAttempt.duration in body should match`}),
		Entry("OutgoingMessage with more than 20 attempts in history",
			badObject{create: object("OutgoingMessage", goodMessage), status: "history: " + items(21, "{time: '2026-11-25T06:00:00Z'}"),
				want: "status.history: Too many: 21: must have at most 20 items"}),
		Entry("OutgoingMessage status.lastHandledRedeliverRequest over 253 characters",
			badObject{create: object("OutgoingMessage", goodMessage), status: "lastHandledRedeliverRequest: " + long(254),
				want: "status.lastHandledRedeliverRequest: Too long: may not be more than 253 bytes"}),
		Entry("OutgoingMessage with more than 20 reply objects",
			badObject{create: object("OutgoingMessage", goodMessage), status: "replies: {count: 1, objects: " + items(21, "{kind: LabResource, name: a}") + "}",
				want: "status.replies.objects: Too many: 21: must have at most 20 items"}),
		Entry("OutgoingMessage with more than 16 conditions",
			badObject{create: object("OutgoingMessage", goodMessage), status: conditions(17),
				want: "status.conditions: Too many: 17: must have at most 16 items"}),
	)

	It("runs every Pod of config/ under the restricted Pod Security Standard", func(ctx SpecContext) {
		decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
		decode := func(file string) []runtime.Object {
			f, err := os.Open(file)
			Expect(err).NotTo(HaveOccurred())
			defer f.Close()
			var objs []runtime.Object
			reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
			for {
				doc, err := reader.Read()
				if errors.Is(err, io.EOF) {
					return objs
				}
				Expect(err).NotTo(HaveOccurred(), file)
				if obj, _, err := decoder.Decode(doc, nil, nil); err == nil {
					objs = append(objs, obj)
				}
			}
		}

		// labhook's namespace as config/default declares it: restricted, enforced.
		var labhookNS *corev1.Namespace
		for _, o := range decode("../../config/default/namespace.yaml") {
			labhookNS = o.(*corev1.Namespace)
		}
		Expect(labhookNS).NotTo(BeNil())
		Expect(labhookNS.Labels).To(HaveKeyWithValue("pod-security.kubernetes.io/enforce", "restricted"))
		labhookNS.Name, labhookNS.GenerateName = "", "labhook-system-"
		Expect(k8sClient.Create(ctx, labhookNS)).To(Succeed())

		// The control: a Pod without a securityContext is refused there, so
		// the API server does enforce the standard.
		bare := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: labhookNS.Name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "labhook"}}},
		}
		err := k8sClient.Create(ctx, bare, client.DryRunAll)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a bare Pod was not refused: %v", err)
		Expect(err.Error()).To(ContainSubstring(`violates PodSecurity "restricted:latest"`))

		var deployments int
		Expect(filepath.WalkDir("../../config", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
				return err
			}
			for _, o := range decode(path) {
				dep, ok := o.(*appsv1.Deployment)
				if !ok {
					continue
				}
				deployments++
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: dep.Name, Namespace: labhookNS.Name, Labels: dep.Spec.Template.Labels},
					Spec:       dep.Spec.Template.Spec,
				}
				Expect(k8sClient.Create(ctx, pod, client.DryRunAll)).To(Succeed(), "the Pod of Deployment %s in %s", dep.Name, path)
			}
			return nil
		})).To(Succeed())
		// The manager with its sidecar, the standalone webhookserver, and a
		// shard's manager (config/components/sharding).
		Expect(deployments).To(Equal(3))
	})

	It("accepts an OutgoingMessage iff wire.ValidStatus accepts its type and status", func(ctx SpecContext) {
		var statuses []string
		seen := map[string]bool{}
		for _, e := range wire.Catalogue {
			for _, s := range e.Statuses {
				if !seen[s] {
					seen[s] = true
					statuses = append(statuses, s)
				}
			}
		}
		for _, e := range wire.Catalogue {
			for _, s := range statuses {
				om := &labhookv1alpha1.OutgoingMessage{
					ObjectMeta: metav1.ObjectMeta{GenerateName: "catalogue-", Namespace: ns},
					Spec: labhookv1alpha1.OutgoingMessageSpec{
						Type: labhookv1alpha1.MessageType(e.Type), Status: s, EntityIDs: []string{"daf24556"},
					},
				}
				err := k8sClient.Create(ctx, om)
				if wire.ValidStatus(e.Type, s) {
					Expect(err).NotTo(HaveOccurred(), "%s %s is in wire.Catalogue but the CRD refuses it", e.Type, s)
					continue
				}
				Expect(err).To(HaveOccurred(), "%s %s is not in wire.Catalogue but the CRD accepts it", e.Type, s)
				Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s %s: %v", e.Type, s, err)
				Expect(err.Error()).To(ContainSubstring(catalogueMessage(e)))
			}
		}
	})

	It("offers exactly wire.Catalogue's types, for messages and for WebhookConfig eventTypes", func(ctx SpecContext) {
		var want []string
		for _, e := range wire.Catalogue {
			want = append(want, e.Type)
		}
		enum := func(crdName string, path ...string) []string {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
			props := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			for _, p := range path {
				if p == "[]" {
					props = *props.Items.Schema
					continue
				}
				props = props.Properties[p]
			}
			var got []string
			for _, v := range props.Enum {
				var s string
				Expect(yaml.Unmarshal(v.Raw, &s)).To(Succeed())
				got = append(got, s)
			}
			return got
		}
		Expect(enum("outgoingmessages.labhook.io", "type")).To(Equal(want))
		Expect(enum("webhookconfigs.labhook.io", "eventTypes", "[]")).To(Equal(want))
	})
})

// unbounded lists every string without maxLength or enum, every list
// without maxItems and every free-form map without maxProperties under s.
// Times written by labhook into status (format date-time, which fixes their
// shape) are the one exception; times in spec carry a maxLength too.
func unbounded(s apiextensionsv1.JSONSchemaProps, path string) []string {
	var out []string
	switch s.Type {
	case "string":
		statusTime := s.Format == "date-time" && strings.HasPrefix(path, ".status")
		if s.MaxLength == nil && len(s.Enum) == 0 && !statusTime {
			out = append(out, path+" (string)")
		}
	case "array":
		if s.MaxItems == nil {
			out = append(out, path+" (list)")
		}
		if s.Items != nil && s.Items.Schema != nil {
			out = append(out, unbounded(*s.Items.Schema, path+"[]")...)
		}
	case "object":
		free := s.AdditionalProperties != nil || (s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields)
		if free && s.MaxProperties == nil {
			out = append(out, path+" (map)")
		}
		for name, p := range s.Properties {
			if path == "" && (name == "metadata" || name == "apiVersion" || name == "kind") {
				continue // bounded by the API server itself
			}
			out = append(out, unbounded(p, path+"."+name)...)
		}
	}
	return out
}

var _ = Describe("Bounds", func() {
	It("gives every string, list and map of the four CRDs a maximum", func(ctx SpecContext) {
		var crds apiextensionsv1.CustomResourceDefinitionList
		Expect(k8sClient.List(ctx, &crds)).To(Succeed())
		var found int
		for _, crd := range crds.Items {
			if crd.Spec.Group != labhookv1alpha1.GroupVersion.Group {
				continue
			}
			found++
			for _, v := range crd.Spec.Versions {
				Expect(unbounded(*v.Schema.OpenAPIV3Schema, "")).To(BeEmpty(), "%s %s", crd.Name, v.Name)
			}
		}
		Expect(found).To(Equal(4))
	})

	Context("with config/default's admission policies installed", Ordered, func() {
		var ns string
		BeforeAll(func(ctx SpecContext) {
			ns = newNamespace(ctx)
			decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
			b, err := os.ReadFile("../../config/default/admission_policy.yaml")
			Expect(err).NotTo(HaveOccurred())
			reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
			var installed int
			for {
				doc, err := reader.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				Expect(err).NotTo(HaveOccurred())
				obj, _, err := decoder.Decode(doc, nil, nil)
				Expect(err).NotTo(HaveOccurred(), string(doc))
				Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, obj.(client.Object)))).To(Succeed())
				installed++
			}
			Expect(installed).To(Equal(6), "three policies, each with its binding")
		})

		// sized renders a free-form JSON object that CEL prints in about n
		// bytes: one key holding a string of n-10 characters.
		sized := func(n int) string { return "{blob: " + long(n-10) + "}" }

		DescribeTable("refuses an oversized free-form field, naming it and the limit",
			func(ctx SpecContext, kind, spec, want string) {
				obj := fromYAML(object(kind, spec))
				obj.SetNamespace(ns)
				obj.SetGenerateName("big-")
				// A policy takes effect a moment after it is created.
				Eventually(func(g Gomega) {
					err := k8sClient.Create(ctx, obj.DeepCopy())
					g.Expect(err).To(HaveOccurred(), "the API server accepted it")
					g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
					g.Expect(err.Error()).To(ContainSubstring(want))
					GinkgoWriter.Println("refused:", err.Error())
				}).Should(Succeed())
			},
			Entry("LabResource config.extra over 16 KiB", "LabResource", goodVM+"\nconfig: {extra: "+sized(17000)+"}",
				"bytes; at most 16384 (16 KiB) are allowed"),
			Entry("LabInterface config.extra over 16 KiB", "LabInterface", goodInterface+"\nconfig: {extra: "+sized(17000)+"}",
				"bytes; at most 16384 (16 KiB) are allowed"),
			Entry("LabResource config.extra of 1 MiB", "LabResource", goodVM+"\nconfig: {extra: "+sized(1<<20)+"}",
				"spec.config.extra is"),
			Entry("OutgoingMessage context over 64 KiB", "OutgoingMessage", goodMessage+"\ncontext: "+sized(66000),
				"bytes; at most 65536 (64 KiB) are allowed"),
		)

		DescribeTable("refuses oversized metadata on labhook objects, naming it and the limit",
			func(ctx SpecContext, kind, spec string, mutate func(*unstructured.Unstructured), want string) {
				obj := fromYAML(object(kind, spec))
				obj.SetNamespace(ns)
				obj.SetGenerateName("meta-")
				mutate(obj)
				Eventually(func(g Gomega) {
					err := k8sClient.Create(ctx, obj.DeepCopy())
					g.Expect(err).To(HaveOccurred(), "the API server accepted it")
					g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 Invalid, got %v", err)
					g.Expect(err.Error()).To(ContainSubstring(want))
				}).Should(Succeed())
			},
			Entry("WebhookConfig annotations over 64 KiB", "WebhookConfig", goodWebhookConfig,
				func(o *unstructured.Unstructured) { o.SetAnnotations(map[string]string{"note": long(70000)}) },
				"bytes; at most 65536 (64 KiB) are allowed on labhook objects"),
			Entry("LabResource with more than 64 labels", "LabResource", goodVM,
				func(o *unstructured.Unstructured) {
					l := map[string]string{}
					for i := range 65 {
						l[fmt.Sprintf("l%d", i)] = "v"
					}
					o.SetLabels(l)
				},
				"metadata.labels has 65 labels; at most 64 are allowed on labhook objects"),
		)

		It("accepts free-form fields within the limits, nested as the backend sent them", func(ctx SpecContext) {
			nested := "{flavour: {cpu: 2, disks: [{size: 10}, {size: 20}]}, note: " + long(15000) + "}"
			for kind, spec := range map[string]string{
				"LabResource":     goodVM + "\nconfig: {extra: " + nested + "}",
				"LabInterface":    goodInterface + "\nconfig: {extra: " + nested + "}",
				"OutgoingMessage": goodMessage + "\ncontext: {lab: " + nested + ", more: " + long(40000) + "}",
			} {
				obj := fromYAML(object(kind, spec))
				obj.SetNamespace(ns)
				obj.SetGenerateName("fits-")
				Expect(k8sClient.Create(ctx, obj)).To(Succeed(), kind)
			}
		})
	})
})
