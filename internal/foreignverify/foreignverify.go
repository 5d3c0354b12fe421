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

// Package foreignverify checks labhook's Ed25519 (v1a) signatures with
// implementations that are not labhook's: Node's crypto.verify and
// Python's cryptography package, each through the example that
// docs/receiving.md shows customers (docs/examples). Tests use it so that
// "any Ed25519 implementation verifies what labhook sends" is a measured
// fact, not labhook agreeing with itself.
package foreignverify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/labhook/labhook/api/wire"
)

// Examples are the files under docs/examples, as docs/receiving.md shows them.
const (
	NodeExample   = "verify-ed25519.js"
	PythonExample = "verify_ed25519.py"
)

// ErrUnavailable is returned when the runtime (node, or python3 with the
// cryptography package) is not installed; tests skip with its message.
var ErrUnavailable = errors.New("not installed")

// timeout bounds one run of an interpreter.
const timeout = 30 * time.Second

// Example returns the content of docs/examples/name.
func Example(name string) (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the module")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "docs", "examples", name))
	return string(b), err
}

// input is what the drivers read on stdin.
type input struct {
	PublicKey string            `json:"publicKey"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"` // base64
}

func stdin(publicKey string, h http.Header, body []byte) ([]byte, error) {
	in := input{PublicKey: publicKey, Body: base64.StdEncoding.EncodeToString(body), Headers: map[string]string{}}
	for _, k := range []string{wire.HeaderWebhookID, wire.HeaderWebhookTimestamp, wire.HeaderWebhookSignature} {
		in.Headers[k] = h.Get(k)
	}
	return json.Marshal(in)
}

// Node verifies a message with docs/examples/verify-ed25519.js, that is,
// with Node's crypto.verify. It returns nil when the example accepts it.
func Node(ctx context.Context, publicKey string, h http.Header, body []byte) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node: %w", ErrUnavailable)
	}
	src, err := Example(NodeExample)
	if err != nil {
		return err
	}
	const driver = `
const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
verifyLabhook(input.publicKey, input.headers, Buffer.from(input.body, "base64"));
`
	return run(ctx, publicKey, h, body, "node", "-e", src+driver)
}

// Python verifies a message with docs/examples/verify_ed25519.py, that
// is, with the cryptography package's Ed25519PublicKey.verify.
func Python(ctx context.Context, publicKey string, h http.Header, body []byte) error {
	if _, err := exec.LookPath("python3"); err != nil {
		return fmt.Errorf("python3: %w", ErrUnavailable)
	}
	if err := exec.CommandContext(ctx, "python3", "-c", "import cryptography").Run(); err != nil {
		return fmt.Errorf("python3 package cryptography: %w", ErrUnavailable)
	}
	src, err := Example(PythonExample)
	if err != nil {
		return err
	}
	const driver = `
import json, sys
_input = json.load(sys.stdin)
verify_labhook(_input["publicKey"], _input["headers"], base64.b64decode(_input["body"]))
`
	return run(ctx, publicKey, h, body, "python3", "-c", src+driver)
}

func run(ctx context.Context, publicKey string, h http.Header, body []byte, name string, args ...string) error {
	in, err := stdin(publicKey, h, body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s refused the message: %w: %s", name, err, lastLine(out.String()))
	}
	return nil
}

// lastLine keeps an interpreter's error short: the last line that names
// an error (Node prints its version after the stack), else the last line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "Error") {
			return strings.TrimSpace(lines[i])
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
