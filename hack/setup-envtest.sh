#!/usr/bin/env bash
# Provides kube-apiserver and etcd for envtest and `make dev` without
# downloading any binary: when they are absent they are built from source
# through the Go module proxy, in throwaway modules, and put where
# setup-envtest would put them. Prints the assets directory on stdout.
#
#   KUBEBUILDER_ASSETS   use this directory instead of the default
#   ENVTEST_K8S_VERSION  kube-apiserver version (default 1.37.2)
#   ENVTEST_ETCD_VERSION etcd version (default 3.7.3)
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.7.3}"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
ASSETS="${KUBEBUILDER_ASSETS:-$DATA_HOME/kubebuilder-envtest/k8s/${K8S_VERSION}-${GOOS}-${GOARCH}}"

say() { echo "setup-envtest: $*" >&2; }

mkdir -p "$ASSETS"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

build_apiserver() {
  say "building kube-apiserver v${K8S_VERSION} from source (first time only, ~8 minutes on 2 cores)"
  local mod="$work/apiserver" minor="${K8S_VERSION#*.}"
  minor="${minor%%.*}"
  mkdir -p "$mod"
  # k8s.io/kubernetes points its staging modules at ./staging; replace each
  # one with the published v0.<minor>.<patch> module of the same release.
  local kmod
  kmod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  {
    echo "module labhook.io/hack/envtest-apiserver"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
    echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    echo
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$kmod" |
      awk -v v="v0.${K8S_VERSION#*.}" '{print "replace " $1 " => " $1 " " v}'
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  local pkg=k8s.io/component-base/version
  (cd "$mod" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}")
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$ASSETS/kube-apiserver" \
    -ldflags "-s -w -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor} -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z" \
    k8s.io/kubernetes/cmd/kube-apiserver)
}

build_etcd() {
  say "building etcd v${ETCD_VERSION} from source (first time only, ~1 minute)"
  local mod="$work/etcd"
  mkdir -p "$mod"
  printf 'module labhook.io/hack/envtest-etcd\n\ngo %s\n' "$(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')" >"$mod/go.mod"
  (cd "$mod" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null 2>&1)
  (cd "$mod" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$ASSETS/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3)
}

[ -x "$ASSETS/etcd" ] || build_etcd
[ -x "$ASSETS/kube-apiserver" ] || build_apiserver
if [ ! -x "$ASSETS/kubectl" ] && command -v kubectl >/dev/null 2>&1; then
  ln -sf "$(command -v kubectl)" "$ASSETS/kubectl"
fi
"$ASSETS/kube-apiserver" --version >&2
echo "$ASSETS"
