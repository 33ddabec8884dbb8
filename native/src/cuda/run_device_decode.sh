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
. native/src/cuda/device_env.sh
pt_device_libs
t0=$(date +%s)
pt_device_cmake > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build/dev -j16 > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -i "spill" "$OUT/build.log" | grep -v " 0 bytes spill" | head -5
ctest --test-dir build/dev --output-on-failure -R cuda > "$OUT/ctest.log" 2>&1
echo "ctest exit $?: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log")"
grep -E "FAIL|paged|Failed" "$OUT/ctest.log" | head -20
# 1: every shape, the CUDA-core variants (auto, 1, 2, 3, no-PDL 9, 10); 2 (its own process, so a fault
# there cannot spoil 1): the GQA shapes with the tensor-core variant 4 (+ 12 without PDL) beside 1 and 2
PT_DEC_VARS=0,1,2,3,9,10 PYTHONUNBUFFERED=1 timeout ${PT_BENCH_TIMEOUT:-60} python3 native/src/cuda/bench/bench_cuda.py \
  build/dev/libpanatron_cuda.so --decode-only > "$OUT/bench.txt" 2>&1
echo "bench exit: $? ($(( $(date +%s) - t0 )) s)"
PT_DEC_GQA_ONLY=1 PT_DEC_VARS=1,2,4,12 PYTHONUNBUFFERED=1 timeout ${PT_BENCH_TIMEOUT:-60} python3 native/src/cuda/bench/bench_cuda.py \
  build/dev/libpanatron_cuda.so --decode-only > "$OUT/bench-v4.txt" 2>&1
echo "bench v4 exit: $? ($(( $(date +%s) - t0 )) s)"
if command -v compute-sanitizer > /dev/null; then
  for t in ${PT_MEMCHECK:-test_cuda_paged test_cuda_attn}; do
    left=$(( ${PT_BUDGET:-228} - ($(date +%s) - t0) ))
    [ $left -gt 60 ] && left=60
    [ $left -lt 5 ] && { echo "memcheck $t: no time left"; continue; }
    timeout $left compute-sanitizer --tool memcheck --print-limit 5 build/dev/native/src/cuda/$t > "$OUT/memcheck-$t.log" 2>&1
    echo "memcheck $t exit $? (limit $left s): $(tail -2 "$OUT/memcheck-$t.log" | tr '\n' ' ')"
  done
fi
echo "total $(( $(date +%s) - t0 )) s"
grep -hE "^paged|/ contiguous|fastest|status" "$OUT/bench.txt" "$OUT/bench-v4.txt"
grep -h "decode bf16" "$OUT/bench.txt" "$OUT/bench-v4.txt" | grep -E "^decode" | cut -c1-44,46-150 | sed 's/  */ /g'
grep -h "^D2D\|^ceilings" "$OUT/bench.txt"
