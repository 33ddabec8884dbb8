#!/usr/bin/env bash
# One device call for issue 7 items 7 and 9 (GPU decoder, decode step as a CUDA graph): builds
# libpanatron + libpanatron_cuda (sm_90a), runs the CUDA C tests, the JUnit GPU tests
# (CudaDecoderTest, CudaTest), `generate --device cuda` on a GPT-2-124M-shaped random model made
# here by tests/models/make_random_gpt2.py, then `bench generate --device cuda` (Java) and
# bench/bench_decode_hf.py (HF transformers generate, bf16) interleaved, batch 1 and 16, PT_ROUNDS
# rounds (2); summary table last and in $OUT/summary.txt.
# Staging (the device call sends the session's checkout, not a helper's worktree), from the worktree:
#   ./mvnw -B -q install -DskipTests && bash native/src/cuda/prepare_device_java.sh &&
#   D=<checkout>/.devcarry/cudadec && rm -rf $D && mkdir -p $D &&
#   git archive HEAD CMakeLists.txt cmake native bindings .mvn tests/models | tar -x -C $D && cp -r .devcarry $D/ &&
#   mkdir -p $D/.devcarry/test-classes/tiny-models && cp -r tests/target/test-classes/tiny-models/gpt2 $D/.devcarry/test-classes/tiny-models/
# then run `cd .devcarry/cudadec && bash native/src/cuda/run_device_decoder.sh` with carry [".devcarry/cudadec"].
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
FINAL=${OUT:-/tmp/pt_out}
L=/tmp/ptd_logs
rm -rf "$L" && mkdir -p "$L" "$FINAL"
trap 'cp "$L"/summary.txt "$L"/junit.log "$L"/bench.jsonl "$L"/ctest.log "$L"/generate.txt "$FINAL"/ 2>/dev/null; tar czf "$FINAL"/logs.tgz -C "$L" .' EXIT
START=$(date +%s)
el() { echo $(( $(date +%s) - START )); }
C=.devcarry
JAVA="$C/jre/bin/java --enable-native-access=ALL-UNNAMED -Xss4m"
CP="$C/classes:$C/test-classes:$C/runner:$C/lib/*"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee "$L/gpu.txt"
. native/src/cuda/device_env.sh
pt_device_libs
python3 tests/models/make_random_gpt2.py /tmp/gpt2 > "$L/make_model.log" 2>&1 &
MK=$!
pt_device_cmake > "$L/cmake.log" 2>&1 || { tail -30 "$L/cmake.log"; exit 1; }
cmake --build build/dev -j16 > "$L/build.log" 2>&1 || { grep -E "error|Error" -A3 "$L/build.log" | head -60; exit 1; }
echo "build done at $(el) s"
ctest --test-dir build/dev --output-on-failure -R "cuda" > "$L/ctest.log" 2>&1; echo "ctest exit $?: $(grep -E 'tests passed|tests failed' "$L/ctest.log")"
export PANATRON_LIBRARY_PATH=$PWD/build/dev

echo "== JUnit (at $(el) s)"
$JAVA -Dpanatron.test.native.dir=$PWD/build/dev -Dpanatron.test.root=$PWD -cp "$CP" RunJUnit \
  dev.panatron.lm.CudaDecoderTest dev.panatron.cuda.CudaTest > "$L/junit.log" 2>&1
echo "junit exit $?"
grep -E "^(FAILED|ABORTED)" "$L/junit.log" | cut -c1-600
grep -E "^CudaDecoder " "$L/junit.log"
grep -E "tests (successful|failed|aborted|skipped)" "$L/junit.log"
grep -A14 "Failures (" "$L/junit.log" | head -50

