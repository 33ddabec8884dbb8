#!/usr/bin/env bash
# One device call for the Java side of issue 7 (carry .devcarry, made by prepare_device_java.sh):
# builds libpanatron + libpanatron_cuda (sm_90a), runs the CUDA C tests, `panatron info --json`
# through Java (with and without CUDA), the JUnit CUDA tests (CudaTest, BindingsTest) on the GPU,
# then CudaBench (Java API) and bench_java_torch.py (PyTorch) interleaved PT_ROUNDS times (2);
# table last.   bash native/src/cuda/run_device_java.sh [quick|minilm]
# The device call sends the session's checkout, not a helper's worktree: stage a copy first, e.g.
#   native/src/cuda/prepare_device_java.sh && D=<checkout>/.devcarry/cudaj && mkdir -p $D &&
#   git archive HEAD CMakeLists.txt cmake native bindings .mvn | tar -x -C $D && cp -r .devcarry $D/
# and run `cd .devcarry/cudaj && bash native/src/cuda/run_device_java.sh` with carry [".devcarry/cudaj"].
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
FINAL=${OUT:-/tmp/pt_out}
OUT=/tmp/ptj_logs   # everything here; a few files and a tarball of all go to $OUT at the end (8 files come back)
rm -rf "$OUT" && mkdir -p "$OUT" "$FINAL"
trap 'cp "$OUT"/junit.log "$OUT"/bench_all.tsv "$OUT"/info.json "$OUT"/ctest.log "$FINAL"/ 2>/dev/null; tar czf "$FINAL"/logs.tgz -C "$OUT" .' EXIT
C=.devcarry
JAVA="$C/jre/bin/java --enable-native-access=ALL-UNNAMED -Xss4m"
CP="$C/classes:$C/test-classes:$C/runner:$C/lib/*"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv | tee "$OUT/gpu.txt"
. native/src/cuda/device_env.sh
pt_device_libs
t0=$(date +%s)
pt_device_cmake > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build/dev -j16 > "$OUT/build.log" 2>&1 || { grep -E "error|Error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s; $(ls -la build/dev/libpanatron_cuda.so build/dev/libpanatron.so | awk '{print $5, $9}' | tr '\n' ' ')"
ctest --test-dir build/dev --output-on-failure -R "cuda|bindings" > "$OUT/ctest.log" 2>&1; echo "ctest exit $?: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log")"

export PANATRON_LIBRARY_PATH=$PWD/build/dev
echo "== info --json (CUDA found beside the CPU library)"
$JAVA -cp "$CP" dev.panatron.cli.Main info --json | tee "$OUT/info.json"; echo
echo "== info --json with PANATRON_CUDA=0"
PANATRON_CUDA=0 $JAVA -cp "$CP" dev.panatron.cli.Main info --json; echo
echo "== info with an explicit -Dpanatron.cuda.library.path"
$JAVA -Dpanatron.cuda.library.path=$PWD/build/dev/libpanatron_cuda.so -cp "$CP" dev.panatron.cli.Main info

echo "== JUnit"
t1=$(date +%s)
$JAVA -Dpanatron.test.native.dir=$PWD/build/dev -Dpanatron.test.root=$PWD -cp "$CP" RunJUnit \
  dev.panatron.cuda.CudaTest dev.panatron.BindingsTest > "$OUT/junit.log" 2>&1
echo "junit exit $? ($(( $(date +%s) - t1 )) s)"
grep -E "^(SUCCESSFUL|FAILED|ABORTED|SKIPPED)" "$OUT/junit.log" | cut -c1-300
grep -E "tests (found|successful|failed|aborted|skipped)" "$OUT/junit.log"
grep -A12 "Failures (" "$OUT/junit.log" | head -40

echo "== benchmarks (Java API vs PyTorch, interleaved)"
for r in $(seq 1 "${PT_ROUNDS:-2}"); do
  $JAVA -cp "$CP" dev.panatron.cuda.CudaBench "$@" > "$OUT/java_$r.tsv" 2> "$OUT/java_$r.err" || { echo "CudaBench failed"; tail -20 "$OUT/java_$r.err"; }
  PYTHONUNBUFFERED=1 python3 native/src/cuda/bench/bench_java_torch.py "$@" > "$OUT/torch_$r.tsv" 2> "$OUT/torch_$r.err" || { echo "torch bench failed"; tail -20 "$OUT/torch_$r.err"; }
done
cat "$OUT"/java_*.tsv "$OUT"/torch_*.tsv > "$OUT/bench_all.tsv"
python3 - "$OUT" <<'PY'
import sys, collections, glob
out = sys.argv[1]
def load(side):
    d = collections.defaultdict(list)
    for f in sorted(glob.glob("%s/%s_*.tsv" % (out, side))):
        try:
            for l in open(f):
                if l.startswith("#") or "\t" not in l: continue
                n, med, mn, mx, u = l.rstrip("\n").split("\t")
                d[n].append((float(med), float(mn), float(mx), u))
        except FileNotFoundError:
            pass
    return d
j, t = load("java"), load("torch")
print("%-52s %22s %22s %8s" % ("case", "Java API (run medians)", "PyTorch (run medians)", "ratio of medians"))
for n in list(j) + [n for n in t if n not in j]:
    js = j.get(n, []); ts = t.get(n, [])
    u = (js or ts)[0][3]
    jm = sorted(x[0] for x in js); tm = sorted(x[0] for x in ts)
    jv = jm[len(jm) // 2] if jm else float("nan"); tv = tm[len(tm) // 2] if tm else float("nan")
    ratio = (tv / jv if u in ("us", "ms") else jv / tv) if (tm and jm) else float("nan")
    print("%-52s %22s %22s %7.2fx  %s" % (n, " ".join("%.2f" % x[0] for x in js), " ".join("%.2f" % x[0] for x in ts), ratio, u))
PY
