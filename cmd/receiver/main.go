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
// signature is wrong). The signing secret comes from LABHOOK_SIGNING_SECRET
// or --secret-file, never from a flag value.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/labhook/labhook/internal/receiver"
)

func main() {
	addr := flag.String("bind-address", "127.0.0.1:9000", "Address to listen on.")
	secretFile := flag.String("secret-file", "", "File holding the whsec_ signing secret; default: the "+receiver.SecretEnv+" environment variable.")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	secret, err := receiver.LoadSecret(*secretFile, os.Getenv)
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
	if err := receiver.Serve(ctx, ln, receiver.NewHandler(secret, log)); err != nil {
		log.Error("receiver stopped", "error", err.Error())
		os.Exit(1)
	}
}
