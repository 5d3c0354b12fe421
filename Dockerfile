# syntax=docker/dockerfile:1
# One image with every labhook binary: /manager, /webhookserver, /receiver,
# /devenv. The Deployment picks the binary with `command`.

FROM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Dependencies first, so a source change does not download them again.
# api/wire is a module of its own that go.mod replaces with this directory.
COPY go.mod go.sum ./
COPY api/wire/go.mod api/wire/go.sum ./api/wire/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/...

# distroless/static: no shell, no package manager, CA certificates and
# tzdata only. nonroot is UID/GID 65532; it is repeated numerically so
# Kubernetes' runAsNonRoot can verify it.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/manager"]
