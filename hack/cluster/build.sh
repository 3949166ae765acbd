#!/usr/bin/env bash
# Builds the node binaries the real cluster needs into $CLUSTER_BIN (default bin/cluster/<k8s>):
# kubelet, kube-proxy, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes from
# the Go module proxy, staging modules pinned to their published versions as in
# hack/build-envtest.sh), crictl (sigs.k8s.io/cri-tools: Debian 12 does not package it),
# coredns and a tiny static pause. Each binary is built once; present binaries are reused, so
# a second run takes milliseconds. Cold: about 8 minutes on 2 idle cores.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
STAGING_VERSION="${STAGING_VERSION:-v0.${K8S_VERSION#1.}}"
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-latest}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER_BIN="${CLUSTER_BIN:-$ROOT/bin/cluster/${K8S_VERSION}}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

if [[ "${1:-}" == "--print-dir" ]]; then echo "$CLUSTER_BIN"; exit 0; fi
mkdir -p "$CLUSTER_BIN"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

K8S_CMDS=(kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
missing() { local b; for b in "$@"; do [[ -x "$CLUSTER_BIN/$b" ]] || return 0; done; return 1; }
t0=$SECONDS
log() { echo "[build $((SECONDS - t0))s] $*" >&2; }

build_k8s() {
  missing "${K8S_CMDS[@]}" || return 0
  log "building ${K8S_CMDS[*]} v${K8S_VERSION} (several minutes the first time)"
  mkdir -p "$work/k8s" && cd "$work/k8s"
  go mod init cluster-k8s >/dev/null 2>&1
  go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" >/dev/null
  local modfile args=("-require=k8s.io/kubernetes@v${K8S_VERSION}") mod pkgs=() b imports=""
  modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${K8S_VERSION}.mod"
  while read -r mod; do args+=("-replace=${mod}=${mod}@${STAGING_VERSION}"); done \
    < <(awk '$2 == "=>" && $3 ~ /^\.\/staging/ {print $1}' "$modfile")
  go mod edit "${args[@]}"
  for b in "${K8S_CMDS[@]}"; do
    pkgs+=("k8s.io/kubernetes/cmd/$b"); imports+="import _ \"k8s.io/kubernetes/cmd/$b\""$'\n'
  done
  printf '//go:build tools\n\npackage tools\n\n%s' "$imports" > tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
  mkdir -p out
  # one go build for all five: their shared packages compile once
  go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${K8S_VERSION#1.}" \
    -o out/ "${pkgs[@]}"
  for b in "${K8S_CMDS[@]}"; do mv "out/$b" "$CLUSTER_BIN/$b"; done
  log "k8s binaries done"
}

build_crictl() {
  missing crictl || return 0
  log "building crictl (sigs.k8s.io/cri-tools@${CRI_TOOLS_VERSION})"
  GOBIN="$work/gobin" go install "sigs.k8s.io/cri-tools/cmd/crictl@${CRI_TOOLS_VERSION}"
  mv "$work/gobin/crictl" "$CLUSTER_BIN/crictl"
}

build_coredns() {
  missing coredns || return 0
  local v
  v="$(cd "$work" && go list -m -versions github.com/coredns/coredns | tr ' ' '\n' | grep "^${COREDNS_VERSION}\." | sort -V | tail -1)"
  log "building coredns ${v}"
  GOBIN="$work/gobin" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@${v}"
  mv "$work/gobin/coredns" "$CLUSTER_BIN/coredns"
}

build_pause() {
  missing pause || return 0
  log "building pause"
  mkdir -p "$work/pause" && cd "$work/pause"
  go mod init pause >/dev/null 2>&1
  cat > main.go <<'GO'
// pause holds a pod's namespaces: it sleeps until SIGTERM or SIGINT and reaps nothing else.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
GO
  go build -trimpath -ldflags "-s -w" -o "$CLUSTER_BIN/pause" .
}

build_pause
build_crictl
build_coredns
build_k8s
log "all in $CLUSTER_BIN"
echo "$CLUSTER_BIN"
