#!/usr/bin/env bash
# Builds the zwrm guest kernel from Debian's linux-source tarball.
#
# usage: build-kernel.sh SOURCE_TARBALL CONFIG_FRAGMENT OUTPUT_DIR [JOBS]
#
# Writes OUTPUT_DIR/bzImage (for QEMU), OUTPUT_DIR/vmlinux (for Firecracker)
# and OUTPUT_DIR/config. Progress goes to stdout as "kernel: ..." lines and the
# full compiler output to OUTPUT_DIR/build.log. The caller owns caching:
# OUTPUT_DIR is filled only when the whole build succeeded.
set -euo pipefail

tarball=$1
fragment=$2
output=$3
jobs=${4:-$(nproc)}

say() { printf 'kernel: %s\n' "$*"; }
fail() { printf 'kernel: error: %s\n' "$*" >&2; exit 1; }

for tool in make gcc flex bison bc lz4 tar xz; do
  command -v "$tool" >/dev/null || fail "$tool is missing; install the kernel build tools (see README)"
done
[ -r "$tarball" ] || fail "kernel source $tarball is missing; install linux-source-6.1"
[ -r "$fragment" ] || fail "config fragment $fragment is missing"

mkdir -p "$output"
work=$(mktemp -d "$output/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$output/build.log
: >"$log"

say "extracting $(basename "$tarball")"
tar -xf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)

say "configuring: tinyconfig + $(basename "$fragment")"
make -C "$src" tinyconfig >>"$log" 2>&1
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" >>"$log" 2>&1
make -C "$src" olddefconfig >>"$log" 2>&1

# merge_config.sh only warns when Kconfig drops a value (an unmet
# dependency), so check every line of the fragment against the result.
missing=()
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=n) option=${line%=n}
                grep -q "^$option=" "$src/.config" && missing+=("$line") ;;
    CONFIG_*=*) grep -qx "$line" "$src/.config" || missing+=("$line") ;;
  esac
done <"$fragment"
if [ ${#missing[@]} -gt 0 ]; then
  fail "Kconfig did not apply: ${missing[*]} (see $log)"
fi

# Kbuild prints one "  CC ..." line per object; counting them gives progress.
# The total is an estimate from a previous build of this configuration.
expected=1100
say "compiling with $jobs jobs (about $expected objects)"
start=$SECONDS
make -C "$src" -j"$jobs" bzImage vmlinux 2>&1 | tee -a "$log" | {
  count=0
  last=$SECONDS
  while IFS= read -r line; do
    case "$line" in
      *" CC "*|*" AS "*) count=$((count + 1)) ;;
    esac
    if [ $((SECONDS - last)) -ge 10 ]; then
      say "compiled $count objects, $((SECONDS - start)) s"
      last=$SECONDS
    fi
  done
}
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "make failed; the last lines of $log show why"

cp "$src/arch/x86/boot/bzImage" "$output/bzImage"
cp "$src/vmlinux" "$output/vmlinux"
cp "$src/.config" "$output/config"
say "built bzImage and vmlinux in $((SECONDS - start)) s"
