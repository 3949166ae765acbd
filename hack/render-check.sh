#!/usr/bin/env bash
# Deployment checks that need no cluster: helm lint and helm template for every certificate
# mode and the representative values in charts/dns-tuner/ci/, kustomize builds of config/
# (default, every component, samples), and the Dockerfile's exact `go build` line.
#
# kubeconform is not run: it validates against JSON schemas it downloads, which is not
# possible here, and with -ignore-missing-schemas it would validate nothing. Instead
# test/e2e/deploy applies every rendered object to a real kube-apiserver (envtest, server-side
# apply, dry-run, strict field validation), which is the stronger check.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
hack/tools.sh helm
hack/tools.sh kustomize
HELM=bin/helm KUSTOMIZE=bin/kustomize CHART=charts/dns-tuner
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

step() { echo "== $*" >&2; }

step "helm lint"
"$HELM" lint --strict "$CHART"
for values in "$CHART"/ci/*-values.yaml; do
  name="$(basename "$values" -values.yaml)"
  step "helm lint + template: $name"
  "$HELM" lint --strict "$CHART" -f "$values" >/dev/null
  "$HELM" template dns-tuner "$CHART" -n dns-tuner-system -f "$values" > "$out/helm-$name.yaml"
done

# Misconfigurations must fail rendering, not render a webhook without a certificate.
step "helm template rejects bad values"
if "$HELM" template dns-tuner "$CHART" --set certs.mode=provided >/dev/null 2>&1; then
  echo "certs.mode=provided without secretName/caBundle rendered" >&2; exit 1
fi
if "$HELM" template dns-tuner "$CHART" --set certs.mode=cert-manger >/dev/null 2>&1; then
  echo "an unknown certs.mode rendered" >&2; exit 1
fi
if "$HELM" template dns-tuner "$CHART" --set networkPolicy.enabled=true >/dev/null 2>&1; then
  echo "networkPolicy.enabled without webhookFrom rendered" >&2; exit 1
fi

step "kustomize build config/default"
"$KUSTOMIZE" build config/default > "$out/kustomize-default.yaml"
step "kustomize build config/default + every component"
mkdir -p "$out/all"
rel() { realpath --relative-to="$out/all" "$ROOT/config/$1"; } # kustomize wants relative roots
cat > "$out/all/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$(rel default)]
components: [$(rel certmanager), $(rel prometheus), $(rel rbac/inspection), $(rel rbac/cache-warming), $(rel networkpolicy)]
YAML
"$KUSTOMIZE" build "$out/all" > "$out/kustomize-all.yaml"
step "kustomize build config/samples"
"$KUSTOMIZE" build config/samples > "$out/kustomize-samples.yaml"
# kustomize prints deprecation warnings for old fields (commonLabels, patchesStrategicMerge,
# vars, bases); fail on any.
if "$KUSTOMIZE" build config/default 2>&1 >/dev/null | grep -i deprecat; then
  echo "deprecated kustomize fields in config/" >&2; exit 1
fi

step "Dockerfile build line"
# Run the Dockerfile's own `go build` line so the image build cannot rot unnoticed.
line="$(grep -E '^[[:space:]]+go build' Dockerfile | sed 's/^[[:space:]]*//')"
env_line="$(grep -B1 -E '^[[:space:]]+go build' Dockerfile | head -1 | sed 's/^[[:space:]]*//; s/[[:space:]]*\\$//')"
[[ -n "$line" && "$env_line" == CGO_ENABLED=0* ]] || { echo "Dockerfile build line not found" >&2; exit 1; }
TARGETOS=linux TARGETARCH="$(go env GOARCH)" VERSION=render-check \
  bash -c "cd '$ROOT' && export TARGETOS TARGETARCH VERSION; env ${env_line} ${line//\/out\//$out/}"
[[ "$("$out/dns-tuner" version)" == render-check ]]
if ldd "$out/dns-tuner" >/dev/null 2>&1; then echo "dns-tuner is not static" >&2; exit 1; fi
go_mod="$(awk '$1 == "go" {print $2}' go.mod)"
grep -q "^ARG GO_VERSION=${go_mod}\$" Dockerfile || { echo "Dockerfile GO_VERSION differs from go.mod's go ${go_mod}" >&2; exit 1; }

step "ok: $(ls "$out"/*.yaml | wc -l) renders"
