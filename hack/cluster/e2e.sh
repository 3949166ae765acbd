#!/usr/bin/env bash
# make e2e-cluster: bring the real cluster up, helm install dns-tuner, run test/cluster inside
# the cluster's network namespace, tear everything down; exit 0 only if every step passed.
# Prints how long each phase took. KEEP_CLUSTER=1 leaves the cluster running for a look.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="$ROOT/hack/cluster/cluster.sh"
STATE="${CLUSTER_STATE:-/tmp/dns-tuner-cluster}"
export GOTOOLCHAIN=local
times=()
phase() {
  local name=$1 t0=$SECONDS rc; shift
  "$@"; rc=$?
  times+=("$name $((SECONDS - t0))s (exit $rc)")
  return $rc
}
report() { echo "e2e-cluster times: ${times[*]}" >&2; }
teardown() {
  if [[ "${KEEP_CLUSTER:-}" == 1 ]]; then echo "KEEP_CLUSTER=1: cluster left running; hack/cluster/cluster.sh down ends it" >&2
  else phase down "$CLUSTER" down; fi
  report
}
trap teardown EXIT

export HELM="$ROOT/bin/helm" CHART="$ROOT/charts/dns-tuner"
compile_tests() { mkdir -p "$STATE/build" && go test -c -o "$STATE/build/cluster.test" "$ROOT/test/cluster"; }
run_tests() { "$CLUSTER" exec "$STATE/build/cluster.test" -test.v -test.count=1 -test.timeout 15m -test.skip '^TestDemo$' ${TEST_RUN:+-test.run "$TEST_RUN"}; }

phase up "$CLUSTER" up || exit 1
phase install "$ROOT/hack/cluster/install.sh" || { "$CLUSTER" kubectl -n dns-tuner get pods -o wide >&2; exit 1; }
phase compile-tests compile_tests || exit 1
phase test run_tests || exit 1
