#!/usr/bin/env bash
# Builds the control-plane binaries envtest needs (kube-apiserver, etcd) from the Go module
# proxy, because the usual download site for envtest binaries is not reachable here.
# Output: $ENVTEST_DIR (default bin/k8s/<version>-linux-<arch>), the layout setup-envtest uses,
# so KUBEBUILDER_ASSETS can point at it. Binaries are reused when present.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
STAGING_VERSION="${STAGING_VERSION:-v0.${K8S_VERSION#1.}}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCH="$(go env GOARCH)"
ENVTEST_DIR="${ENVTEST_DIR:-$ROOT/bin/k8s/${K8S_VERSION}-linux-${ARCH}}"

if [[ "${1:-}" == "--print-dir" ]]; then echo "$ENVTEST_DIR"; exit 0; fi

mkdir -p "$ENVTEST_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

build_apiserver() {
  echo "building kube-apiserver v${K8S_VERSION} (about 10 minutes on 2 cores the first time)" >&2
  mkdir -p "$work/apiserver" && cd "$work/apiserver"
  go mod init envtest-apiserver >/dev/null 2>&1
  go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" >/dev/null
  local modfile
  modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${K8S_VERSION}.mod"
  # k8s.io/kubernetes replaces every staging module with ./staging; pin them to the
  # published versions instead so the module graph resolves from the proxy.
  local args=("-require=k8s.io/kubernetes@v${K8S_VERSION}")
  while read -r mod; do
    args+=("-replace=${mod}=${mod}@${STAGING_VERSION}")
  done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging/ {print $1}' "$modfile")
  go mod edit "${args[@]}"
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy >/dev/null 2>&1 || go mod tidy
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#1.}" \
    -o "$ENVTEST_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$ENVTEST_DIR/kube-apiserver.tmp" "$ENVTEST_DIR/kube-apiserver"
}

build_etcd() {
  echo "building etcd ${ETCD_VERSION}" >&2
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init envtest-etcd >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1
  go mod tidy >/dev/null 2>&1 || go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$ENVTEST_DIR/etcd.tmp" .
  mv "$ENVTEST_DIR/etcd.tmp" "$ENVTEST_DIR/etcd"
}

[[ -x "$ENVTEST_DIR/etcd" ]] || build_etcd
[[ -x "$ENVTEST_DIR/kube-apiserver" ]] || build_apiserver
echo "$ENVTEST_DIR"
