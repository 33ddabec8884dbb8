#!/usr/bin/env bash
# One device call for issue 7's CLI items (carry a staged folder, see below): builds libpanatron +
# libpanatron_cuda (sm_90a), runs CudaEmbedderTest on the GPU (MiniLM on the GPU vs the CPU fp32
# path), then `panatron bench kernels --device cuda` (table and JSON), `panatron embed --device cuda`,
# `panatron bench embed` on the GPU and the CPU, and bench_java_torch.py's MiniLM-shaped PyTorch
# baseline. Logs go to $OUT (cli.log, kernels.json, kernels.txt, embed_*.json, junit.log, torch.tsv).
#
# Staging (here, no GPU): ./mvnw -B -q install -DskipTests && bash native/src/cuda/prepare_device_java.sh, then a folder
# D inside the checkout the device call sends, with: `git archive HEAD CMakeLists.txt cmake native bindings .mvn` unpacked,
# .devcarry/{classes,test-classes,lib,runner} of prepare_device_java.sh, the JRE as jre.tar.xz (jlink --compress=zip-0,
# then tar | xz: 13 MB instead of 43), and minilm/ from native/src/cuda/java/MiniLmCarry.java (bf16 all-MiniLM-L6-v2,
# model.safetensors.gz + config.json + tokenizer.json). Command: cd D && bash native/src/cuda/run_device_cli.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
FINAL=${OUT:-/tmp/pt_out}
mkdir -p "$FINAL"
LOG=$FINAL/cli.log
exec > >(tee "$LOG") 2>&1
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
C=.devcarry
mkdir -p "$C"
[ -d "$C/jre" ] || tar -xJf jre.tar.xz -C "$C" --transform 's,^[^/]*,jre,'
[ -f minilm/model.safetensors ] || gunzip -k minilm/model.safetensors.gz
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
. native/src/cuda/device_env.sh
pt_device_libs
pt_device_cmake > "$FINAL/cmake.log" 2>&1 || { tail -30 "$FINAL/cmake.log"; exit 1; }
cmake --build build/dev -j16 > /tmp/build.log 2>&1 || { grep -E "error|Error" -A3 /tmp/build.log | head -60; exit 1; }
el "build done"
export PANATRON_LIBRARY_PATH=$PWD/build/dev
JAVA="$C/jre/bin/java --enable-native-access=ALL-UNNAMED -Xss4m -Xmx24g"
CP="$C/classes:$C/test-classes:$C/runner:$C/lib/*"
P="$JAVA -cp $CP dev.panatron.cli.Main"
M=$PWD/minilm

el "== JUnit CudaEmbedderTest (model $M)"
timeout 60 $JAVA -Dpanatron.test.native.dir=$PWD/build/dev -Dpanatron.test.root=$PWD -Dpanatron.test.minilm=$M -cp "$CP" RunJUnit \
  dev.panatron.cuda.CudaEmbedderTest > "$FINAL/junit.log" 2>&1
el "junit exit $?"
grep -E "^(SUCCESSFUL|FAILED|ABORTED|SKIPPED)|tests (successful|failed|aborted|skipped)" "$FINAL/junit.log" | cut -c1-300
grep -B2 -A12 "Failures (" "$FINAL/junit.log" | head -40

el "== bench kernels --device cuda"
timeout 70 $P bench kernels --device cuda --json > "$FINAL/kernels.json" 2> "$FINAL/kernels.err"; el "exit $?"
tail -3 "$FINAL/kernels.err"
python3 - "$FINAL/kernels.json" <<'PY' | tee "$FINAL/kernels.txt"
import json, sys
try:
    rows = json.load(open(sys.argv[1]))
except Exception as e:
    print("no JSON:", e); sys.exit(0)
print("| kernel | dtype | shape | unit | ours (min..max) | baseline | baseline (min..max) | ratio |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %s | %s | %.0f (%.0f..%.0f) | %s | %.0f (%.0f..%.0f) | %.2f |" % (r["kernel"], r["dtype"], r["shape"], r["unit"],
          r["ours_gops"], r["ours_gops_min"], r["ours_gops_max"], r["baseline"], r["baseline_gops"], r["baseline_gops_min"], r["baseline_gops_max"], r["ratio"]))
PY

el "== bench kernels --device cuda, table form (fp4_gemv, flash_decode)"
timeout 30 $P bench kernels --device cuda --kernel fp4_gemv,flash_decode 2>/dev/null | tee "$FINAL/kernels_table.txt"
el "== embed --device cuda vs cpu"
T1="The quick brown fox jumps over the lazy dog."; T2="Paris is the capital of France."; T3="hello world"
timeout 30 $P embed --model $M --device cuda "$T1" "$T2" "$T3" 2> "$FINAL/embed.err" || tail -5 "$FINAL/embed.err"
timeout 30 $P embed --model $M "$T1" "$T2" "$T3" 2>> "$FINAL/embed.err" || tail -5 "$FINAL/embed.err"
el "== bench embed: cuda, cpu, cuda at 32 x 128; cuda at 128 x 128"
for a in "cuda 32" "cpu 32" "cuda 32" "cuda 128"; do
  set -- $a
  timeout 40 $P bench embed --model $M --device $1 --batch $2 --seq 128 --seconds 4 --json 2>> "$FINAL/embed.err" | tee -a "$FINAL/embed.jsonl" \
    || tail -5 "$FINAL/embed.err"
done
el "== PyTorch MiniLM-shaped encoder (bench_java_torch.py minilm)"
PYTHONUNBUFFERED=1 timeout 60 python3 native/src/cuda/bench/bench_java_torch.py minilm > "$FINAL/torch.tsv" 2> "$FINAL/torch.err"; el "exit $?"
cat "$FINAL/torch.tsv"; tail -3 "$FINAL/torch.err"
el "done"
