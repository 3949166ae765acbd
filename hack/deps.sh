#!/usr/bin/env bash
# Installs the system packages the tests need on a fresh Debian machine: gcc and musl-gcc
# build the real resolver probes and test images, unshare/mount isolate each probe's
# /etc/resolv.conf. Nothing is installed when everything is already there. `make deps` runs it
# (and so does `make test`); it is the only step of the build that installs system packages.
set -euo pipefail

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v musl-gcc >/dev/null || need+=(musl-tools)
[[ -e /lib/ld-musl-x86_64.so.1 || "$(uname -m)" != x86_64 ]] || need+=(musl)
command -v unshare >/dev/null || need+=(util-linux)
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
