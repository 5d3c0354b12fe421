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

// Package outbound is labhook's one outbound HTTP client. Every POST to a
// customer receiver (WebhookConfig tests, OutgoingMessage deliveries) goes
// through it, so the SSRF guard, the http:// policy, redirects, timeouts,
// connection reuse, signing and the headers of SPEC §3 are decided once.
package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/api/wire"
)

// DefaultTimeout bounds a request whose Request.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// maxResponseBody is how much of a response is read (and discarded) so the
// connection can be reused; a receiver that sends more loses its connection.
const maxResponseBody = 64 << 10

// Options configures the client. The zero value refuses http:// and every
// non-public address.
type Options struct {
	// AllowHTTP permits http:// URLs (--allow-http). https:// is always allowed.
	AllowHTTP bool
	// AllowedCIDRs are exempt from the SSRF guard (--allowed-target-cidrs).
	AllowedCIDRs []netip.Prefix
	// UserAgent is sent as User-Agent, e.g. "labhook/v0.1.0".
	UserAgent string
	// MaxConnsPerHost sizes the idle pool per receiver; 0 means 256, enough
	// for --max-concurrent-deliveries to one receiver to reuse connections.
	MaxConnsPerHost int
	// RootCAs verifies receivers' certificates; nil means the system roots.
	RootCAs *x509.CertPool
}

// Client sends signed messages to receivers. It is safe for concurrent use;
// build one per process and share it.
type Client struct {
	http      *http.Client
	allowHTTP bool
	userAgent string
}

// New builds the client.
func New(o Options) *Client {
	g := guard{allowed: append([]netip.Prefix(nil), o.AllowedCIDRs...)}
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   g.control,
	}
	perHost := o.MaxConnsPerHost
	if perHost <= 0 {
		perHost = 256
	}
	transport := &http.Transport{
		// No proxy: the guard checks the address actually dialled, and a
		// proxy from the environment would hide the receiver's.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * perHost,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second, // backstop; the request context is tighter
		ExpectContinueTimeout: time.Second,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    o.RootCAs,
		},
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "labhook/dev"
	}
	return &Client{
		http: &http.Client{
			Transport: transport,
			// A 3xx is answered as is and counts as a failure: following it
			// would send the signed body and Authorization somewhere the
			// admin did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		allowHTTP: o.AllowHTTP,
		userAgent: ua,
	}
}

