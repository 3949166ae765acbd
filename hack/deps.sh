#!/usr/bin/env bash
# Installs the system packages the tests need on a fresh Debian machine: gcc and musl-gcc
# build the real resolver probes and test images, unshare/mount isolate each probe's
# /etc/resolv.conf; ip, iptables and nft build the DNS lab's network namespaces (the
# real-kernel backend of hack/dnslab). Nothing is installed when everything is already there.
# `make deps` runs it (and so does `make test`); it is the only step of the build that
# installs system packages.
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

# The inspection tests use the real tini-static and static busybox from Debian's packages,
# downloaded once into the git-ignored bin/debs (internal/inspect/imagetest/debs.go):
# apt-get download needs package lists, which a fresh machine may not have yet.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
debs=()
for pkg in tini busybox-static; do
  compgen -G "$root/bin/debs/${pkg}_*.deb" >/dev/null || debs+=("$pkg")
done

[[ ${#need[@]} -eq 0 && ${#debs[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "hack/deps.sh: missing ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [[ ${#need[@]} -gt 0 ]]; then
  echo "installing ${need[*]}" >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ${#debs[@]} -gt 0 ]]; then
  echo "downloading ${debs[*]} into bin/debs" >&2
  mkdir -p "$root/bin/debs"
  (cd "$root/bin/debs" && apt-get download -q "${debs[@]}" >/dev/null)
fi
