#!/usr/bin/env bash
# One device call for the FP4 GEMM (quant.cu, issue 7 item 5): build libpanatron_cuda (sm_90a)
# and test_cuda_quant, run it, then the FP4 part of bench/bench_quant_torch.py (--fp4-gemm).
# Results under $OUT. Run from the repository root (or a copy):  bash native/src/cuda/run_device_fp4.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/pt_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
. native/src/cuda/device_env.sh
pt_device_libs
t0=$(date +%s)
pt_device_cmake > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build/dev -j16 --target panatron_cuda test_cuda_quant > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
T=build/dev/native/src/cuda
t0=$(date +%s)
{ timeout 90 $T/test_cuda_quant; echo "test_cuda_quant exit $?"; } 2>&1 | tail -30 | tee "$OUT/test_quant.log"
echo "test: $(( $(date +%s) - t0 )) s"
PYTHONUNBUFFERED=1 timeout ${BENCH_TIMEOUT:-110} python3 native/src/cuda/bench/bench_quant_torch.py build/dev/libpanatron_cuda.so --fp4-gemm "$@" > "$OUT/bench_fp4.txt" 2>&1
echo "bench exit: $?"
tail -40 "$OUT/bench_fp4.txt"
