#!/usr/bin/env bash
# One device call that checks a merged tree on the GPU: builds libpanatron + libpanatron_cuda
# (sm_90a), runs every CUDA C test (ctest -R cuda|bindings), every JUnit GPU test class
# (dev.panatron.cuda.*Test except the MiniLM one, which needs the model carried: see
# run_device_cli.sh; CudaDecoderTest uses tests/target/test-classes/tiny-models), then the
# decode-attention benchmark against PyTorch SDPA (bench_cuda.py --decode-only) and the FP4
# GEMM / W4A4 one (bench_quant_torch.py --fp4-gemm). Logs in $OUT.
# Staging, here (the device call sends the session's checkout):
#   ./mvnw -B -q install -DskipTests && bash native/src/cuda/prepare_device_java.sh &&
#   mkdir -p .devcarry/test-classes/tiny-models && cp -r tests/target/test-classes/tiny-models/* .devcarry/test-classes/tiny-models/ &&
#   tar -C .devcarry -cJf .devcarry/jre.tar.xz jre && rm -rf .devcarry/jre     # 44 -> 13 MB
# then run `bash native/src/cuda/run_device_check.sh` with carry [".devcarry"].
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
FINAL=${OUT:-/tmp/pt_out}
L=/tmp/ptc_logs
rm -rf "$L" && mkdir -p "$L" "$FINAL"
trap 'cp "$L"/*.log "$L"/*.txt "$FINAL"/ 2>/dev/null' EXIT
C=.devcarry
[ -d "$C/jre" ] || tar -C "$C" -xJf "$C/jre.tar.xz" || exit 1   # the runtime may travel packed (the 64 MiB limit)
JAVA="$C/jre/bin/java --enable-native-access=ALL-UNNAMED -Xss4m"
CP="$C/classes:$C/test-classes:$C/runner:$C/lib/*"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee "$L/gpu.txt"
. native/src/cuda/device_env.sh
pt_device_libs
t0=$(date +%s)
pt_device_cmake > "$L/cmake.log" 2>&1 || { tail -30 "$L/cmake.log"; exit 1; }
cmake --build build/dev -j16 > "$L/build.log" 2>&1 || { grep -E "error" -A3 "$L/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
ctest --test-dir build/dev --output-on-failure -R "cuda|bindings" --timeout 120 > "$L/ctest.log" 2>&1
echo "ctest exit $?: $(grep -E 'tests passed|tests failed' "$L/ctest.log")"
grep -E "checks|Failed|FAIL" "$L/ctest.log" | head -20

export PANATRON_LIBRARY_PATH=$PWD/build/dev
echo "== JUnit (GPU classes)"
t1=$(date +%s)
$JAVA -Dpanatron.test.native.dir=$PWD/build/dev -Dpanatron.test.root=$PWD -cp "$CP" RunJUnit \
  dev.panatron.cuda.CudaTest dev.panatron.cuda.CudaQuantTest dev.panatron.lm.CudaDecoderTest \
  dev.panatron.cuda.CudaPagedDecodeTest dev.panatron.cuda.CudaSparseTest dev.panatron.BindingsTest > "$L/junit.log" 2>&1
echo "junit exit $? ($(( $(date +%s) - t1 )) s)"
grep -E "tests (found|successful|failed|aborted|skipped)" "$L/junit.log"
grep -A12 "Failures (" "$L/junit.log" | head -40

echo "== decode attention vs SDPA"
PYTHONUNBUFFERED=1 timeout 120 python3 native/src/cuda/bench/bench_cuda.py build/dev/libpanatron_cuda.so --decode-only > "$L/decode.txt" 2>&1 \
  || { echo "decode bench failed"; tail -20 "$L/decode.txt"; }
tail -25 "$L/decode.txt"

echo "== FP4 GEMM (M > 4) and W4A4 vs torch"
PYTHONUNBUFFERED=1 timeout 110 python3 native/src/cuda/bench/bench_quant_torch.py build/dev/libpanatron_cuda.so --fp4-gemm > "$L/fp4.txt" 2>&1 \
  || { echo "fp4 bench failed"; tail -20 "$L/fp4.txt"; }
tail -20 "$L/fp4.txt"
