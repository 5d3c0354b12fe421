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

package outbound_test

import (
	"context"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/outbound"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	authz   = "backend-user:s3cr3t-backend-key"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// received is what a test receiver saw.
type received struct {
	mu      sync.Mutex
	headers []http.Header
	bodies  [][]byte
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.headers)
}

// receiver starts a loopback server answering status and recording requests.
func receiver(t *testing.T, status int, extra http.Header) (*httptest.Server, *received) {
	t.Helper()
	rec := &received{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.headers = append(rec.headers, r.Header.Clone())
		rec.bodies = append(rec.bodies, body)
		rec.mu.Unlock()
		for k, v := range extra {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func request(url string) outbound.Request {
	return outbound.Request{
		URL:           url,
		MessageID:     "msg-0001",
		Body:          []byte(`{"message_id":"msg-0001","type":"WEBHOOK_CONFIG","status":"TEST"}`),
		Secrets:       []string{secretA},
		Authorization: authz,
		Timeout:       5 * time.Second,
	}
}

func assertNoSecrets(t *testing.T, res outbound.Result) {
	t.Helper()
	if res.Err == nil {
		return
	}
	for _, s := range []string{authz, secretA, secretB, strings.TrimPrefix(secretA, "whsec_")} {
		if strings.Contains(res.Err.Error(), s) {
			t.Errorf("error %q contains a secret", res.Err)
		}
	}
}

func TestSendSignsWithEverySecretAndSetsSpecHeaders(t *testing.T) {
	srv, rec := receiver(t, http.StatusNoContent, nil)
	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback, UserAgent: "labhook/v9.9.9"})

	req := request(srv.URL + "/hook")
	req.Secrets = []string{secretA, secretB}
	before := time.Now().Unix()
	res := c.Send(context.Background(), req)
	if !res.OK() || res.HTTPStatus != http.StatusNoContent || res.Reason != "" {
		t.Fatalf("Send = %+v, want OK 204", res)
	}
	if rec.count() != 1 {
		t.Fatalf("receiver got %d requests, want 1", rec.count())
	}
	h, body := rec.headers[0], rec.bodies[0]
	want := map[string]string{
		"Content-Type":  "application/json",
		"Accept":        "application/json",
		"User-Agent":    "labhook/v9.9.9",
		"Authorization": "Bearer " + authz,
		"Webhook-Id":    "msg-0001",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if string(body) != string(req.Body) {
		t.Errorf("body = %s, want %s", body, req.Body)
	}
	if ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64); err != nil || ts < before || ts > time.Now().Unix() {
		t.Errorf("webhook-timestamp = %q, want the unix seconds of this attempt", h.Get("webhook-timestamp"))
	}
	if sigs := strings.Fields(h.Get("webhook-signature")); len(sigs) != 2 {
		t.Errorf("webhook-signature has %d signatures, want 2: %q", len(sigs), h.Get("webhook-signature"))
	}
	// Each secret alone verifies, with the Standard Webhooks reference library.
	for _, s := range []string{secretA, secretB} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("standardwebhooks.Verify with %s…: %v", s[:10], err)
		}
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("A", 43) + "=")
	if err := other.Verify(body, h); err == nil {
		t.Error("a foreign secret verified the signature")
	}
}

func TestSendOmitsAuthorizationWhenEmpty(t *testing.T) {
	srv, rec := receiver(t, http.StatusOK, nil)
	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback})
	req := request(srv.URL)
	req.Authorization = ""
	if res := c.Send(context.Background(), req); !res.OK() {
		t.Fatalf("Send = %+v", res)
	}
	if _, ok := rec.headers[0]["Authorization"]; ok {
		t.Errorf("Authorization sent without a value: %q", rec.headers[0].Get("Authorization"))
	}
}

