#!/usr/bin/env bash
# Installs the CLI tools the deployment checks use into bin/, built from the Go module proxy
# (their download sites are not reachable here). `go install pkg@version` keeps them out of
# go.mod. A tool is rebuilt only when bin/ lacks that exact version.
#   hack/tools.sh            install all
#   hack/tools.sh helm       install one (helm, kustomize, kubeconform)
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# kustomize v5.8.3 needs Go 1.27; v5.8.2 (kustomize/api v0.21.2) builds with Go 1.26.
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/bin"
mkdir -p "$BIN"
export GOBIN="$BIN" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# install NAME PACKAGE VERSION: the binary lands in bin/NAME; bin/.NAME.version records the
# version so a pin change rebuilds it.
install() {
  local name="$1" pkg="$2" version="$3" stamp="$BIN/.$1.version"
  if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
    return 0
  fi
  echo "installing $name $version" >&2
  local ldflags="-s -w"
  [[ "$name" == helm ]] && ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
  [[ "$name" == kustomize ]] && ldflags+=" -X sigs.k8s.io/kustomize/api/provenance.version=$version"
  go install -trimpath -ldflags "$ldflags" "$pkg@$version"
  echo "$version" > "$stamp"
}

want="${1:-all}"
[[ "$want" == all || "$want" == helm ]] && install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
[[ "$want" == all || "$want" == kustomize ]] && install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
[[ "$want" == all || "$want" == kubeconform ]] && install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
exit 0
