#!/usr/bin/env bash
# One device call: build libpanatron_cuda for sm_90a, run the C tests (ctest), the PyTorch
# side-by-side check + benchmark, compute-sanitizer on the attention test; table last.
# Run from the repository root (or a copy of it):  bash native/src/cuda/run_device.sh [--quick]
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/pt_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"
. native/src/cuda/device_env.sh
pt_device_libs
t0=$(date +%s)
pt_device_cmake > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build/dev -j16 > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -i "spill" "$OUT/build.log" | sed 's/.*function //' | head -20
command -v cuobjdump > /dev/null && echo "SASS: $(cuobjdump -sass build/dev/libpanatron_cuda.so | grep -c HGMMA) HGMMA, $(cuobjdump -sass build/dev/libpanatron_cuda.so | grep -c HMMA) HMMA instructions"
ctest --test-dir build/dev --output-on-failure -R cuda 2>&1 | tee "$OUT/ctest.log" | tail -25
PYTHONUNBUFFERED=1 python3 native/src/cuda/bench/bench_cuda.py build/dev/libpanatron_cuda.so "$@" \
  > "$OUT/bench.txt" 2>&1
echo "bench exit: $?"
if [ "${PT_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  timeout 240 compute-sanitizer --tool memcheck --print-limit 5 build/dev/native/src/cuda/test_cuda_attn > "$OUT/memcheck.log" 2>&1
  echo "memcheck exit $?: $(tail -2 "$OUT/memcheck.log" | tr '\n' ' ')"
fi
cat "$OUT/bench.txt" | tail -40
