#!/usr/bin/env bash
# One device call for sparse matmul (sparse.cu, issue 7 item 6): build libpanatron_cuda (sm_90a)
# and test_cuda_sparse, run it (cuSPARSELt from torch's nvidia-cusparselt wheel), under
# compute-sanitizer memcheck, then the PyTorch side by side (bench/bench_sparse_torch.py).
# Results under $OUT; the table last.
# Run from the repository root (or a copy of it):  bash native/src/cuda/run_device_sparse.sh [--quick]
# Env: PT_SANITIZE=0 skips memcheck; PT_BENCH=0 skips the benchmark; PT_JAVA=1 also builds
# libpanatron and runs the JUnit CudaSparseTest with .devcarry/ (made by prepare_device_java.sh).
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
grep -i "checking cu" "$OUT/cmake.log"
targets="panatron_cuda test_cuda_sparse"
grep -q "cuSPARSELt declarations" "$OUT/cmake.log" && targets="$targets panatron_cusparselt_check"
cmake --build build/dev -j16 --target $targets > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -i "spill" "$OUT/build.log" | grep -v " 0 bytes spill" | head -10
T=build/dev/native/src/cuda
{ timeout 60 $T/test_cuda_sparse; echo "test_cuda_sparse exit $?"; } 2>&1 | tail -30 | tee "$OUT/test_sparse.log"
for tile in 32 256; do  # every BSR tile configuration on every shape
  { PANATRON_BSR_TILE=$tile timeout 60 $T/test_cuda_sparse; echo "test_cuda_sparse (BSR tile $tile) exit $?"; } 2>&1 | tail -2 | tee -a "$OUT/test_sparse.log"
done
{ PANATRON_CUSPARSELT=/nonexistent/libcusparseLt.so.0 LD_LIBRARY_PATH= timeout 60 $T/test_cuda_sparse; echo "test_cuda_sparse (no cuSPARSELt) exit $?"; } 2>&1 | tail -4 | tee -a "$OUT/test_sparse.log"
if [ "${PT_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  timeout 90 compute-sanitizer --tool memcheck --print-limit 5 $T/test_cuda_sparse > "$OUT/memcheck.log" 2>&1
  echo "memcheck exit $?: $(tail -2 "$OUT/memcheck.log" | tr '\n' ' ')"
fi
if [ "${PT_JAVA:-0}" = 1 ] && [ -d .devcarry ]; then
  t1=$(date +%s)
  cmake --build build/dev -j16 > "$OUT/build_all.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build_all.log" | head -30; }
  C=.devcarry
  PANATRON_LIBRARY_PATH=$PWD/build/dev $C/jre/bin/java --enable-native-access=ALL-UNNAMED -Xss4m \
    -Dpanatron.cuda.library.path=$PWD/build/dev/libpanatron_cuda.so -Dpanatron.test.native.dir=$PWD/build/dev -Dpanatron.test.root=$PWD \
    -cp "$C/classes:$C/test-classes:$C/runner:$C/lib/*" RunJUnit dev.panatron.cuda.CudaSparseTest > "$OUT/junit.log" 2>&1
  echo "junit exit $? ($(( $(date +%s) - t1 )) s incl. build)"
  grep -E "^(SUCCESSFUL|FAILED|ABORTED|SKIPPED)" "$OUT/junit.log" | cut -c1-300
  grep -E "tests (successful|failed|aborted|skipped)" "$OUT/junit.log"
  grep -A12 "Failures (" "$OUT/junit.log" | head -30
fi
if [ "${PT_BENCH:-1}" = 1 ]; then
  PYTHONUNBUFFERED=1 timeout ${PT_BENCH_TIMEOUT:-150} python3 native/src/cuda/bench/bench_sparse_torch.py build/dev/libpanatron_cuda.so "$@" > "$OUT/bench_sparse.txt" 2>&1
  echo "bench exit: $?"
  tail -110 "$OUT/bench_sparse.txt"
fi
