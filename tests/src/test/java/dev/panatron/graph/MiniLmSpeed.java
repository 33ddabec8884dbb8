package dev.panatron.graph;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.panatron.Context;
import dev.panatron.io.OnnxImporter;

import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A side-by-side timing (not a test): our Session.run on all-MiniLM-L6-v2 against ONNX
 * Runtime (ALL_OPT, same intra-op threads) in the same JVM, on the same random inputs,
 * interleaved run by run; prints median/min/max per engine and the ratio of medians.
 *
 * <pre>
 * ./mvnw -B -q -pl java,tests test-compile -Dexec.skip=true
 * ./mvnw -B -q -pl tests dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/cp.txt
 * java --enable-native-access=ALL-UNNAMED -cp tests/target/test-classes:java/target/classes:$(cat tests/target/cp.txt) \
 *      dev.panatron.graph.MiniLmSpeed [batch=8] [seq=128] [threads=2] [rounds=15] [model.onnx]
 * </pre>
 */
public final class MiniLmSpeed {
    public static void main(String[] args) throws Exception {
        int batch = args.length > 0 ? Integer.parseInt(args[0]) : 8;
        int seq = args.length > 1 ? Integer.parseInt(args[1]) : 128;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 15;
        Path model = args.length > 4 ? Path.of(args[4]) : MiniLm.onnx();

        Map<String, TensorData> in = MiniLm.random(new Random(11), batch, seq);
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(threads);
        o.setInterOpNumThreads(1);
        o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        Map<String, OnnxTensor> ortIn = new HashMap<>();
        for (var e : in.entrySet()) ortIn.put(e.getKey(), OnnxTensor.createTensor(env, LongBuffer.wrap(e.getValue().toLongArray()), e.getValue().shape()));

        try (OrtSession ort = env.createSession(model.toString(), o);
             Graph g = OnnxImporter.load(model);
             Context ctx = Context.create(threads)) {
            Passes.optimize(g);
            try (Session s = Session.create(g, ctx)) {
                Plan plan = s.plan(Map.of("batch_size", (long) batch, "sequence_length", (long) seq));
                System.out.printf("batch %d x seq %d, %d threads; planner peak %d B (%.2f MiB), %d steps%n", batch, seq, threads,
                        plan.peakBytes(), plan.peakBytes() / 1048576.0, plan.steps().size());
                List<Double> ours = new ArrayList<>(), theirs = new ArrayList<>();
                for (int r = 0; r < rounds + 3; r++) {
                    long t0 = System.nanoTime();
                    s.run(in);
                    long t1 = System.nanoTime();
                    try (OrtSession.Result res = ort.run(ortIn)) {
                        res.get(0);
                    }
                    long t2 = System.nanoTime();
                    if (r >= 3) {           // 3 warm-up rounds
                        ours.add((t1 - t0) / 1e6);
                        theirs.add((t2 - t1) / 1e6);
                    }
                }
                double mo = median(ours), mt = median(theirs);
                System.out.printf("panatron Session.run  median %.1f ms  (min %.1f, max %.1f)  %.1f seq/s%n", mo, min(ours), max(ours), batch * 1000 / mo);
                System.out.printf("onnxruntime ALL_OPT   median %.1f ms  (min %.1f, max %.1f)  %.1f seq/s%n", mt, min(theirs), max(theirs), batch * 1000 / mt);
                System.out.printf("speed vs ORT: %.2fx (ORT time / ours)%n", mt / mo);
                if (Boolean.getBoolean("profile")) profile(s, plan, in);
            }
        } finally {
            for (OnnxTensor t : ortIn.values()) t.close();
        }
    }

    /** Time per op over a few runs (-Dprofile=true). */
    static void profile(Session s, Plan plan, Map<String, TensorData> in) {
        Map<Op, Double> t = new java.util.TreeMap<>();
        int runs = 5;
        for (int r = 0; r < runs; r++) s.runProfiled(in, t);
        t.forEach((op, ms) -> System.out.printf("  %-12s %7.2f ms%n", op.label(), ms / runs));
    }

    static double median(List<Double> l) {
        double[] a = l.stream().mapToDouble(d -> d).sorted().toArray();
        return a.length % 2 == 1 ? a[a.length / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
    }

    static double min(List<Double> l) { return l.stream().mapToDouble(d -> d).min().orElse(0); }

    static double max(List<Double> l) { return l.stream().mapToDouble(d -> d).max().orElse(0); }
}
