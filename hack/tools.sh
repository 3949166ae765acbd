#!/usr/bin/env bash
# Installs the CLI tools the deployment checks use into bin/, built from the Go module proxy
# (their download sites are not reachable here). `go install pkg@version` keeps them out of
# go.mod. A tool is rebuilt only when bin/ lacks that exact version.
#   hack/tools.sh            install all
#   hack/tools.sh helm       install one (helm, kustomize, crds)
# kubeconform is not installed: its schemas are downloaded at run time, which is not possible
# here; test/e2e/deploy checks every rendered object against a real kube-apiserver instead.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_STAMP="$HELM_VERSION+k8s1.37"
# kustomize v5.8.3 needs Go 1.27; v5.8.2 (kustomize/api v0.21.2) builds with Go 1.26.
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"

# CRDs test/e2e/deploy installs into envtest so the chart's optional objects meet real schemas.
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.21.2}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/bin"
mkdir -p "$BIN"
export GOBIN="$BIN" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# install NAME PACKAGE VERSION [STAMP]: the binary lands in bin/NAME; bin/.NAME.version
# records VERSION (or STAMP, for build-flag changes) so a pin change rebuilds it.
install() {
  local name="$1" pkg="$2" version="$3" want="${4:-$3}" stamp="$BIN/.$1.version"
  if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  echo "installing $name $version" >&2
  local ldflags="-s -w"
  # helm's release Makefile stamps the Kubernetes version it was built against (client-go
  # v0.37 -> 1.37); without it `helm template` assumes 1.20 and lint checks deprecations
  # against 1.20.
  [[ "$name" == helm ]] && ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37"
  [[ "$name" == kustomize ]] && ldflags+=" -X sigs.k8s.io/kustomize/api/provenance.version=$version"
  go install -trimpath -ldflags "$ldflags" "$pkg@$version"
  echo "$want" > "$stamp"
}

# crds: cert-manager's Certificate/Issuer and prometheus-operator's ServiceMonitor CRDs, copied
# from their Go modules (plain YAML in the module zips) into bin/crds.
crds() {
  local stamp="$BIN/.crds.version" want="$CERT_MANAGER_VERSION/$PROMETHEUS_OPERATOR_VERSION"
  if [[ -d "$BIN/crds" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  echo "fetching CRDs cert-manager $CERT_MANAGER_VERSION, prometheus-operator $PROMETHEUS_OPERATOR_VERSION" >&2
  local tmp cm po
  tmp="$(mktemp -d)"
  # Outside any module, so go.mod and go.sum stay untouched.
  cm="$(cd "$tmp" && go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  po="$(cd "$tmp" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  rm -rf "$tmp" "$BIN/crds" && mkdir -p "$BIN/crds"
  cp "$cm/deploy/crds/cert-manager.io_certificates.yaml" "$cm/deploy/crds/cert-manager.io_issuers.yaml" \
    "$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$BIN/crds/"
  chmod 644 "$BIN"/crds/*.yaml
  echo "$want" > "$stamp"
}

want="${1:-all}"
[[ "$want" == all || "$want" == helm ]] && install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$HELM_STAMP"
[[ "$want" == all || "$want" == kustomize ]] && install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
[[ "$want" == all || "$want" == crds ]] && crds
exit 0
