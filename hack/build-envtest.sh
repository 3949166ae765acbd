#!/usr/bin/env bash
# Provides the control-plane binaries envtest needs (kube-apiserver, etcd) in $ENVTEST_DIR
# (default bin/k8s/<version>-linux-<arch>, setup-envtest's layout), so KUBEBUILDER_ASSETS can
# point at it, and prints that directory. In order:
#   1. binaries already there: nothing to do (this is the common case and takes milliseconds);
#   2. controller-runtime's setup-envtest (the release matching go.mod's controller-runtime)
#      downloads them, bounded by SETUP_ENVTEST_TIMEOUT (60 s): seconds on an open network;
#   3. otherwise they are built from the Go module proxy (about 10 minutes on 2 cores), for
#      networks that reach the module proxy but not the envtest download site.
# Set SETUP_ENVTEST_TIMEOUT=0 to skip step 2.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
STAGING_VERSION="${STAGING_VERSION:-v0.${K8S_VERSION#1.}}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"
SETUP_ENVTEST_TIMEOUT="${SETUP_ENVTEST_TIMEOUT:-60}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCH="$(go env GOARCH)"
ENVTEST_DIR="${ENVTEST_DIR:-$ROOT/bin/k8s/${K8S_VERSION}-linux-${ARCH}}"

if [[ "${1:-}" == "--print-dir" ]]; then echo "$ENVTEST_DIR"; exit 0; fi
have() { [[ -x "$ENVTEST_DIR/etcd" && -x "$ENVTEST_DIR/kube-apiserver" ]]; }
if have; then echo "$ENVTEST_DIR"; exit 0; fi

mkdir -p "$ENVTEST_DIR"
work="$(mktemp -d)"
# setup-envtest leaves its store read-only
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOTOOLCHAIN=local

# download: setup-envtest of the controller-runtime minor release go.mod uses (its module is
# tagged separately, so take the newest patch the proxy knows), run from a scratch directory
# so this module's go.mod is not involved.
download() {
  [[ "$SETUP_ENVTEST_TIMEOUT" != 0 ]] || return 1
  local cr minor version dir
  cr="$(awk '$1 == "sigs.k8s.io/controller-runtime" {print $2; exit}' "$ROOT/go.mod")"
  minor="${cr%.*}"
  version="$(cd "$work" && timeout 20 go list -m -versions sigs.k8s.io/controller-runtime/tools/setup-envtest 2>/dev/null |
    tr ' ' '\n' | grep "^${minor}\." | sort -V | tail -1)" || true
  version="${version:-latest}"
  echo "setup-envtest@${version}: downloading envtest ${K8S_VERSION} (at most ${SETUP_ENVTEST_TIMEOUT}s)" >&2
  dir="$(cd "$work" && GOFLAGS= timeout "$SETUP_ENVTEST_TIMEOUT" go run "sigs.k8s.io/controller-runtime/tools/setup-envtest@${version}" \
    use "$K8S_VERSION" --bin-dir "$work/setup-envtest" -p path)" || return 1
  [[ -x "$dir/etcd" && -x "$dir/kube-apiserver" ]] || return 1
  for b in etcd kube-apiserver kubectl; do
    [[ -e "$dir/$b" ]] || continue
    cp "$dir/$b" "$ENVTEST_DIR/$b.tmp" && chmod 0755 "$ENVTEST_DIR/$b.tmp" && mv "$ENVTEST_DIR/$b.tmp" "$ENVTEST_DIR/$b"
  done
}

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

if ! download; then
  echo "setup-envtest could not download envtest ${K8S_VERSION}: building it from the Go module proxy" >&2
  export GOFLAGS=-mod=mod CGO_ENABLED=0
  [[ -x "$ENVTEST_DIR/etcd" ]] || build_etcd
  [[ -x "$ENVTEST_DIR/kube-apiserver" ]] || build_apiserver
fi
have
echo "$ENVTEST_DIR"
