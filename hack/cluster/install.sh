#!/usr/bin/env bash
# Builds dns-tuner's image without Docker (go-containerregistry: the Dockerfile's content —
# the static binary, user 65532 with distroless' /etc/passwd entries, CA certificates),
# pushes it to the cluster's registry and `helm install`s charts/dns-tuner (self-managed
# certificates) into the cluster started by hack/cluster/cluster.sh up. Idempotent: a second
# run upgrades the release to the current build. Extra arguments go to helm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="$ROOT/hack/cluster/cluster.sh"
STATE="${CLUSTER_STATE:-/tmp/dns-tuner-cluster}"
CLUSTER_BIN="$("$ROOT/hack/cluster/build.sh" --print-dir)"
REGISTRY="${CLUSTER_NODE_IP:-10.200.0.1}:5000"
RELEASE_NS="${RELEASE_NS:-dns-tuner}"
export GOTOOLCHAIN=local
t0=$SECONDS
log() { echo "[install $((SECONDS - t0))s] $*" >&2; }

mkdir -p "$STATE/build"
version="e2e-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo dev)"
# the Dockerfile's build line
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -C "$ROOT" -trimpath -ldflags "-s -w -X main.version=$version" \
  -o "$STATE/build/dns-tuner" ./cmd/dns-tuner
ref="$("$CLUSTER" exec "$CLUSTER_BIN/clusterctl" image -push "$REGISTRY/dns-tuner:$version" \
  -file "/dns-tuner=$STATE/build/dns-tuner:0755" -entrypoint /dns-tuner -cmd serve -user 65532:65532 \
  -nonroot-etc -ca-certs /etc/ssl/certs/ca-certificates.crt)"
log "pushed $ref"
digest="${ref#*@}"
"$CLUSTER" exec "$ROOT/bin/helm" upgrade --install dns-tuner "$ROOT/charts/dns-tuner" \
  --namespace "$RELEASE_NS" --create-namespace --wait --timeout 3m \
  --set image.repository="$REGISTRY/dns-tuner" --set image.tag="$version" --set image.digest="$digest" "$@" >/dev/null
log "helm release dns-tuner ready in namespace $RELEASE_NS"
