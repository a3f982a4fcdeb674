#!/usr/bin/env bash
# Builds every libFuzzer target with clang and runs each for SECONDS seconds
# on its corpus (fuzz/corpus/<target without fuzz_> beside its source). New
# inputs that raise coverage are written to a scratch directory, not the
# repository. A crash, a failed check or a sanitizer report (undefined
# behaviour included) fails the run and leaves its reproducer under
# build-fuzz/crashes. A target without a corpus fails the run too.
#
# usage: run-fuzzers.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
[ "$seconds" -gt 0 ] || { echo "fuzz: skipped"; exit 0; }

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DZWRM_FUZZ=ON -DZWRM_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz-targets

# UBSan prints a report and continues unless halt_on_error is set.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

mkdir -p build-fuzz/crashes
status=0
for target in build-fuzz/fuzz/*; do
  name=$(basename "$target")
  corpus=$(find . -path ./build-fuzz -prune -o -type d -path "*/fuzz/corpus/${name#fuzz_}" -print | head -n 1)
  if [ -z "$corpus" ]; then
    echo "fuzz: $name has no corpus; add its seeds under fuzz/corpus/${name#fuzz_} beside its source" >&2
    status=1
    continue
  fi
  scratch=build-fuzz/corpus-$name
  mkdir -p "$scratch"
  echo "fuzz: $name for ${seconds}s (corpus $corpus)"
  if ! "$target" -max_total_time="$seconds" -print_final_stats=0 \
      -artifact_prefix=build-fuzz/crashes/"$name"- "$scratch" "$corpus" >build-fuzz/"$name".log 2>&1; then
    echo "fuzz: $name FAILED; see build-fuzz/$name.log and build-fuzz/crashes/" >&2
    status=1
  fi
done
exit $status
