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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// IncomingPath is the webhookserver's incoming endpoint (SPEC §4); defined
// here so the plugin does not import the server.
const IncomingPath = "/api/v1/webhooks/events/incoming"

// Environment variables `send` reads when the flags are not given. The key
// is best passed this way or in a file: a flag's value shows up in ps and in
// the shell's history.
const (
	EnvAPIKey = "LABHOOK_API_KEY"
	EnvURL    = "LABHOOK_URL"
)

// DefaultIncomingURL is where `make dev`'s webhookserver listens.
const DefaultIncomingURL = "http://127.0.0.1:8090" + IncomingPath

// Bounds of what send reads: the message it posts, and the answer it prints.
const (
	maxMessageBytes = 16 << 20
	maxAnswerBytes  = 1 << 20
)

type sendFlags struct {
	org, file, url, key, keyFile string
	timeout                      time.Duration
}

func (c *cli) sendCommand() *cobra.Command {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send --org ORG -f message.json",
		Short: "POST an incoming message as an organisation's backend would, and print the answer",
		Long: `POST an incoming message (seed 000's format) to the webhookserver with
"Authorization: Bearer ORG:KEY", exactly as the organisation's backend
would, and print the HTTP status and the answer. The exit status is
non-zero unless the answer is 2xx.

The key comes from --key-file, --key, or $` + EnvAPIKey + ` (prefer the file or
the variable: a flag's value shows in ps). The URL is --url, else
$` + EnvURL + `, else make dev's ` + DefaultIncomingURL + `;
a URL without a path gets ` + IncomingPath + `.`,
		Example: `  kubectl labhook send --org acme -f config/samples/incoming/seed-example.json --key-file acme.key
  LABHOOK_API_KEY=... kubectl labhook send --org acme -f - --url https://labhook.example.com < message.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.send(cmd.Context(), f)
		},
	}
	cmd.Flags().StringVar(&f.org, "org", "", "the organisation (namespace) to send as; default: the -n namespace")
	cmd.Flags().StringVarP(&f.file, "filename", "f", "", "the message: a JSON file, or - for stdin")
	cmd.Flags().StringVar(&f.url, "url", "", "the webhookserver's incoming URL (default $"+EnvURL+", else "+DefaultIncomingURL+")")
	cmd.Flags().StringVar(&f.key, "key", "", "the organisation's API key (visible in ps: prefer --key-file or $"+EnvAPIKey+")")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "a file holding the organisation's API key")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on the request after this long")
	_ = cmd.MarkFlagRequired("filename")
	cmd.MarkFlagsMutuallyExclusive("key", "key-file")
	_ = cmd.RegisterFlagCompletionFunc("org", c.completeNamespaces)
	_ = cmd.MarkFlagFilename("filename", "json")
	return cmd
}

func (c *cli) send(ctx context.Context, f sendFlags) error {
	org, err := c.org(f.org)
	if err != nil {
		return err
	}
	key, err := c.apiKey(f)
	if err != nil {
		return err
	}
	target, err := c.incomingURL(f.url)
	if err != nil {
		return err
	}
	body, err := c.readMessage(f.file)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--url %s: %w", target, err)
	}
	req.Header.Set("Authorization", "Bearer "+org+":"+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", target, err)
	}
	fmt.Fprintf(c.Out, "HTTP %s\n", cell(resp.Status))
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		fmt.Fprintf(c.Out, "Retry-After: %s\n", cell(ra))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, answer, "", "  ") == nil {
		answer = pretty.Bytes()
	}
	if len(answer) > 0 {
		fmt.Fprintf(c.Out, "%s\n", block(string(bytes.TrimRight(answer, "\n"))))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the webhookserver answered %s", cell(resp.Status))
	}
	return nil
}

// apiKey is --key, else the content of --key-file, else $LABHOOK_API_KEY.
func (c *cli) apiKey(f sendFlags) (string, error) {
	key := f.key
	switch {
	case f.keyFile != "":
		b, err := os.ReadFile(f.keyFile)
		if err != nil {
			return "", fmt.Errorf("--key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	case key == "":
		key = strings.TrimSpace(c.getenv(EnvAPIKey))
	}
	if key == "" {
		return "", fmt.Errorf("no API key: use --key-file FILE, $%s or --key (kubectl labhook keys create makes one)", EnvAPIKey)
	}
	return key, nil
}

// incomingURL is --url, else $LABHOOK_URL, else make dev's; a URL with no
// path gets the incoming path.
func (c *cli) incomingURL(flag string) (string, error) {
	raw := flag
	if raw == "" {
		raw = c.getenv(EnvURL)
	}
	if raw == "" {
		return DefaultIncomingURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: must be an http:// or https:// URL with a host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = IncomingPath
	}
	return u.String(), nil
}

// readMessage reads -f, a file or - for stdin, up to maxMessageBytes.
func (c *cli) readMessage(file string) ([]byte, error) {
	r, closeFn, err := c.open(file)
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	defer closeFn()
	b, err := readBounded(r)
	if err != nil {
		return nil, fmt.Errorf("-f %s: %w", file, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("-f " + file + ": empty")
	}
	return b, nil
}

func (c *cli) getenv(k string) string {
	if c.Getenv != nil {
		return c.Getenv(k)
	}
	return os.Getenv(k)
}
