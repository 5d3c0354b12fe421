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

package webhookserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// badInput is one refused message: how to spoil the valid message, the
// answer, and the field path the answer must name.
type badInput struct {
	name  string
	spoil func(m map[string]any)
	raw   string // sent instead of the message when set
	code  int
	field string
}

func set(path func(m map[string]any) map[string]any, key string, v any) func(map[string]any) {
	return func(m map[string]any) { path(m)[key] = v }
}

func del(path func(m map[string]any) map[string]any, key string) func(map[string]any) {
	return func(m map[string]any) { delete(path(m), key) }
}

func top(m map[string]any) map[string]any    { return m }
func data(m map[string]any) map[string]any   { return m["data"].(map[string]any) }
func vm(m map[string]any) map[string]any     { return entry(resources(m), 0) }
func urlRes(m map[string]any) map[string]any { return entry(resources(m), 1) }
func vmNIC(m map[string]any) map[string]any {
	return config(vm(m))["network_interface"].(map[string]any)
}
func shell(m map[string]any) map[string]any    { return entry(interfaces(m), 0) }
func shellCfg(m map[string]any) map[string]any { return config(shell(m)) }
func shellAuth(m map[string]any) map[string]any {
	return shellCfg(m)["authentication"].(map[string]any)
}
func shellKey(m map[string]any) map[string]any { return shellAuth(m)["data"].(map[string]any) }

func addInterface(f map[string]any) func(map[string]any) {
	return func(m map[string]any) {
		d := data(m)
		d["interfaces"] = append(d["interfaces"].([]any), f)
	}
}

