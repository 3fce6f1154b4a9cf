#!/usr/bin/env bash
# Membrane setup: everything a fresh Debian 12 machine needs before `npm test` / `npm run demo`.
# Idempotent and fast when nothing changed (a few seconds). Run by the npm pre-scripts.
#
#   1. Debian packages (clang-19, libbpf-dev, bpftool, etcd-server, ...): installed when missing.
#      Without root, prints the exact apt-get command and stops.
#   2. npm ci when node_modules does not match package-lock.json.
#   3. The native addon (node-gyp, explicitly: npm 11 holds back install scripts).
#   4. The BPF objects (clang-19 -target bpf) and vmlinux.h from the running kernel's BTF.
#
# MEMBRANE_SKIP_APT=1 skips step 1 (for machines managed another way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'membrane setup: %s\n' "$*"; }
die() { printf 'membrane setup: %s\n' "$*" >&2; exit 1; }

# What each package is for:
#   clang-19 llvm-19          compile bpf-src/ (-target bpf), llvm-strip/objdump for inspection
#   libbpf-dev libelf-dev zlib1g-dev   headers and libraries the native loader links
#   bpftool                   vmlinux.h generation, inspection in tests
#   iproute2 iptables         namespaces, veth, tc; kube-proxy-style peer in the datapath bench
#   etcd-server etcd-client   the real kvstore the identity tests start
#   iputils-ping curl iperf3 tcpdump wrk   real traffic in kernel tests and benchmarks
#   protobuf-compiler         protoc --decode checks of the flow wire format
#   libprotobuf-dev           google/protobuf/*.proto (timestamp, wrappers) that flow.proto imports;
#                             protoc only Recommends it, and setup installs without recommends
#   prometheus                promtool check metrics
#   openssl                   a throwaway certificate for the Observer server's TLS test
#   dnsmasq                   the real DNS server behind the DNS proxy tests
#   chromium                  headless browser test of the agent's web page
#   make g++ python3          node-gyp (g++ also brings cc for the C probes in tests)
#   procps util-linux mount   sysctl in the test topologies; nsenter, setpriv, flock; mount and
#                             umount of bpffs/cgroup2 (Debian 12 ships them in `mount`, not util-linux)
DEB_PACKAGES=(
  clang-19 llvm-19 libbpf-dev libelf-dev zlib1g-dev bpftool
  iproute2 iptables etcd-server etcd-client
  iputils-ping curl iperf3 tcpdump wrk ethtool
  protobuf-compiler libprotobuf-dev prometheus dnsmasq chromium openssl
  make g++ python3 procps util-linux mount
)

if [[ "${MEMBRANE_SKIP_APT:-0}" != 1 ]]; then
  command -v dpkg-query >/dev/null || die "this setup expects Debian 12 (dpkg-query not found); install the equivalents of: ${DEB_PACKAGES[*]}"
  missing=()
  while read -r pkg status; do
    [[ "$status" == "installed" ]] || missing+=("$pkg")
  done < <(
    for p in "${DEB_PACKAGES[@]}"; do
      s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
      printf '%s %s\n' "$p" "${s:-absent}"
    done
  )
  if ((${#missing[@]} > 0)); then
    cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [[ "$(id -u)" != 0 ]]; then
      die "missing Debian packages: ${missing[*]}
Run this as root, then run the npm command again:
  $cmd"
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's etcd-server and prometheus packages would start system services; policy-rc.d
    # keeps them stopped (tests start their own servers on free ports).
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e "$policy" ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    status=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
    [[ "$own_policy" == 1 ]] && rm -f "$policy"
    ((status == 0)) || die "apt-get install failed (exit $status)"
  fi
fi

# npm ci when node_modules is missing or was installed from another lockfile.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.membrane-lock.sha256
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
  say "installing npm dependencies (npm ci)"
  if ! npm ci --no-fund --no-audit --loglevel=error 2>/tmp/membrane-npm-ci.$$; then
    # The registry this project is developed against has no packages for some other platforms
    # (android, darwin, musl builds of biome/rollup/esbuild...), so the lockfile written here
    # lacks those optional entries and `npm ci` refuses it as "out of sync". `npm install
    # --no-save` installs exactly what the lockfile pins and writes nothing.
    if grep -q 'EUSAGE' /tmp/membrane-npm-ci.$$; then
      say "npm ci refused the lockfile (optional platform packages missing from this registry); installing from it with npm install --no-save"
      npm install --no-save --no-fund --no-audit --loglevel=error
    else
      cat /tmp/membrane-npm-ci.$$ >&2
      rm -f /tmp/membrane-npm-ci.$$
      die "npm ci failed"
    fi
  fi
  rm -f /tmp/membrane-npm-ci.$$
  printf '%s' "$lock_hash" >"$stamp"
fi

node tools/native-build.mjs
node tools/bpf-build.mjs --quiet
