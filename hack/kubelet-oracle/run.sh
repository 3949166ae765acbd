#!/usr/bin/env bash
# Rewrites internal/resolvconf/testdata/kubelet.json from the real kubelet (see main.go).
# main.go imports k8s.io/kubernetes, which dns-tuner's go.mod must not require, so it is built in
# a throwaway module that requires k8s.io/kubernetes with its staging modules pinned to their
# published versions, as hack/build-envtest.sh does. Arguments go to the oracle:
#   hack/kubelet-oracle/run.sh [-out FILE] [-n CASES] [-seed N]
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
STAGING_VERSION="${STAGING_VERSION:-v0.${K8S_VERSION#1.}}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

cd "$work"
go mod init kubelet-oracle >/dev/null 2>&1
go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" >/dev/null
modfile="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${K8S_VERSION}.mod"
args=("-require=k8s.io/kubernetes@v${K8S_VERSION}")
while read -r mod; do
  args+=("-replace=${mod}=${mod}@${STAGING_VERSION}")
done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging/ {print $1}' "$modfile")
go mod edit "${args[@]}"
# The build tag keeps main.go out of dns-tuner's own build and `go mod tidy`.
sed '/^\/\/go:build ignore$/d' "$ROOT/hack/kubelet-oracle/main.go" > main.go
go mod tidy >/dev/null 2>&1 || go mod tidy
go build -o oracle .

cd "$here"
has_out=false
for a in "$@"; do [[ "$a" == -out || "$a" == -out=* ]] && has_out=true; done
if ! $has_out; then set -- -out "$ROOT/internal/resolvconf/testdata/kubelet.json" "$@"; fi
"$work/oracle" -version "v${K8S_VERSION}" "$@"