var badInputs = []badInput{
	{name: "not JSON", raw: `{"source_message_id": `, code: 400, field: ""},
	{name: "the seed's unquoted keys", raw: `{source_message_id: "dfede374"}`, code: 400, field: ""},
	{name: "a list, not an object", raw: `[]`, code: 400, field: ""},
	{name: "two objects", raw: `{} {}`, code: 400, field: ""},
	{name: "no source_message_id", spoil: del(top, "source_message_id"), code: 400, field: "source_message_id"},
	{name: "a numeric source_message_id", spoil: set(top, "source_message_id", 7), code: 400, field: "source_message_id"},
	{name: "an unknown type", spoil: set(top, "type", "CLASS"), code: 400, field: "type"},
	{name: "an unknown action", spoil: set(top, "action", "CREATE"), code: 400, field: "action"},
	{name: "no timestamp", spoil: del(top, "timestamp"), code: 400, field: "timestamp"},
	{name: "a timestamp without a zone", spoil: set(top, "timestamp", "2020-10-05T08:39:09"), code: 400, field: "timestamp"},
	{name: "an unknown top-level field", spoil: set(top, "entity_ids", []any{"x"}), code: 400, field: "entity_ids"},
	{name: "no data", spoil: del(top, "data"), code: 400, field: "data"},
	{name: "empty data", spoil: set(top, "data", map[string]any{}), code: 400, field: "data"},
	{name: "resources not a list", spoil: set(data, "resources", map[string]any{}), code: 400, field: "data.resources"},
	{name: "a resource that is not an object", spoil: set(data, "resources", []any{"vm1"}), code: 400, field: "data.resources[0]"},
	{name: "a resource without id", spoil: del(vm, "id"), code: 400, field: "data.resources[0].id"},
	{name: "an id over 253 characters", spoil: set(vm, "id", strings.Repeat("a", 254)), code: 400, field: "data.resources[0].id"},
	{name: "a duplicate resource id", spoil: set(urlRes, "id", "vm1"), code: 400, field: "data.resources[1].id"},
	{name: "resource type VMX", spoil: set(vm, "type", "VMX"), code: 400, field: "data.resources[0].type"},
	{name: "an unknown resource status", spoil: set(vm, "status", "RUNNING"), code: 400, field: "data.resources[0].status"},
	{name: "an unknown resource field", spoil: set(vm, "colour", "red"), code: 400, field: "data.resources[0].colour"},
	{name: "a public_ip that is not an IP", spoil: set(vmNIC, "public_ip", "999.17.144.2"), code: 400, field: "data.resources[0].config.network_interface.public_ip"},
	{name: "a dns that is not a host name", spoil: set(vmNIC, "dns", "labs_example!"), code: 400, field: "data.resources[0].config.network_interface.dns"},
	{name: "an unknown network_interface field", spoil: set(vmNIC, "mac", "aa:bb"), code: 400, field: "data.resources[0].config.network_interface.mac"},
	{name: "an address on a VM", spoil: set(func(m map[string]any) map[string]any { return config(vm(m)) }, "address", "https://x.example.com"), code: 400, field: "data.resources[0].config.address"},
	{name: "a URL without address", spoil: del(urlRes, "config"), code: 400, field: "data.resources[1].config.address"},
	{name: "an ftp address", spoil: set(func(m map[string]any) map[string]any { return config(urlRes(m)) }, "address", "ftp://files.example.com"), code: 400, field: "data.resources[1].config.address"},
	{name: "an interface without name", spoil: del(shell, "name"), code: 400, field: "data.interfaces[0].name"},
	{name: "an interface without resource_id", spoil: del(shell, "resource_id"), code: 400, field: "data.interfaces[0].resource_id"},
	{name: "interface type SSH", spoil: set(shell, "type", "SSH"), code: 400, field: "data.interfaces[0].type"},
	{name: "a region that is not a region code", spoil: set(shell, "region", "US East"), code: 400, field: "data.interfaces[0].region"},
	{name: "port 70000", spoil: set(shellCfg, "port", 70000), code: 400, field: "data.interfaces[0].config.port"},
	{name: "port 0", spoil: set(shellCfg, "port", 0), code: 400, field: "data.interfaces[0].config.port"},
	{name: `port "ssh"`, spoil: set(shellCfg, "port", "ssh"), code: 400, field: "data.interfaces[0].config.port"},
	{name: "port 22.5", spoil: set(shellCfg, "port", 22.5), code: 400, field: "data.interfaces[0].config.port"},
	{name: "an unknown authentication type", spoil: set(shellAuth, "type", "password"), code: 400, field: "data.interfaces[0].config.authentication.type"},
	{name: "a keypair without key", spoil: del(shellKey, "key"), code: 400, field: "data.interfaces[0].config.authentication.data.key"},
	{name: "a credential that is not a string", spoil: set(shellKey, "key", 42), code: 400, field: "data.interfaces[0].config.authentication.data.key"},
	{name: "authentication on a WEB_PAGE", spoil: set(shell, "type", "WEB_PAGE"), code: 400, field: "data.interfaces[0].config.authentication"},
	{name: "the same interface twice", spoil: addInterface(map[string]any{"name": "Shell", "type": "WEB_PAGE", "region": "us-east-1", "resource_id": "vm1"}), code: 400, field: "data.interfaces[1].name"},
	{name: "a field twice", raw: `{"source_message_id":"x","source_message_id":"y","type":"RESOURCE","action":"DELETED","timestamp":"2026-01-01T10:00:00Z","data":{"resources":[{"id":"a"}]}}`, code: 400, field: "source_message_id"},
	{name: "a config.extra over --max-config-extra-bytes", spoil: set(func(m map[string]any) map[string]any { return config(vm(m)) }, "blob", strings.Repeat("b", 5000)), code: 400, field: "data.resources[0].config"},
	{name: "101 resources", spoil: func(m map[string]any) {
		l := []any{}
		for i := range 101 {
			l = append(l, map[string]any{"id": fmt.Sprintf("r%d", i), "type": "VM", "status": "READY"})
		}
		data(m)["resources"] = l
	}, code: 400, field: "data.resources"},
	{name: "a list where a name belongs", spoil: set(vm, "name", []any{1, 2}), code: 400, field: "data.resources[0].name"},
	{name: "a resource_id in neither the message nor the namespace", spoil: set(shell, "resource_id", "nowhere"), code: 422, field: "data.interfaces[0].resource_id"},
	{name: "TERMINAL on a URL", spoil: set(shell, "resource_id", "url1"), code: 422, field: "data.interfaces[0].type"},
	{name: "DESKTOP on a URL", spoil: func(m map[string]any) { shell(m)["resource_id"] = "url1"; shell(m)["type"] = "DESKTOP" }, code: 422, field: "data.interfaces[0].type"},
}

