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
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/labhook/labhook/api/wire"
)

// A verifier checks the Standard Webhooks signature of one received message.
type verifier interface {
	verify(h http.Header, body []byte) error
}

// keyVerifier checks a message with one key, through wire: a whsec_
// secret verifies "v1" signatures (hmac-sha256 configs), a whpk_ public
// key "v1a" ones (ed25519 configs), as every receiver does.
type keyVerifier struct {
	key             string
	ignoreTimestamp bool
}

func (v keyVerifier) verify(h http.Header, body []byte) error {
	if v.ignoreTimestamp {
		return wire.VerifyIgnoringTimestamp(v.key, h, body)
	}
	return wire.Verify(v.key, h, body)
}

// verifyResult is what `verify` prints.
type verifyResult struct {
	Valid      bool      `json:"valid"`
	Error      string    `json:"error,omitempty"`
	WebhookID  string    `json:"webhookID,omitempty"`
	SignedAt   time.Time `json:"signedAt,omitzero"`
	Signatures int       `json:"signatures"`
	// MessageID, Type and Status are read from the body when it is a
	// labhook outgoing message.
	MessageID string `json:"messageID,omitempty"`
	Type      string `json:"type,omitempty"`
	Status    string `json:"status,omitempty"`
}

type verifyFlags struct {
	secretFile, publicKey      string
	request, body, headersFile string
	headers                    []string
	ignoreTimestamp            bool
	output                     string
}

func (c *cli) verifyCommand() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify (--secret-file FILE | --public-key KEY) (--request FILE | --body FILE [-H 'name: value']... [--headers FILE])",
		Short: "Verify a received message's signature, as a receiver would",
		Long: `Verify the Standard Webhooks signature of a message labhook sent, exactly as
a receiver does: the webhook-id, webhook-timestamp and webhook-signature
headers, the body byte for byte, and a timestamp within 5 minutes (the
replay window; --ignore-timestamp checks the signature of an older,
recorded message alone). Any one matching signature passes, as during a
secret rotation.

The message is a recorded HTTP request (--request, as "nc -l" or a proxy
captures it), or a body file with its headers (-H, or --headers with one
"Name: value" per line). The exit status is non-zero unless it verifies.

--secret-file holds a hmac-sha256 config's whsec_ secret (its signing
Secret's "secret" key); --public-key an ed25519 config's whpk_ public key
(its status.publicKey).`,
		Example: `  kubectl get secret main-signing -n acme -o jsonpath='{.data.secret}' | base64 -d > secret
  kubectl labhook verify --secret-file secret --request recorded.http --ignore-timestamp
  kubectl labhook verify --secret-file secret --body body.json \
    -H 'webhook-id: ...' -H 'webhook-timestamp: ...' -H 'webhook-signature: v1,...'`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error { return c.verify(f) },
	}
	cmd.Flags().StringVar(&f.secretFile, "secret-file", "", "a file holding the whsec_ signing secret")
	cmd.Flags().StringVar(&f.publicKey, "public-key", "", "the whpk_ public key of an ed25519 config (not supported yet)")
	cmd.Flags().StringVar(&f.request, "request", "", "a recorded HTTP request (headers and body), or - for stdin")
	cmd.Flags().StringVar(&f.body, "body", "", "the body as received, byte for byte, or - for stdin")
	cmd.Flags().StringArrayVarP(&f.headers, "header", "H", nil, "a header of the message, 'name: value' (repeatable)")
	cmd.Flags().StringVar(&f.headersFile, "headers", "", "a file of headers, one 'Name: value' per line")
	cmd.Flags().BoolVar(&f.ignoreTimestamp, "ignore-timestamp", false, "check the signature of a message older than the 5-minute window")
	addOutputFlag(cmd, &f.output)
	cmd.MarkFlagsOneRequired("secret-file", "public-key")
	cmd.MarkFlagsMutuallyExclusive("secret-file", "public-key")
	cmd.MarkFlagsOneRequired("request", "body")
	cmd.MarkFlagsMutuallyExclusive("request", "body")
	cmd.MarkFlagsMutuallyExclusive("request", "header")
	cmd.MarkFlagsMutuallyExclusive("request", "headers")
	return cmd
}

func (c *cli) verify(f verifyFlags) error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	v, err := c.verifierFor(f)
	if err != nil {
		return err
	}
	h, body, err := c.readReceived(f)
	if err != nil {
		return err
	}
	res := verifyResult{WebhookID: h.Get(wire.HeaderWebhookID), Signatures: len(strings.Fields(h.Get(wire.HeaderWebhookSignature)))}
	if ts, err := strconv.ParseInt(h.Get(wire.HeaderWebhookTimestamp), 10, 64); err == nil {
		res.SignedAt = time.Unix(ts, 0).UTC()
	}
	var msg wire.OutgoingMessage
	if json.Unmarshal(body, &msg) == nil {
		res.MessageID, res.Type, res.Status = msg.MessageID, msg.Type, msg.Status
	}
	verr := v.verify(h, body)
	res.Valid = verr == nil
	if verr != nil {
		res.Error = explainVerify(verr)
	}
	if f.output != "" {
		if err := printStructured(c.Out, f.output, res); err != nil {
			return err
		}
	} else if res.Valid {
		fmt.Fprintf(c.Out, "signature valid: webhook-id %s, signed at %s, %d signature(s)\n",
			cell(orDash(res.WebhookID)), res.SignedAt.Format(time.RFC3339), res.Signatures)
		if res.Type != "" {
			fmt.Fprintf(c.Out, "  message %s: %s %s\n", cell(res.MessageID), cell(res.Type), cell(res.Status))
		}
	}
	if verr != nil {
		return fmt.Errorf("signature not valid: %s", res.Error)
	}
	return nil
}