func TestSendRefusesBlockedTargets(t *testing.T) {
	srv, rec := receiver(t, http.StatusOK, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	cases := []struct {
		name string
		url  string
	}{
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/"},
		{"loopback not allowed", srv.URL},
		{"hostname resolving to loopback", "http://localhost:" + port + "/"},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:" + port + "/"},
		{"IPv6 loopback", "http://[::1]:" + port + "/"},
		{"RFC 1918", "http://10.1.2.3/"},
		{"RFC 1918 192.168", "http://192.168.0.10:8080/"},
		{"CGNAT", "http://100.64.0.1/"},
		{"unique local", "http://[fd00::1]/"},
		{"unspecified", "http://0.0.0.0:" + port + "/"},
		{"link-local v6", "http://[fe80::1]/"},
		{"multicast", "http://224.0.0.1/"},
	}
	c := outbound.New(outbound.Options{AllowHTTP: true})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := c.Send(context.Background(), request(tc.url))
			if res.Reason != labhookv1alpha1.ReasonRefusedByPolicy || res.OK() {
				t.Fatalf("Send(%s) = reason %q err %v, want %s", tc.url, res.Reason, res.Err, labhookv1alpha1.ReasonRefusedByPolicy)
			}
			if !strings.Contains(res.Err.Error(), "refused by policy") {
				t.Errorf("error %q does not say it was refused by policy", res.Err)
			}
			assertNoSecrets(t, res)
		})
	}
	if n := rec.count(); n != 0 {
		t.Errorf("loopback receiver was reached %d times through a refused target", n)
	}
}

func TestSendAllowedCIDRLetsLoopbackThrough(t *testing.T) {
	srv, rec := receiver(t, http.StatusOK, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if res := c.Send(context.Background(), request(srv.URL)); !res.OK() {
		t.Fatalf("Send to allowed loopback = %+v", res)
	}
	// The allowance is per address: 127.0.0.2 stays refused.
	if res := c.Send(context.Background(), request("http://127.0.0.2:"+port+"/")); res.Reason != labhookv1alpha1.ReasonRefusedByPolicy {
		t.Errorf("Send to 127.0.0.2 = %q %v, want RefusedByPolicy", res.Reason, res.Err)
	}
	if rec.count() != 1 {
		t.Errorf("receiver got %d requests, want 1", rec.count())
	}
}

func TestSendRefusesHTTPUnlessAllowed(t *testing.T) {
	srv, rec := receiver(t, http.StatusOK, nil)
	c := outbound.New(outbound.Options{AllowedCIDRs: loopback})
	res := c.Send(context.Background(), request(srv.URL))
	if res.Reason != labhookv1alpha1.ReasonRefusedByPolicy || !strings.Contains(res.Err.Error(), "--allow-http") {
		t.Fatalf("Send(http://) = %q %v, want RefusedByPolicy mentioning --allow-http", res.Reason, res.Err)
	}
	if rec.count() != 0 {
		t.Error("an http:// receiver was reached without --allow-http")
	}
	res = c.Send(context.Background(), request("ftp://example.com/"))
	if res.Reason != labhookv1alpha1.ReasonRefusedByPolicy {
		t.Errorf("Send(ftp://) = %q, want RefusedByPolicy", res.Reason)
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	target, targetRec := receiver(t, http.StatusOK, nil)
	for _, loc := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", target.URL + "/private"} {
		redirector, _ := receiver(t, http.StatusFound, http.Header{"Location": {loc}})
		c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback})
		res := c.Send(context.Background(), request(redirector.URL))
		if res.OK() || res.HTTPStatus != http.StatusFound || res.Reason != labhookv1alpha1.ReasonHTTPStatus {
			t.Errorf("redirect to %s: Send = %+v, want failed HTTPStatus 302", loc, res)
		}
	}
	if targetRec.count() != 0 {
		t.Errorf("redirect target was reached %d times", targetRec.count())
	}
}

// slowServer starts a loopback server that answers nothing until the test
// ends or the client gives up.
func slowServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	return slow
}

func TestSendClassifiesFailures(t *testing.T) {
	slow := slowServer(t)

	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tlsSrv.Close)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String() + "/"
	_ = l.Close()

	failing, _ := receiver(t, http.StatusInternalServerError, nil)

	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback})
	cases := []struct {
		name    string
		url     string
		timeout time.Duration
		reason  string
		status  int
		errText string
	}{
		{"timeout", slow.URL, 200 * time.Millisecond, labhookv1alpha1.ReasonTimeout, 0, "timed out"},
		{"untrusted certificate", tlsSrv.URL, 5 * time.Second, labhookv1alpha1.ReasonTLSError, 0, "certificate"},
		{"nothing listening", closedURL, 5 * time.Second, labhookv1alpha1.ReasonConnectionError, 0, "refused"},
		{"unresolvable host", "https://labhook-test.invalid/", 5 * time.Second, labhookv1alpha1.ReasonDNSError, 0, "labhook-test.invalid"},
		{"HTTP 500", failing.URL, 5 * time.Second, labhookv1alpha1.ReasonHTTPStatus, 500, "HTTP 500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := request(tc.url)
			req.Timeout = tc.timeout
			start := time.Now()
			res := c.Send(context.Background(), req)
			if res.OK() || res.Reason != tc.reason || res.HTTPStatus != tc.status {
				t.Fatalf("Send = reason %q status %d err %v, want %q %d", res.Reason, res.HTTPStatus, res.Err, tc.reason, tc.status)
			}
			if !strings.Contains(res.Err.Error(), tc.errText) {
				t.Errorf("error %q does not mention %q", res.Err, tc.errText)
			}
			if res.Duration <= 0 || time.Since(start) > tc.timeout+2*time.Second {
				t.Errorf("duration %v, elapsed %v with timeout %v", res.Duration, time.Since(start), tc.timeout)
			}
			assertNoSecrets(t, res)
		})
	}
}

