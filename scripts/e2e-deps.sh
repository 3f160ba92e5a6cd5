#!/usr/bin/env bash
# Installs, once and quietly, the Debian packages the network-namespace tests and the lab use.
# Only as root with apt-get; elsewhere it says what is missing and leaves the decision to the
# tests (they skip, or fail when CI=true).
set -euo pipefail
want=(curl nginx-light nftables ethtool iproute2 iputils-ping traceroute socat iperf3 keepalived tmux chromium netsniff-ng bird2)
cmd_of() { case "$1" in nginx-light) echo nginx ;; iproute2) echo ip ;; nftables) echo nft ;; iputils-ping) echo ping ;; netsniff-ng) echo trafgen ;; bird2) echo bird ;; *) echo "$1" ;; esac; }
missing=()
for p in "${want[@]}"; do
  c=$(cmd_of "$p")
  command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "e2e-deps: missing ${missing[*]} (not root or no apt-get): namespace tests will skip, or fail with CI=true" >&2
  exit 0
fi
echo "e2e-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# No service starts from the install (nginx, keepalived): a temporary policy-rc.d refuses it.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
fi
trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
