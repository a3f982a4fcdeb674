#!/bin/bash
# Measures what one zwrm run costs the host beyond guest RAM: QEMU's resident
# memory outside the guest RAM mapping, and the maximum number of tasks
# (threads) that QEMU and the supervisor had at once. The numbers size vmm_memory_ceiling() and
# kRunPidsMax in host/cgroup/limits.h.
#
# Usage (root, zwrm built, template cache present):
#   host/cgroup/measure_overhead.sh CPUS [TB_SIZE_MIB [TEMPLATE]]
# TB_SIZE_MIB adds tb-size=N to QEMU's -accel tcg option through a wrapper
# placed first in PATH; without it QEMU's default translation cache is used.
#
# The guest writes 400 MiB to a tmpfs (touching most of its 512 MiB), runs a shell loop (growing the TCG translation cache) and writes
# 64 MiB to /workspace with fsync (starting QEMU's block I/O worker threads).
# With TEMPLATE debian it also byte-compiles Python's standard library, which
# runs far more distinct guest code and so fills more of the translation cache.
set -euo pipefail

cpus=${1:?usage: $0 CPUS [TB_SIZE_MIB]}
tb_size=${2:-}
template=${3:-minimal}
zwrm=${ZWRM:-$(dirname "$0")/../../build/bin/zwrm}
work=$(mktemp -d /tmp/zwrm-measure.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [[ -n $tb_size ]]; then
  real_qemu=$(command -v qemu-system-x86_64)
  cat > "$work/qemu-system-x86_64" <<WRAPPER
#!/bin/bash
args=()
for arg in "\$@"; do
  [[ \$arg == tcg ]] && arg="tcg,tb-size=$tb_size"
  args+=("\$arg")
done
exec $real_qemu "\${args[@]}"
WRAPPER
  chmod +x "$work/qemu-system-x86_64"
  export PATH="$work:$PATH"
fi

workload='mkdir -p /tmp/fill && mount -t tmpfs -o size=420m tmpfs /tmp/fill
dd if=/dev/zero of=/tmp/fill/zero bs=1M count=400 2>/dev/null
i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done
dd if=/dev/zero of=/workspace/measure bs=1M count=64 conv=fsync 2>/dev/null
rm -f /workspace/measure'
if [[ $template == debian ]]; then
  workload+='
python3 -m compileall -q -f /usr/lib/python3.11 > /dev/null'
fi
workload+='
sleep 2; echo done'

ZWRM_HOME=$work/home ZWRM_CACHE_DIR=${ZWRM_CACHE_DIR:-/var/lib/zwrm/cache} \
  "$zwrm" run --root --accel tcg --template "$template" --cpus "$cpus" --memory 512M -- sh -c "$workload" > "$work/run.log" 2>&1 &
run_pid=$!

guest_kib=$((512 * 1024))
max_rss=0 max_guest=0 max_overhead=0 max_code=0 max_other=0 max_qemu_tasks=0 max_supervisor_tasks=0 supervisor_rss=0
while kill -0 "$run_pid" 2>/dev/null; do
  qemu=$(pgrep -n -f "qemu-system-x86_64 -M microvm" || true)
  if [[ -n $qemu && -r /proc/$qemu/smaps ]]; then
    # The guest RAM is the one anonymous mapping of exactly its size; the
    # TCG translation cache is the one anonymous rwx mapping.
    sample=$(awk -v guest="$guest_kib" '
      /^[0-9a-f]+-[0-9a-f]+ / { mapping_size = 0; code = ($2 == "rwxp" && NF == 5) }
      /^Size:/ { mapping_size = $2 }
      /^Rss:/ { total += $2; if (mapping_size == guest) guest_rss += $2; if (code) code_rss += $2 }
      END { print total + 0, guest_rss + 0, code_rss + 0 }' "/proc/$qemu/smaps" 2>/dev/null || true)
    read -r rss guest code <<< "${sample:-0 0 0}"
    tasks=$(ls "/proc/$qemu/task" 2>/dev/null | wc -l || true)
    supervisor=$(awk '{print $4}' "/proc/$qemu/stat" 2>/dev/null || true)
    if [[ -n $supervisor ]]; then
      supervisor_tasks=$(ls "/proc/$supervisor/task" 2>/dev/null | wc -l || true)
      supervisor_now=$(awk '/^VmRSS:/ {print $2}' "/proc/$supervisor/status" 2>/dev/null || true)
      supervisor_now=${supervisor_now:-0}
      (( supervisor_tasks > max_supervisor_tasks )) && max_supervisor_tasks=$supervisor_tasks
      (( supervisor_now > supervisor_rss )) && supervisor_rss=$supervisor_now
    fi
    (( rss > max_rss )) && max_rss=$rss
    (( guest > max_guest )) && max_guest=$guest
    (( rss - guest > max_overhead )) && max_overhead=$((rss - guest))
    (( code > max_code )) && max_code=$code
    (( rss - guest - code > max_other )) && max_other=$((rss - guest - code))
    (( tasks > max_qemu_tasks )) && max_qemu_tasks=$tasks
  fi
  sleep 0.1
done
wait "$run_pid" || true

echo "cpus=$cpus tb_size=${tb_size:-default} template=$template run_output=$(tail -n 1 "$work/run.log")"
echo "qemu peak RSS: $((max_rss / 1024)) MiB, guest RAM resident at peak: $((max_guest / 1024)) MiB"
echo "qemu peak RSS outside guest RAM: $((max_overhead / 1024)) MiB"
echo "  of which TCG translation cache: $((max_code / 1024)) MiB; the rest peaked at $((max_other / 1024)) MiB"
echo "supervisor peak RSS: $((supervisor_rss / 1024)) MiB"
echo "peak tasks: qemu $max_qemu_tasks, supervisor $max_supervisor_tasks"