func TestSendTrustsConfiguredRootCAs(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	c := outbound.New(outbound.Options{AllowedCIDRs: loopback, RootCAs: pool})
	if res := c.Send(context.Background(), request(tlsSrv.URL)); !res.OK() {
		t.Fatalf("Send over trusted TLS = %+v", res)
	}
}

func TestSendReportsRetryAfter(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		status   int
		header   string
		min, max time.Duration
	}{
		{http.StatusTooManyRequests, "7", 7 * time.Second, 7 * time.Second},
		{http.StatusServiceUnavailable, date, 80 * time.Second, 91 * time.Second},
		{http.StatusInternalServerError, "7", 0, 0}, // only 429/503 carry a meaningful Retry-After
	}
	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback})
	for _, tc := range cases {
		srv, _ := receiver(t, tc.status, http.Header{"Retry-After": {tc.header}})
		res := c.Send(context.Background(), request(srv.URL))
		if res.HTTPStatus != tc.status || res.RetryAfter < tc.min || res.RetryAfter > tc.max {
			t.Errorf("status %d Retry-After %q: got status %d RetryAfter %v, want in [%v, %v]",
				tc.status, tc.header, res.HTTPStatus, res.RetryAfter, tc.min, tc.max)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		" 3 ":                           3 * time.Second,
		"-5":                            0,
		"soon":                          0,
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 02 Jan 2026 03:00:00 GMT": 0, // in the past
		"99999999999999999999":          0, // overflows int64: malformed
	}
	for in, want := range cases {
		if got := outbound.ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSendReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(strings.Repeat("x", 1000)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback})
	for i := 0; i < 20; i++ {
		if res := c.Send(context.Background(), request(srv.URL)); !res.OK() {
			t.Fatalf("Send %d = %+v", i, res)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential sends opened %d connections, want 1", n)
	}
}

// TestSendErrorsNameTheURLWithoutTokens: a receiver URL often carries a
// token (userinfo, query, fragment). Transport errors end up in status,
// Events and logs, so they name the URL without those parts.
func TestSendErrorsNameTheURLWithoutTokens(t *testing.T) {
	slow := slowServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()

	const tokens = "user-in-url:pass-in-url@"
	c := outbound.New(outbound.Options{AllowHTTP: true, AllowedCIDRs: loopback})
	for _, tc := range []struct {
		name, url, want string
		timeout         time.Duration
	}{
		{"refused", "http://" + tokens + closed + "/hook/path?token=query-token&x=1#fragment-token",
			"http://" + closed + "/hook/path", 5 * time.Second},
		{"timeout", strings.Replace(slow.URL, "http://", "http://"+tokens, 1) + "/hook?access_token=query-token",
			slow.URL + "/hook", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request(tc.url)
			req.Timeout = tc.timeout
			res := c.Send(context.Background(), req)
			if res.OK() {
				t.Fatal("Send succeeded")
			}
			msg := res.Err.Error()
			for _, leak := range []string{"user-in-url", "pass-in-url", "query-token", "fragment-token", "x=1", "?", "#"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q contains %q", msg, leak)
				}
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %s", msg, tc.want)
			}
			assertNoSecrets(t, res)
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@example.com:8443/a/b?token=t#f": "https://example.com:8443/a/b",
		"https://example.com/hook":                   "https://example.com/hook",
		"https://example.com/hook?":                  "https://example.com/hook",
		"http://[::1]:80/x?y":                        "http://[::1]:80/x",
		"%zz":                                        "",
	} {
		if got := outbound.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
