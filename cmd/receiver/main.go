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

// Command receiver is labhook's reference webhook receiver: it verifies each
// message's signature, logs it as JSON and answers 204 (401 when the
// signature is wrong). It verifies v1 signatures with the signing secret,
// from LABHOOK_SIGNING_SECRET or --secret-file (never from a flag value),
// and v1a (Ed25519) signatures with public keys from --public-key,
// LABHOOK_PUBLIC_KEY or the webhookserver's JWKS (--jwks-url).
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/labhook/labhook/internal/receiver"
)

func main() {
	addr := flag.String("bind-address", "127.0.0.1:9000", "Address to listen on.")
	secretFile := flag.String("secret-file", "", "File holding the whsec_ signing secret (hmac-sha256); default: the "+receiver.SecretEnv+" environment variable.")
	publicKeys := flag.String("public-key", "", "Comma-separated whpk_ public keys (ed25519), e.g. from kubectl get whc NAME -o jsonpath='{.status.publicKey}'; default: the "+receiver.PublicKeyEnv+" environment variable.")
	jwksURL := flag.String("jwks-url", "", "The webhookserver's JWKS of the organisation (ed25519), e.g. https://labhook.example.com/api/v1/webhooks/jwks/ORG; fetched again when no key verifies a message.")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg := receiver.Config{SecretFile: *secretFile, JWKSURL: *jwksURL}
	if *publicKeys != "" {
		cfg.PublicKeys = strings.Split(*publicKeys, ",")
	}
	keys, err := receiver.LoadKeys(cfg, os.Getenv)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("cannot listen", "address", *addr, "error", err.Error())
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("receiver listening", "address", ln.Addr().String())
	if err := receiver.Serve(ctx, ln, receiver.NewHandler(keys, log)); err != nil {
		log.Error("receiver stopped", "error", err.Error())
		os.Exit(1)
	}
}
