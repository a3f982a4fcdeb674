#!/usr/bin/env bash
# Builds every libFuzzer target with clang and runs each for SECONDS seconds
# on its corpus (fuzz/corpus/<target> beside its source). New inputs that
# raise coverage are written to a scratch directory, not the repository;
# a crash fails the run and leaves its reproducer under build-fuzz/crashes.
#
# usage: run-fuzzers.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
[ "$seconds" -gt 0 ] || { echo "fuzz: skipped"; exit 0; }

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DZWRM_FUZZ=ON -DZWRM_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz-targets

mkdir -p build-fuzz/crashes
status=0
for target in build-fuzz/fuzz/*; do
  name=$(basename "$target")
  corpus=$(find . -path ./build-fuzz -prune -o -type d -path "*/fuzz/corpus/${name#fuzz_}" -print | head -n 1)
  scratch=build-fuzz/corpus-$name
  mkdir -p "$scratch"
  echo "fuzz: $name for ${seconds}s (corpus ${corpus:-none})"
  if ! "$target" -max_total_time="$seconds" -print_final_stats=0 \
      -artifact_prefix=build-fuzz/crashes/"$name"- "$scratch" ${corpus:+"$corpus"} >build-fuzz/"$name".log 2>&1; then
    echo "fuzz: $name FAILED; see build-fuzz/$name.log and build-fuzz/crashes/" >&2
    status=1
  fi
done
exit $status
