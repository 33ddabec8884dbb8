package dev.panatron.graph;

import dev.panatron.Precision;
import dev.panatron.Context;
import dev.panatron.Fp4;
import dev.panatron.QuantKernels;
import dev.panatron.graph.Compression.Options;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The issue-5 accuracy report (not a test): all-MiniLM-L6-v2 converted to each precision and
 * sparsity, against fp32 on {@link CompressionEval#SENTENCES} (60 sentences): mean and min
 * cosine, whether the best document of each of 5 queries over 20 documents stays the same,
 * the linear layers' weight bytes before/after, and the time to embed the 60 sentences
 * (batches of 8), interleaved with fp32 in the same run (median [min, max] of the rounds).
 *
 * <pre>
 * ./mvnw -B -q -pl java,tests test-compile -Dexec.skip=true
 * ./mvnw -B -q -pl tests dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/cp.txt
 * java --enable-native-access=ALL-UNNAMED -cp tests/target/test-classes:java/target/classes:$(cat tests/target/cp.txt) \
 *      dev.panatron.graph.CompressionAccuracy [threads=2] [rounds=7] [--tables] [NAME-FILTER...]
 * </pre>
 */
public final class CompressionAccuracy {
    /** The FFN down projections of BERT (K = 4 x hidden), not the attention output projections. */
    static final String FFN_DOWN = "re:layer\\.\\d+/output/dense";

    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 7;
        boolean tables = Arrays.asList(args).contains("--tables");
        Path onnx = MiniLm.onnx();
        Map<String, Options> configs = new LinkedHashMap<>();
        configs.put("fp32", Options.of(Precision.FP32));
        configs.put("bf16", Options.of(Precision.BF16));
        configs.put("int8 LLM.int8 (t=6)", Options.of(Precision.INT8));
        configs.put("int8 W8A8", Options.of(Precision.INT8).withInt8(QuantKernels.Int8Mode.W8A8, 6));
        configs.put("int8 W8A32 (weight-only)", Options.of(Precision.INT8).withInt8(QuantKernels.Int8Mode.WEIGHT_ONLY, 6));
        configs.put("fp4 E2M1 g128", Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 128, 1));
        configs.put("fp4 E2M1 g64", Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 64, 1));
        configs.put("fp4 E2M1 g32", Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 32, 1));
        configs.put("fp4 NF4 g64", Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 64, 1));
        configs.put("fp4 NF4 g32", Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 32, 1));
        configs.put("fp4 E2M1 g32, FFN down kept fp32", Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 32, 1).withExclude(List.of(FFN_DOWN)));
        configs.put("fp4 NF4 g32, FFN down kept fp32", Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 32, 1).withExclude(List.of(FFN_DOWN)));
        configs.put("fp4 searched g64", Options.of(Precision.FP4).withFp4Search(64));
        configs.put("fp4 searched g32", Options.of(Precision.FP4).withFp4Search(32));
        configs.put("fp4 GPTQ E2M1 g32", Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 32, 1).withFp4Method(Compression.Fp4Method.GPTQ));
        configs.put("fp4 GPTQ NF4 g32", Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 32, 1).withFp4Method(Compression.Fp4Method.GPTQ));
        configs.put("fp4 GPTQ searched g32", Options.of(Precision.FP4).withFp4Search(32).withFp4Method(Compression.Fp4Method.GPTQ));
        configs.put("fp4 GPTQ NF4 g64", Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 64, 1).withFp4Method(Compression.Fp4Method.GPTQ));
        configs.put("fp4 GPTQ E2M1 g64 (the CLI's --precision fp4 default)", Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 64, 1)
                .withFp4Method(Compression.Fp4Method.GPTQ));
        configs.put("fp32 sparsity 0.5 (4x1, per layer)", Options.of(Precision.FP32).withSparsity(0.5));
        configs.put("fp32 sparsity 0.5 (4x1, global)", Options.of(Precision.FP32).withSparsity(0.5).withBlock(4, 1, true));
        configs.put("fp32 sparsity 0.8 (4x1, per layer)", Options.of(Precision.FP32).withSparsity(0.8));
        configs.put("fp32 sparsity 0.8 (1x1, per layer)", Options.of(Precision.FP32).withSparsity(0.8).withBlock(1, 1, false));
        configs.put("int8 LLM.int8 + sparsity 0.5", Options.of(Precision.INT8).withSparsity(0.5));

        List<String> only = new ArrayList<>();
        for (int i = 2; i < args.length; i++) if (!args[i].startsWith("--")) only.add(args[i]);
        if (!only.isEmpty()) configs.keySet().removeIf(k -> !k.equals("fp32") && only.stream().noneMatch(k::contains));
        try (Context ctx = Context.create(threads)) {
            List<String> names = new ArrayList<>(configs.keySet());
            List<CompressionEval> models = new ArrayList<>();
            try {
                for (String n : names) {
                    long t0 = System.nanoTime();
                    models.add(new CompressionEval(onnx, ctx, configs.get(n)));
                    System.err.printf(Locale.ROOT, "%s: loaded and converted in %.1f s%n", n, (System.nanoTime() - t0) / 1e9);
                }
                double[][] ref = models.getFirst().embed(CompressionEval.SENTENCES);
                int[] refBest = models.getFirst().retrieve();
                int intended = 0;
                for (int i = 0; i < refBest.length; i++) if (refBest[i] == CompressionEval.ANSWERS[i]) intended++;
                // timing: interleaved rounds, each model embeds the 60 sentences once per round
                double[][] ms = new double[models.size()][rounds];
                for (CompressionEval m : models) m.embed(CompressionEval.SENTENCES);   // warm-up (plans, packing)
                for (int r = 0; r < rounds; r++) {
                    for (int i = 0; i < models.size(); i++) {
                        long t0 = System.nanoTime();
                        models.get(i).embed(CompressionEval.SENTENCES);
                        ms[i][r] = (System.nanoTime() - t0) / 1e6;
                    }
                }
                double fp32Median = median(ms[0]);
                System.out.printf(Locale.ROOT, "all-MiniLM-L6-v2, %d sentences, %d threads, %d timing rounds; fp32 retrieval: %d/5 queries find the intended document%n%n",
                        CompressionEval.SENTENCES.size(), ctx.threads(), rounds, intended);
                System.out.println("| conversion | mean cos | min cos | top-1 doc same | linear weight bytes (before → after) | 60 sentences, ms median [min, max] | speed vs fp32 |");
                System.out.println("|---|---|---|---|---|---|---|");
                for (int i = 0; i < models.size(); i++) {
                    CompressionEval m = models.get(i);
                    double[] c = CompressionEval.cosines(m.embed(CompressionEval.SENTENCES), ref);
                    int[] best = m.retrieve();
                    int same = 0;
                    for (int q = 0; q < best.length; q++) if (best[q] == refBest[q]) same++;
                    Compression.Report rep = m.report;
                    double[] s = ms[i].clone();
                    Arrays.sort(s);
                    System.out.printf(Locale.ROOT, "| %s | %.5f | %.5f | %d/%d | %.1f → %.1f MiB%s | %.0f [%.0f, %.0f] | %.2fx |%n", names.get(i), c[0], c[1], same, best.length,
                            rep.bytesBefore() / 1048576.0, rep.bytesAfter() / 1048576.0,
                            rep.bsrBytes() != rep.bytesAfter() ? String.format(Locale.ROOT, " (%.1f MiB as BSR)", rep.bsrBytes() / 1048576.0) : "",
                            median(ms[i]), s[0], s[s.length - 1], fp32Median / median(ms[i]));
                }
                if (tables) {
                    for (int i = 0; i < models.size(); i++) {
                        System.out.println();
                        System.out.print(models.get(i).report.table());
                    }
                }
            } finally {
                for (CompressionEval m : models) m.close();
            }
        }
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
