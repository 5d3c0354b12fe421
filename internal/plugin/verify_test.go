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

package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labhook/labhook/api/wire"
)

var _ = Describe("verify", func() {
	var dir, secretFile, secret, bodyFile string
	body := []byte(`{"message_id":"m-1","type":"RESOURCE","status":"UPDATED","entity_ids":["25f377ac"],"timestamp":"2026-11-25T08:36:09+00:00","context":{},"callback":""}`)

	// signed returns the -H flags of body signed with secrets at ts.
	signed := func(ts time.Time, secrets ...string) []string {
		sig, err := wire.Sign(secrets, "m-1", ts, body)
		Expect(err).NotTo(HaveOccurred())
		return []string{
			"-H", "webhook-id: m-1",
			"-H", "webhook-timestamp: " + strconv.FormatInt(ts.Unix(), 10),
			"-H", "webhook-signature: " + sig,
		}
	}
	verify := func(ctx SpecContext, args ...string) result {
		return kubectl(ctx, append([]string{"verify"}, args...)...)
	}

	BeforeEach(func() {
		dir = GinkgoT().TempDir()
		var err error
		secret, err = wire.GenerateSecret()
		Expect(err).NotTo(HaveOccurred())
		secretFile = filepath.Join(dir, "secret")
		Expect(os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)).To(Succeed())
		bodyFile = filepath.Join(dir, "body.json")
		Expect(os.WriteFile(bodyFile, body, 0o600)).To(Succeed())
	})

	It("accepts a message signed with the secret, and never prints the secret", func(ctx SpecContext) {
		now := time.Now()
		r := verify(ctx, append([]string{"--secret-file", secretFile, "--body", bodyFile}, signed(now, secret)...)...)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(Equal(fmt.Sprintf("signature valid: webhook-id m-1, signed at %s, 1 signature(s)\n  message m-1: RESOURCE UPDATED\n",
			now.UTC().Format(time.RFC3339))))
		Expect(r.out + r.errOut).NotTo(ContainSubstring(secret[len(wire.SecretPrefix):]))
	})

	It("accepts either signature during a rotation", func(ctx SpecContext) {
		old, err := wire.GenerateSecret()
		Expect(err).NotTo(HaveOccurred())
		r := verify(ctx, append([]string{"--secret-file", secretFile, "--body", bodyFile, "-o", "json"}, signed(time.Now(), old, secret)...)...)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring(`"signatures": 2`))
		Expect(r.out).To(ContainSubstring(`"valid": true`))
	})

	It("reads a recorded HTTP request", func(ctx SpecContext) {
		ts := time.Now()
		sig, err := wire.Sign([]string{secret}, "m-1", ts, body)
		Expect(err).NotTo(HaveOccurred())
		raw := fmt.Sprintf("POST /webhooks/events HTTP/1.1\r\nHost: training.example.com\r\nContent-Type: application/json\r\n"+
			"webhook-id: m-1\r\nwebhook-timestamp: %d\r\nwebhook-signature: %s\r\nContent-Length: %d\r\n\r\n%s",
			ts.Unix(), sig, len(body), body)
		req := filepath.Join(dir, "request.http")
		Expect(os.WriteFile(req, []byte(raw), 0o600)).To(Succeed())
		Expect(verify(ctx, "--secret-file", secretFile, "--request", req).err).NotTo(HaveOccurred())

		By("and a headers file with its request line")
		headers := filepath.Join(dir, "headers")
		Expect(os.WriteFile(headers, []byte(fmt.Sprintf("POST /webhooks/events HTTP/1.1\nwebhook-id: m-1\nwebhook-timestamp: %d\nwebhook-signature: %s\n",
			ts.Unix(), sig)), 0o600)).To(Succeed())
		Expect(verify(ctx, "--secret-file", secretFile, "--body", bodyFile, "--headers", headers).err).NotTo(HaveOccurred())
	})

	It("checks an old recorded message's signature alone only when asked", func(ctx SpecContext) {
		args := append([]string{"--secret-file", secretFile, "--body", bodyFile}, signed(time.Now().Add(-10*time.Minute), secret)...)
		Expect(verify(ctx, args...).err).To(MatchError(ContainSubstring("signature not valid: webhook-timestamp is more than 5 minutes old")))
		Expect(verify(ctx, append(args, "--ignore-timestamp")...).err).NotTo(HaveOccurred())

		By("--ignore-timestamp does not make a bad signature good")
		other, err := wire.GenerateSecret()
		Expect(err).NotTo(HaveOccurred())
		args = append([]string{"--secret-file", secretFile, "--body", bodyFile, "--ignore-timestamp"}, signed(time.Now().Add(-10*time.Minute), other)...)
		Expect(verify(ctx, args...).err).To(MatchError(ContainSubstring("no signature matches")))
	})

	It("accepts an ed25519 (v1a) message with the config's public key, old recordings only when asked", func(ctx SpecContext) {
		priv, pub, err := wire.GenerateKeyPair()
		Expect(err).NotTo(HaveOccurred())
		r := verify(ctx, append([]string{"--public-key", pub, "--body", bodyFile, "-o", "json"}, signed(time.Now(), priv)...)...)
		Expect(r.err).NotTo(HaveOccurred())
		Expect(r.out).To(ContainSubstring(`"valid": true`))

		args := append([]string{"--public-key", pub, "--body", bodyFile}, signed(time.Now().Add(-10*time.Minute), priv)...)
		Expect(verify(ctx, args...).err).To(MatchError(ContainSubstring("more than 5 minutes old")))
		Expect(verify(ctx, append(args, "--ignore-timestamp")...).err).NotTo(HaveOccurred())

		By("another key pair's public key refuses it")
		_, other, err := wire.GenerateKeyPair()
		Expect(err).NotTo(HaveOccurred())
		args = append([]string{"--public-key", other, "--body", bodyFile, "--ignore-timestamp"}, signed(time.Now(), priv)...)
		Expect(verify(ctx, args...).err).To(MatchError(ContainSubstring("no signature matches")))
	})

	DescribeTable("says why a message does not verify",
		func(ctx SpecContext, mutate func(args []string) []string, wantErr string) {
			args := append([]string{"--secret-file", secretFile, "--body", bodyFile}, signed(time.Now(), secret)...)
			r := verify(ctx, mutate(args)...)
			Expect(r.err).To(MatchError(ContainSubstring(wantErr)))
		},
		Entry("another secret", func(a []string) []string {
			other, _ := wire.GenerateSecret()
			f := filepath.Join(dir, "other")
			Expect(os.WriteFile(f, []byte(other), 0o600)).To(Succeed())
			a[1] = f
			return a
		}, "signature not valid: no signature matches: the secret is not the one the message was signed with"),
		Entry("a changed body", func(a []string) []string {
			Expect(os.WriteFile(bodyFile, append(body, ' '), 0o600)).To(Succeed())
			return a
		}, "no signature matches"),
		Entry("a missing header", func(a []string) []string { return a[:len(a)-2] },
			"the webhook-id, webhook-timestamp and webhook-signature headers are all required"),
		Entry("a file without a whsec_ secret", func(a []string) []string {
			Expect(os.WriteFile(secretFile, []byte("hunter2"), 0o600)).To(Succeed())
			return a
		}, `does not hold a whsec_ secret`),
		Entry("a header that is not 'name: value'", func(a []string) []string { return append(a, "-H", "garbage") },
			`-H: "garbage" is not a 'Name: value' header`),
		Entry("a --public-key that is not a whpk_ key", func([]string) []string {
			return []string{"--public-key", secret, "--body", bodyFile}
		}, "--public-key: not a whpk_ public key"),
		Entry("a v1 (hmac) message checked with an ed25519 public key", func(a []string) []string {
			_, pub, err := wire.GenerateKeyPair()
			Expect(err).NotTo(HaveOccurred())
			return append([]string{"--public-key", pub}, a[2:]...)
		}, "no signature matches"),
		Entry("no key", func([]string) []string { return []string{"--body", bodyFile} },
			"at least one of the flags in the group [secret-file public-key] is required"),
	)
})
