#!/usr/bin/env bash
# One device call for the decode work (issue 7 item 3): build libpanatron_cuda for sm_90a, run the
# CUDA C tests (ctest), the decode-only PyTorch side-by-side bench (contiguous, paged, SDPA), then
# compute-sanitizer memcheck of the paged and attention tests. Logs under $OUT.
# Run from the repository root (or a copy of it):  bash native/src/cuda/run_device_decode.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/pt_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader
t0=$(date +%s)
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DPANATRON_CUDA=ON -DPANATRON_BENCH=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90a > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build/dev -j16 > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -i "spill" "$OUT/build.log" | grep -v " 0 bytes spill" | head -5
ctest --test-dir build/dev --output-on-failure -R cuda > "$OUT/ctest.log" 2>&1
echo "ctest exit $?: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log")"
grep -E "FAIL|paged|Failed" "$OUT/ctest.log" | head -20
PYTHONUNBUFFERED=1 timeout ${PT_BENCH_TIMEOUT:-100} python3 native/src/cuda/bench/bench_cuda.py build/dev/libpanatron_cuda.so --decode-only \
  > "$OUT/bench.txt" 2>&1
echo "bench exit: $? ($(( $(date +%s) - t0 )) s)"
if command -v compute-sanitizer > /dev/null; then
  for t in ${PT_MEMCHECK:-test_cuda_paged test_cuda_attn}; do
    timeout ${PT_MEMCHECK_TIMEOUT:-55} compute-sanitizer --tool memcheck --print-limit 5 build/dev/native/src/cuda/$t > "$OUT/memcheck-$t.log" 2>&1
    echo "memcheck $t exit $?: $(tail -2 "$OUT/memcheck-$t.log" | tr '\n' ' ')"
  done
fi
echo "total $(( $(date +%s) - t0 )) s"
grep -E "^paged|/ contiguous" "$OUT/bench.txt"
sed -n '/^case/,$p' "$OUT/bench.txt"