wait $MK; echo "model: $(cat "$L/make_model.log" | tail -1) $(ls -la /tmp/gpt2 | tail -2 | awk '{print $5, $9}' | tr '\n' ' ')"
echo "== generate --device cuda (at $(el) s)"
{ $JAVA -cp "$CP" dev.panatron.cli.Main generate --model /tmp/gpt2 --prompt-ids 464,2068,7586,21831 --max-new-tokens 24 --device cuda --json;
  $JAVA -cp "$CP" dev.panatron.cli.Main generate --model /tmp/gpt2 --prompt-ids 464,2068,7586,21831 --max-new-tokens 24 --device cpu --json;
  $JAVA -cp "$CP" dev.panatron.cli.Main generate --model /tmp/gpt2 --prompt-ids 464,2068,7586,21831 --max-new-tokens 8 --temperature 0.8 --top-k 40 --device cuda --json; } \
  > "$L/generate.txt" 2>&1
cat "$L/generate.txt" | cut -c1-400

echo "== benchmarks (at $(el) s)"
P=${PT_PROMPT:-64}; N=${PT_NEW:-256}; R=${PT_REPEATS:-5}
JB() { $JAVA -cp "$CP" dev.panatron.cli.Main bench generate --model /tmp/gpt2 --device cuda --prompt-len $P --new-tokens $N --repeats $R --json "$@"; }
HB() { PYTHONUNBUFFERED=1 python3 native/src/cuda/bench/bench_decode_hf.py /tmp/gpt2 --prompt-len $P --new-tokens $N --repeats $R "$@"; }
for r in $(seq 1 "${PT_ROUNDS:-2}"); do
  for b in 1 16; do
    if [ "$(el)" -gt "${PT_BUDGET:-250}" ]; then echo "time budget reached at $(el) s: skipping round $r batch $b"; continue; fi
    JB --batch $b 2>>"$L/bench.err" | sed "s/^{/{\"round\":$r,\"impl\":\"panatron_cuda_graph\",/" >> "$L/bench.jsonl" || echo "java bench failed"
    HB --batch $b 2>>"$L/bench.err" | sed "s/^{/{\"round\":$r,/" >> "$L/bench.jsonl" || echo "hf bench failed"
  done
  if [ "$r" = 1 ] && [ "$(el)" -lt "${PT_BUDGET:-250}" ]; then
    JB --batch 1 --no-graph 2>>"$L/bench.err" | sed "s/^{/{\"round\":$r,\"impl\":\"panatron_cuda_eager\",/" >> "$L/bench.jsonl"
    JB --batch 1 --cublaslt-only 2>>"$L/bench.err" | sed "s/^{/{\"round\":$r,\"impl\":\"panatron_graph_cublaslt\",/" >> "$L/bench.jsonl"
  fi
done
tail -5 "$L/bench.err"
python3 - "$L" <<'PY' | tee "$L/summary.txt"
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1] + "/bench.jsonl") if l.startswith("{")]
by = collections.defaultdict(list)
for r in rows: by[(r["impl"], r["batch"])].append(r)
print("%-22s %5s %28s %12s %10s" % ("impl", "batch", "decode tok/s per round", "ms/step", "of bound"))
med = {}
for (impl, b), rs in sorted(by.items(), key=lambda k: (k[0][1], k[0][0])):
    v = sorted(r["decode_tokens_per_s"] for r in rs)
    med[(impl, b)] = v[len(v) // 2]
    fr = rs[0].get("decode_fraction_of_bound")
    print("%-22s %5d %28s %12.3f %10s" % (impl, b, " ".join("%.0f" % x for x in v), 1000.0 * b / med[(impl, b)], "%.0f%%" % (100 * fr) if fr else ""))
for b in (1, 16):
    if ("panatron_cuda_graph", b) in med and ("hf_generate_bf16", b) in med:
        print("batch %d: panatron (graph) / HF generate = %.1fx" % (b, med[("panatron_cuda_graph", b)] / med[("hf_generate_bf16", b)]))
if rows:
    r = next((x for x in rows if "copy_gbs" in x), None)
    if r: print("weights per step %.1f MB, device copy %.0f GB/s, bound %.0f tok/s at batch %d" % (r["weight_bytes_per_token"] / 1e6, r["copy_gbs"], r["bound_decode_tokens_per_s"], r["batch"]))
PY
echo "total $(el) s"
