#!/usr/bin/env bash
# One device call for the quantized matmul (quant.cu): build libpanatron_cuda (sm_90a) and the
# C tests, run test_cuda_quant (also with the portable s8 kernel forced, and under
# compute-sanitizer memcheck), test_cuda_gemm as a regression check, then the PyTorch side by
# side (bench/bench_quant_torch.py). Results under $OUT; the table last.
# Run from the repository root (or a copy of it):  bash native/src/cuda/run_device_quant.sh [--quick]
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
cmake --build build/dev -j16 --target panatron_cuda test_cuda_quant test_cuda_gemm > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -i "spill" "$OUT/build.log" | grep -v " 0 bytes spill" | head -10
command -v cuobjdump > /dev/null && echo "SASS: $(cuobjdump -sass build/dev/libpanatron_cuda.so -fun fp4_gemv 2>/dev/null | grep -c LDS) LDS in the fp4 GEMV kernels"
T=build/dev/native/src/cuda
{ $T/test_cuda_quant; echo "test_cuda_quant exit $?"; } 2>&1 | tail -30 | tee "$OUT/test_quant.log"
{ PANATRON_CUDA_S8_FALLBACK=1 $T/test_cuda_quant; echo "test_cuda_quant (portable s8 kernel) exit $?"; } 2>&1 | tail -8 | tee -a "$OUT/test_quant.log"
{ $T/test_cuda_gemm; echo "test_cuda_gemm exit $?"; } 2>&1 | tail -5 | tee -a "$OUT/test_quant.log"
if command -v compute-sanitizer > /dev/null; then
  timeout 100 compute-sanitizer --tool memcheck --print-limit 5 $T/test_cuda_quant > "$OUT/memcheck.log" 2>&1
  echo "memcheck exit $?: $(tail -2 "$OUT/memcheck.log" | tr '\n' ' ')"
fi
PYTHONUNBUFFERED=1 timeout 400 python3 native/src/cuda/bench/bench_quant_torch.py build/dev/libpanatron_cuda.so "$@" > "$OUT/bench_quant.txt" 2>&1
echo "bench exit: $?"
tail -48 "$OUT/bench_quant.txt"
