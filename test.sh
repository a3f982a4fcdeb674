#!/usr/bin/env bash
# Runs zwrm's whole test suite on a Debian 12 host as root: installs missing
# packages, builds, runs unit, integration and security tests (integration
# tests boot real VMs), then each fuzz target for a bounded time.
#
#   ZWRM_FUZZ_SECONDS   seconds per fuzz target (default 30; 0 skips fuzzing)
#   ZWRM_TEST_JOBS      parallel test processes (default: number of CPUs)
set -euo pipefail
cd "$(dirname "$0")"

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j "${ZWRM_TEST_JOBS:-$(nproc)}"

./scripts/run-fuzzers.sh "${ZWRM_FUZZ_SECONDS:-30}"