// Request is one attempt to deliver one message.
type Request struct {
	// URL of the receiver.
	URL string
	// MessageID is sent as webhook-id.
	MessageID string
	// Body is sent verbatim; it is what is signed.
	Body []byte
	// Secrets are whsec_ secrets, current first; one signature each.
	Secrets []string
	// Authorization is sent as "Authorization: Bearer <value>" when non-empty.
	Authorization string
	// Timeout bounds the attempt from dialling to the end of the response
	// body; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Result is the outcome of one attempt.
type Result struct {
	// HTTPStatus is the receiver's status code; 0 when none arrived.
	HTTPStatus int
	// Duration from the start of the attempt to the end of the response.
	Duration time.Duration
	// RetryAfter is the parsed Retry-After on 429/503, else 0.
	RetryAfter time.Duration
	// Reason is "" on 2xx, else a v1alpha1 Reason*: HTTPStatus, Timeout,
	// TLSError, DNSError, ConnectionError, RefusedByPolicy, or SecretError
	// when the message could not be signed.
	Reason string
	// Err explains a failure for people. It never contains secrets or the
	// Authorization value.
	Err error
}

// OK reports whether the receiver answered 2xx.
func (r Result) OK() bool { return r.Reason == "" && r.Err == nil }

// Send POSTs r.Body to r.URL, signed with r.Secrets, and classifies the
// outcome. It does not retry.
func (c *Client) Send(ctx context.Context, r Request) Result {
	start := time.Now()
	res := c.send(ctx, r, start)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) send(ctx context.Context, r Request, now time.Time) Result {
	u, err := url.Parse(r.URL)
	if err != nil {
		return Result{Reason: labhookv1alpha1.ReasonRefusedByPolicy, Err: &PolicyError{Msg: "url is not a valid URL"}}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !c.allowHTTP {
			return Result{Reason: labhookv1alpha1.ReasonRefusedByPolicy,
				Err: &PolicyError{Msg: "http:// receivers are not allowed; use https:// or run the manager with --allow-http"}}
		}
	default:
		return Result{Reason: labhookv1alpha1.ReasonRefusedByPolicy, Err: &PolicyError{Msg: fmt.Sprintf("scheme %q is not allowed", u.Scheme)}}
	}

	sig, err := wire.Sign(r.Secrets, r.MessageID, now, r.Body)
	if err != nil {
		return Result{Reason: labhookv1alpha1.ReasonSecretError, Err: err}
	}

	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return Result{Reason: labhookv1alpha1.ReasonConnectionError, Err: fmt.Errorf("build request: %w", err)}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.userAgent)
	h.Set(wire.HeaderWebhookID, r.MessageID)
	h.Set(wire.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(wire.HeaderWebhookSignature, sig)
	if r.Authorization != "" {
		h.Set("Authorization", "Bearer "+r.Authorization)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return classifyError(ctx, err)
	}
	// Drain a bounded amount so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()

	res := Result{HTTPStatus: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	res.Reason = labhookv1alpha1.ReasonHTTPStatus
	msg := fmt.Sprintf("receiver answered HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed; configure the final URL)"
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	res.Err = errors.New(msg)
	return res
}

// RedactURL returns u without userinfo, query and fragment, the parts of a
// URL where credentials and tokens are usually put, or "" when u does not
// parse. Every error this package returns names its URL this way, so a
// token in a receiver's URL never reaches status, Events or logs.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	p.User = nil
	p.RawQuery, p.ForceQuery = "", false
	p.Fragment, p.RawFragment = "", ""
	return p.String()
}

// classifyError maps a transport error to a Reason. The error text comes
// from net/http, which never includes request headers, so the Authorization
// value and the signature cannot leak through it; the URL it names (which
// net/http strips of a password only) is redacted here.
func classifyError(ctx context.Context, err error) Result {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.URL = RedactURL(ue.URL); ue.URL == "" {
			ue.URL = "(url)"
		}
	}
	var (
		policy   *PolicyError
		dnsErr   *net.DNSError
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		unknownA x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		alert    tls.AlertError
		record   tls.RecordHeaderError
		opErr    *net.OpError
	)
	switch {
	case errors.As(err, &policy):
		return Result{Reason: labhookv1alpha1.ReasonRefusedByPolicy, Err: policy}
	case errors.As(err, &dnsErr):
		return Result{Reason: labhookv1alpha1.ReasonDNSError, Err: fmt.Errorf("resolve %s: %w", dnsErr.Name, dnsErr)}
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return Result{Reason: labhookv1alpha1.ReasonTimeout, Err: fmt.Errorf("timed out: %w", err)}
	case errors.As(err, &certErr), errors.As(err, &unknownA), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &alert), errors.As(err, &record),
		// A TLS alert from the receiver surfaces as an unexported type
		// inside an OpError named "remote error".
		errors.As(err, &opErr) && opErr.Op == "remote error":
		return Result{Reason: labhookv1alpha1.ReasonTLSError, Err: fmt.Errorf("TLS: %w", err)}
	default:
		return Result{Reason: labhookv1alpha1.ReasonConnectionError, Err: err}
	}
}

// ParseRetryAfter reads a Retry-After header value, either delay-seconds or
// an HTTP date (RFC 9110 §10.2.3), relative to now. It returns 0 when the
// value is absent, malformed or in the past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		if secs > maxSecs {
			secs = maxSecs
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
