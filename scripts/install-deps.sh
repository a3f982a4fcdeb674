#!/usr/bin/env bash
# Installs the Debian 12 packages zwrm needs to build, run and test, skipping
# those already installed. Needs root; touches nothing else.
set -euo pipefail

packages=(
  # build
  cmake g++ make pkg-config
  libsqlite3-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libexpected-dev
  libssl-dev libtomlplusplus-dev libgtest-dev libidn2-dev
  # guest kernel: source and build tools
  linux-source-6.1 bc flex bison libelf-dev lz4 xz-utils
  # runs: the VMM, image and volume tools
  qemu-system-x86 e2fsprogs busybox-static mmdebstrap ca-certificates
  # tests: network namespaces for the egress proxy's test servers
  iproute2
  # fuzz targets
  clang-14 libclang-rt-14-dev
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: error: run as root (it installs Debian packages with apt-get)" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
