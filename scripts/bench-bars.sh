#!/usr/bin/env bash
# scripts/bench-bars.sh — every CPU figure an open issue's bar is judged on, in one run, on a
# quiet machine (nothing else running: the figures are bandwidth and AMX throughput).
#
#   scripts/bench-bars.sh [OUTDIR] [SECTION ...]     (default OUTDIR build/bars; all sections)
#
# Sections (each writes OUTDIR/<section>.txt; the commands are the ones BENCHMARKS.md cites):
#   attn     issue 3: decode f32/bf16 at KV 32k and 128k, 1 and 2 threads (K/V GB/s against the
#            read and copy bandwidth timed before every repeat); prefill f32 S = 2048..8192
#   int8     issue 5: LLM.int8 / W8A8 against oneDNN's s8 matmul (BERT-base shapes, 2 threads)
#   spmm     issue 5: block-sparse int8 (64x16 AMX blocks) against dense oneDNN s8
#   fp4      issue 5: FP4 W4A16 GEMV against the f32 GEMV (1 and 2 threads)
#   kernels  issue 5: `panatron bench kernels` (every compressed kernel through the Java API; bsr_int8
#            also with the AMX-tile block 64x16, the bar's block)
#   embed    issue 5: EmbedBench, ours int8 (+80% sparsity) against ONNX Runtime fp32 and int8
#   decode   issue 6: `panatron bench generate` fp32 and fp4 on a GPT-2-124M-shaped model
# Needs: the build (`./mvnw -B -q -Pbench package -DskipTests` makes build/native/pt-bench,
# the CLI jar and tests/target/benchmarks.jar; this script runs it first unless PANATRON_NO_BUILD=1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT=${1:-build/bars}
shift || true
SECTIONS=${*:-attn int8 spmm fp4 kernels embed decode}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive
. .mvn/find-jdk.sh
pt_find_jdk
JAVA="$JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED"
B=build/native/pt-bench
GPT2=${PT_GPT2:-/tmp/gpt2rand}

if [ -z "${PANATRON_NO_BUILD:-}" ]; then   # PANATRON_NO_BUILD=1: time what is built
  echo "== build ($(date -u +%H:%M:%S))"
  ./mvnw -B -q -Pbench package -DskipTests
fi
[ -x "$B" ] || { echo "bench-bars: $B missing after the build" >&2; exit 1; }
if [[ " $SECTIONS " == *" decode "* ]] && [ ! -f "$GPT2/model.safetensors" ]; then
  python3 tests/models/make_random_gpt2.py "$GPT2"
fi

run() { # section, command...
  local s=$1; shift
  echo "== $s: $* ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/$s.txt"
  "$@" 2>&1 | tee -a "$OUT/$s.txt"
}

for s in $SECTIONS; do
  : > "$OUT/$s.txt"
  case $s in
  attn)
    for t in 2 1; do for d in f32 bf16; do
      run attn $B --op attn-decode --dtype $d --heads 32 --kv-heads 8 --kv 32768,131072 --reps 7 --threads $t
    done; done
    run attn $B --op attn --dtype f32 --causal 0 --seq 2048,4096,8192 --reps 3 ;;
  int8)
    run int8 $B --op int8 --m 16,128,512 --kn 768x3072,3072x768,768x768 --reps 7 --threads 2 ;;
  spmm)
    run spmm $B --op spmm --m 16,128,512 --kn 768x3072,3072x768 --sparsity 0.7,0.9 --block 64x16 --reps 5 --threads 2 ;;
  fp4)
    for t in 1 2; do run fp4 $B --op fp4 --threads $t --reps 7; done ;;
  kernels)
    run kernels ./panatron bench kernels --threads 2
    run kernels ./panatron bench kernels --threads 2 --kernel bsr_int8 --block 64x16 ;;
  embed)
    run embed $JAVA -cp tests/target/benchmarks.jar dev.panatron.bench.EmbedBench --precision int8 --sparsity 0.8 --batch 8 --seq 128 --threads 2 --rounds 10
    run embed $JAVA -cp tests/target/benchmarks.jar dev.panatron.bench.EmbedBench --precision int8 --batch 8 --seq 128 --threads 2 --rounds 10 ;;
  decode)
    for t in 2 1; do for p in fp32 fp4; do
      run decode ./panatron bench generate --model "$GPT2" --prompt-len 16 --new-tokens 64 --repeats 5 --threads $t --precision $p
    done; done ;;
  *) echo "bench-bars: unknown section '$s'" >&2; exit 2 ;;
  esac
done
echo "== done ($(date -u +%H:%M:%S)); logs in $OUT"
