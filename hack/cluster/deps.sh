#!/usr/bin/env bash
# Installs the node's runtime from Debian when missing: containerd (1.6), runc and the CNI
# plugins (bridge, host-local, loopback, portmap). Needs root. No service is started: the
# cluster tooling runs containerd itself, inside its network namespace.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
[[ ${#need[@]} -eq 0 ]] && exit 0
echo "apt-get install ${need[*]}" >&2
# keep the package's own service from starting: the tooling owns containerd's lifetime
policy=/usr/sbin/policy-rc.d
created=""
if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; created=1; fi
trap '[[ -n $created ]] && rm -f $policy' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
  { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
