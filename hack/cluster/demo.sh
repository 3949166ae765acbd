#!/usr/bin/env bash
# make demo-cluster: the real cluster with dns-tuner and sample workloads (glibc and musl
# probes in an enforce namespace, glibc in an unlabelled one), printing what each pod's
# resolv.conf says and how long its lookups take, until Ctrl-C, which tears it all down.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="$ROOT/hack/cluster/cluster.sh"
STATE="${CLUSTER_STATE:-/tmp/dns-tuner-cluster}"
export GOTOOLCHAIN=local
trap '"$CLUSTER" down' EXIT
trap 'exit 130' INT TERM
"$CLUSTER" up || exit 1
"$ROOT/hack/cluster/install.sh" || exit 1
mkdir -p "$STATE/build" && go test -c -o "$STATE/build/cluster.test" "$ROOT/test/cluster" || exit 1
echo "dns-tuner runs in the real cluster; Ctrl-C stops and removes everything." >&2
echo "In another shell: hack/cluster/cluster.sh kubectl get pods -A" >&2
# in the background, so that the traps run as soon as a signal arrives
CLUSTER_DEMO=1 "$CLUSTER" exec "$STATE/build/cluster.test" -test.run '^TestDemo$' -test.v -test.timeout 0 &
demo=$!
trap 'kill -TERM $demo 2>/dev/null; wait $demo 2>/dev/null; "$CLUSTER" down' EXIT
wait $demo