// verifierFor reads the key the flags name. The secret is never printed.
func (c *cli) verifierFor(f verifyFlags) (verifier, error) {
	if f.publicKey != "" {
		key := strings.TrimSpace(f.publicKey)
		if !strings.HasPrefix(key, wire.PublicKeyPrefix) {
			return nil, fmt.Errorf("--public-key: not a %s public key (an ed25519 WebhookConfig's status.publicKey)", wire.PublicKeyPrefix)
		}
		return keyVerifier{key: key, ignoreTimestamp: f.ignoreTimestamp}, nil
	}
	b, err := os.ReadFile(f.secretFile)
	if err != nil {
		return nil, fmt.Errorf("--secret-file: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if !strings.HasPrefix(secret, wire.SecretPrefix) {
		return nil, fmt.Errorf("--secret-file %s: does not hold a %s secret (the signing Secret's %q key, base64-decoded)",
			f.secretFile, wire.SecretPrefix, "secret")
	}
	return keyVerifier{key: secret, ignoreTimestamp: f.ignoreTimestamp}, nil
}

// explainVerify says what a verification failure means for a receiver.
func explainVerify(err error) string {
	switch {
	case errors.Is(err, wire.ErrNoMatchingSignature):
		return "no signature matches: the secret is not the one the message was signed with, or the body, webhook-id or webhook-timestamp changed on the way (they must be the exact bytes received)"
	case errors.Is(err, wire.ErrMessageTooOld):
		return "webhook-timestamp is more than 5 minutes old: a replay, or a recorded message (--ignore-timestamp checks the signature alone)"
	case errors.Is(err, wire.ErrMessageTooNew):
		return "webhook-timestamp is more than 5 minutes in the future: check the clocks (--ignore-timestamp checks the signature alone)"
	case errors.Is(err, wire.ErrRequiredHeaders):
		return "the webhook-id, webhook-timestamp and webhook-signature headers are all required"
	case errors.Is(err, wire.ErrInvalidHeaders):
		return "the webhook-timestamp header is not a unix time in seconds"
	case errors.Is(err, wire.ErrWeakSecret):
		return "the secret file does not hold a whsec_ secret of at least 16 bytes"
	}
	return err.Error()
}

// readReceived reads the message: a recorded request, or a body and headers.
func (c *cli) readReceived(f verifyFlags) (http.Header, []byte, error) {
	if f.request != "" {
		r, closeFn, err := c.open(f.request)
		if err != nil {
			return nil, nil, fmt.Errorf("--request: %w", err)
		}
		defer closeFn()
		req, err := http.ReadRequest(bufio.NewReader(r))
		if err != nil {
			return nil, nil, fmt.Errorf("--request %s: not an HTTP request: %w", f.request, err)
		}
		body, err := readBounded(req.Body)
		if err != nil {
			return nil, nil, fmt.Errorf("--request %s: body: %w", f.request, err)
		}
		return req.Header, body, nil
	}
	r, closeFn, err := c.open(f.body)
	if err != nil {
		return nil, nil, fmt.Errorf("--body: %w", err)
	}
	defer closeFn()
	body, err := readBounded(r)
	if err != nil {
		return nil, nil, fmt.Errorf("--body %s: %w", f.body, err)
	}
	h := http.Header{}
	if f.headersFile != "" {
		b, err := os.ReadFile(f.headersFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--headers: %w", err)
		}
		if err := parseHeaderLines(h, strings.Split(string(b), "\n")); err != nil {
			return nil, nil, fmt.Errorf("--headers %s: %w", f.headersFile, err)
		}
	}
	if err := parseHeaderLines(h, f.headers); err != nil {
		return nil, nil, fmt.Errorf("-H: %w", err)
	}
	return h, body, nil
}

// parseHeaderLines adds "Name: value" lines to h; blank lines and a
// request or status line ("POST /x HTTP/1.1") are skipped.
func parseHeaderLines(h http.Header, lines []string) error {
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "HTTP/") || strings.HasSuffix(l, " HTTP/1.1") || strings.HasSuffix(l, " HTTP/2") {
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("%q is not a 'Name: value' header", l)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
	}
	return nil
}

// open opens a file, or stdin for "-".
func (c *cli) open(name string) (io.Reader, func(), error) {
	if name == "-" {
		return c.In, func() {}, nil
	}
	fh, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return fh, func() { _ = fh.Close() }, nil
}

// readBounded reads at most maxMessageBytes.
func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMessageBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMessageBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxMessageBytes)
	}
	return b, nil
}
