#!/usr/bin/env bash
# Sets up zwrm on a Debian 12 host and runs a first command in a microVM.
# It installs missing packages, builds zwrm and installs it into /usr/local.
# Then it boots a VM, which builds the guest kernel and the minimal template
# on first use, and prints what the guest reports about itself.
set -euo pipefail
cd "$(dirname "$0")"

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
cmake --install build --prefix /usr/local >/dev/null
echo "setup: installed $(command -v zwrm)"

echo "setup: zwrm run --project demo -- sh -c '...'"
exec zwrm run --project demo -- sh -c \
  'echo "Hello from the guest $(hostname): kernel $(uname -r), $(nproc) vCPU, running as $(id -un) in $(pwd)"; echo "boot id: $(cat /proc/sys/kernel/random/boot_id)"'
