#!/usr/bin/env bash
# Installs the system packages the tests need on a fresh Debian machine: gcc and musl-gcc
# build the real resolver probes and test images, unshare/mount isolate each probe's
# /etc/resolv.conf; ip, iptables and nft build the DNS lab's network namespaces (the
# real-kernel backend of hack/dnslab). Nothing is installed when everything is already there.
set -euo pipefail

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v musl-gcc >/dev/null || need+=(musl-tools)
[[ -e /lib/ld-musl-x86_64.so.1 || "$(uname -m)" != x86_64 ]] || need+=(musl)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v make >/dev/null || need+=(make)
[[ ${#need[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "hack/deps.sh: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