var _ = Describe("Bad input", func() {
	It("is refused whole, naming the field, and writes nothing", func(ctx SpecContext) {
		Expect(len(badInputs)).To(BeNumerically(">=", 30))
		org, key := newOrg(ctx)
		for _, c := range badInputs {
			body := []byte(c.raw)
			if c.raw == "" {
				m := message("bad", "2026-01-01T10:00:00Z")
				c.spoil(m)
				body = encode(m)
			}
			r := post(baseURL, org, key, body)
			Expect(r.code).To(Equal(c.code), "%s: %s", c.name, r.raw)
			Expect(r.body.Error).NotTo(BeEmpty(), c.name)
			if c.field == "" {
				Expect(r.body.Error).To(ContainSubstring("malformed JSON"), c.name)
				continue
			}
			Expect(r.body.Details).To(ContainElement(HaveField("Field", c.field)), "%s: %s", c.name, r.raw)
			for _, d := range r.body.Details {
				Expect(d.Message).NotTo(BeEmpty(), c.name)
			}
			Expect(r.raw).NotTo(ContainSubstring("SECRET-KEY-MATERIAL"), "%s: a credential is never echoed", c.name)
		}
		Expect(versions(ctx, org)).To(HaveLen(1), "nothing but the API key")
	})

	It("reports every problem of a message in one answer", func(ctx SpecContext) {
		org, key := newOrg(ctx)
		m := message("many", "2026-01-01T10:00:00Z")
		vm(m)["type"] = "VMX"
		urlRes(m)["status"] = "NOPE"
		shell(m)["region"] = "Mars"
		shellCfg(m)["port"] = "99999"
		r := post(baseURL, org, key, encode(m))
		Expect(r.code).To(Equal(http.StatusBadRequest))
		Expect(r.body.Details).To(ConsistOf(
			HaveField("Field", "data.resources[0].type"), HaveField("Field", "data.resources[1].status"),
			HaveField("Field", "data.interfaces[0].region"), HaveField("Field", "data.interfaces[0].config.port")))
		Expect(r.body.Details[0].Message).To(ContainSubstring(`"VMX"`))
		Expect(r.body.Details[0].Message).To(ContainSubstring(`"VM"`))
	})
})

var _ = Describe("TLS", func() {
	It("serves the certificate files and picks up new ones without a restart", func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		writeCert(certFile, keyFile, "first")
		opts := testOptions()
		opts.TLSCertFile, opts.TLSKeyFile = certFile, keyFile
		base := startServer(cfg, opts)
		Expect(base).To(HavePrefix("https://"))
		Expect(servedCert(base)).To(Equal("first"))

		writeCert(certFile, keyFile, "second")
		Eventually(func() string { return servedCert(base) }).WithTimeout(20 * time.Second).Should(Equal("second"))
	})
})

// writeCert writes a self-signed certificate for 127.0.0.1 named cn.
func writeCert(certFile, keyFile, cn string) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)).To(Succeed())
	Expect(os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)).To(Succeed())
	Expect(os.Rename(keyFile+".tmp", keyFile)).To(Succeed())
	Expect(os.Rename(certFile+".tmp", certFile)).To(Succeed())
}

// servedCert is the common name of the certificate base serves.
func servedCert(base string) string {
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}
