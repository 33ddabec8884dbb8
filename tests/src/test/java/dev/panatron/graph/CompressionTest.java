package dev.panatron.graph;

import dev.panatron.Precision;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.QuantKernels.Int8Mode;
import dev.panatron.graph.Compression.Options;
import dev.panatron.io.ModelFormatException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Model conversion (issue 5): {@link Compression} on small random graphs, checked against
 * plain double-precision references written here (the weight each layer holds after
 * conversion against the original, the layer's output against the quantized math, pruning
 * against block norms), save/load round trips and corrupt files; and the accuracy bars on the
 * real all-MiniLM-L6-v2 (skipped when the artifact is absent).
 */
class CompressionTest {
    static Context ctx;

    @BeforeAll
    static void setUp() { ctx = Context.create(2); }

    @AfterAll
    static void tearDown() { ctx.close(); }

    static final int K = 128;

    /** A one-layer graph {@code y = act(x @ W + b [+ x])}, W [K, n] or [n, K] (transB), named "enc.dense". */
    static Graph oneLayer(Random rnd, int n, boolean transB, String act, boolean bias, boolean residual) {
        GraphBuilder b = GraphBuilder.create("one");
        Value x = b.input("x", DType.F32, Dim.sym("rows"), Dim.of(K));
        float[] w = new float[n * K];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.05);
        w[3] = 0.6f;   // a large weight: per-channel scales must cope
        Value wv = b.constant("w", TensorData.ofFloats(w, transB ? new long[] {n, K} : new long[] {K, n}));
        List<Value> in = new ArrayList<>(List.of(x, wv));
        if (bias || residual) {
            float[] bb = new float[n];
            for (int i = 0; i < n; i++) bb[i] = (float) rnd.nextGaussian() * 0.1f;
            in.add(bias ? b.constant("b", TensorData.ofFloats(bb, n)) : null);
        }
        if (residual) in.add(x);
        Value y = b.node(Op.LINEAR, "enc.dense", Map.of("transB", transB ? 1L : 0L, "activation", act), in, List.of("y")).getFirst();
        b.output(y);
        return b.build();
    }

    static Map<String, TensorData> randomX(Random rnd, int rows, boolean outliers) {
        float[] x = new float[rows * K];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        if (outliers) for (int r = 0; r < rows; r++) x[r * K + 5] = (r % 2 == 0 ? 9f : -7.5f);   // one outlier feature column
        return Map.of("x", TensorData.ofFloats(x, rows, K));
    }

    /** The original weight of the single LINEAR as double [n][K]. */
    static double[][] original(Graph g) {
        Node n = g.nodes().getFirst();
        TensorData w = n.input(1).constantData();
        boolean tb = n.attrLong("transB", 0) != 0;
        int nOut = (int) (tb ? w.dim(0) : w.dim(1));
        double[][] r = new double[nOut][K];
        for (int i = 0; i < nOut; i++) for (int k = 0; k < K; k++) r[i][k] = w.getDouble(tb ? (long) i * K + k : (long) k * nOut + i);
        return r;
    }

    /** The weight a QLINEAR holds, decoded here from its codes and scales. */
    static double[][] decoded(Node q) {
        TensorData codes = q.input(1).constantData(), scales = q.input(2).constantData();
        int nOut = (int) codes.dim(0);
        double[][] r = new double[nOut][K];
        boolean fp4 = q.attrString("scheme", "").equals("fp4");
        float[] lv = fp4 ? Fp4.levels(Fp4.Format.valueOf(q.attrString("format", ""))) : null;
        int group = (int) q.attrLong("group", 0);
        for (int i = 0; i < nOut; i++) {
            for (int k = 0; k < K; k++) {
                if (fp4) {
                    int byt = (int) codes.getLong((long) i * K / 2 + k / 2);
                    int code = k % 2 == 0 ? byt & 15 : (byt >> 4) & 15;
                    r[i][k] = lv[code] * scales.getDouble(group == 0 ? i : (long) i * (K / group) + k / group);
                } else {
                    r[i][k] = codes.getLong((long) i * K + k) * scales.getDouble(i);
                }
            }
        }
        return r;
    }

    static double gelu(double v) {
        // erf by Abramowitz-Stegun 7.1.26 is too coarse; use the series/continued fraction of Math-free erf
        return 0.5 * v * (1 + erf(v / Math.sqrt(2)));
    }

    static double erf(double z) {
        double t = 1.0 / (1.0 + 0.5 * Math.abs(z));
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
                + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return z >= 0 ? 1 - r : r - 1;
    }

    /**
     * The layer's output in double: per row, LLM.int8 / W8A8 quantize the non-outlier columns
     * (absmax / 127, round half even), outlier columns (|x| >= threshold in some row) stay full
     * precision; weight-only and fp4 use x as is.
     */
    static double[][] expected(Node q, double[][] w, float[] x, int rows, float[] bias, boolean residual) {
        String scheme = q.attrString("scheme", "");
        double thr = q.attrDouble("threshold", 6);
        int nOut = w.length;
        boolean[] outlier = new boolean[K];
        if (scheme.equals("llm_int8")) for (int r = 0; r < rows; r++) for (int k = 0; k < K; k++) outlier[k] |= Math.abs(x[r * K + k]) >= thr;
        boolean quantA = scheme.equals("llm_int8") || scheme.equals("w8a8");
        double[][] y = new double[rows][nOut];
        for (int r = 0; r < rows; r++) {
            double[] xa = new double[K];
            double amax = 0;
            for (int k = 0; k < K; k++) if (!outlier[k]) amax = Math.max(amax, Math.abs(x[r * K + k]));
            for (int k = 0; k < K; k++) {
                double v = x[r * K + k];
                if (quantA && !outlier[k]) v = amax == 0 ? 0 : Math.rint(v * 127 / amax) * amax / 127;
                xa[k] = v;
            }
            for (int j = 0; j < nOut; j++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += xa[k] * w[j][k];
                if (bias != null) s += bias[j];
                if (residual) s += x[r * K + j];
                y[r][j] = q.attrString("activation", "none").equals("gelu") ? gelu(s) : s;
            }
        }
        return y;
    }

    record Case(Options o, boolean transB, String act, boolean bias, boolean residual, boolean outliers) {}

    @Test
    void convertedLayersMatchTheQuantizedMath() {
        Random rnd = new Random(5);
        List<Case> cases = List.of(
                new Case(Options.of(Precision.INT8), false, "gelu", true, false, true),
                new Case(Options.of(Precision.INT8), true, "none", true, true, true),
                new Case(Options.of(Precision.INT8).withInt8(Int8Mode.W8A8, 6), false, "none", true, false, false),
                new Case(Options.of(Precision.INT8).withInt8(Int8Mode.WEIGHT_ONLY, 6), true, "gelu", false, false, true),
                new Case(Options.of(Precision.FP4), false, "gelu", true, false, false),
                new Case(Options.of(Precision.FP4).withFp4(Fp4.Format.E1M2, 32, 0.9), true, "none", true, true, false),
                new Case(Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 0, 1), false, "none", false, false, false),
                new Case(Options.of(Precision.FP4).withFp4(Fp4.Format.E3M0, 128, 1), true, "gelu", true, false, false));
        for (Case c : cases) {
            int n = c.residual ? K : new int[] {1, 7, 65, 127}[rnd.nextInt(4)];
            String what = c.o.describe() + " transB=" + c.transB + " act=" + c.act + " bias=" + c.bias + " residual=" + c.residual + " n=" + n;
            try (Graph g = oneLayer(rnd, n, c.transB, c.act, c.bias, c.residual)) {
                double[][] w0 = original(g);
                float[] bias = c.bias ? g.nodes().getFirst().input(2).constantData().toFloatArray() : null;
                Compression.Report rep = Compression.apply(g, ctx, c.o, List.of());
                assertEquals(1, rep.layers().size(), what);
                Node q = g.nodes().getFirst();
                assertEquals(Op.QLINEAR, q.op(), what);
                for (Value v : g.constants()) assertTrue(v.dtype() != DType.F32 || v.constantData().numel() <= n * (long) K / 8, what + ": f32 weight kept: " + v);
                double[][] w = decoded(q);
                // the held weight is the original, quantized
                double err = 0, ref = 0;
                for (int i = 0; i < n; i++) {
                    double amax = 0;
                    for (int k = 0; k < K; k++) amax = Math.max(amax, Math.abs(w0[i][k]));
                    for (int k = 0; k < K; k++) {
                        if (c.o.precision() == Precision.INT8) assertTrue(Math.abs(w[i][k] - w0[i][k]) <= amax / 127 * 0.5 + 1e-7, what + ": w[" + i + "," + k + "]");
                        err += (w[i][k] - w0[i][k]) * (w[i][k] - w0[i][k]);
                        ref += w0[i][k] * w0[i][k];
                    }
                }
                assertTrue(Math.sqrt(err / ref) < (c.o.precision() == Precision.FP4 ? 0.25 : 0.01), what + ": relative weight error " + Math.sqrt(err / ref));
                assertEquals((long) n * K * 4, rep.bytesBefore(), what);
                assertTrue(rep.bytesAfter() < rep.bytesBefore() / (c.o.precision() == Precision.FP4 ? 4 : 2), what + ": " + rep.table());
                int rows = new int[] {1, 7, 33}[rnd.nextInt(3)];
                Map<String, TensorData> in = randomX(rnd, rows, c.outliers);
                float[] x = in.get("x").toFloatArray();
                double[][] want = expected(q, w, x, rows, bias, c.residual);
                try (Session s = Session.create(g, ctx)) {
                    float[] got = s.run(in).get("y").toFloatArray();
                    for (int r = 0; r < rows; r++) {
                        for (int j = 0; j < n; j++) {
                            double mag = 0;
                            for (int k = 0; k < K; k++) mag += Math.abs(x[r * K + k] * w[j][k]);
                            double tol = 2e-3 * mag + 1e-4;   // one-LSB rounding differences of the activation codes
                            assertTrue(Math.abs(got[r * n + j] - want[r][j]) <= tol,
                                    what + ": y[" + r + "," + j + "] = " + got[r * n + j] + ", expected " + want[r][j] + " (tol " + tol + ")");
                        }
                    }
                }
            }
        }
    }

    /** Three layers: q [128 -> 128], up [128 -> 256] gelu, down [256 -> 128] + residual (PyTorch layout). */
    static Graph threeLayers(Random rnd) {
        GraphBuilder b = GraphBuilder.create("three");
        Value x = b.input("x", DType.F32, Dim.sym("rows"), Dim.of(K));
        Value h = b.node(Op.LINEAR, "layer.0.q", Map.of("transB", 0L, "activation", "none"), List.of(x, w(b, rnd, "wq", K, K, 1.0)), List.of("h")).getFirst();
        Value u = b.node(Op.LINEAR, "layer.0.up", Map.of("transB", 0L, "activation", "gelu"), List.of(h, w(b, rnd, "wu", K, 2 * K, 3.0)), List.of("u")).getFirst();
        Value d = b.node(Op.LINEAR, "layer.0.down", Map.of("transB", 1L, "activation", "none"),
                new ArrayList<>(java.util.Arrays.asList(u, w(b, rnd, "wd", K, 2 * K, 0.5), null, h)), List.of("y")).getFirst();
        b.output(d);
        return b.build();
    }

    static Value w(GraphBuilder b, Random rnd, String name, int rows, int cols, double scale) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * 0.05 * scale);
        return b.constant(name, TensorData.ofFloats(v, rows, cols));
    }

    @Test
    void magnitudeBlockPruning() {
        for (boolean global : new boolean[] {false, true}) {
            for (int[] blk : new int[][] {{4, 1}, {1, 4}, {2, 2}}) {
                Random rnd = new Random(9);
                try (Graph g = threeLayers(rnd)) {
                    List<double[][]> before = new ArrayList<>();
                    for (Node n : Compression.linearLayers(g)) before.add(nk(n));
                    Map<String, TensorData> in = randomX(new Random(1), 9, false);
                    Compression.Report rep = Compression.apply(g, ctx, Options.of(Precision.FP32).withSparsity(0.6).withBlock(blk[0], blk[1], global), List.of());
                    List<Node> layers = g.nodes();
                    assertEquals(3, layers.size());
                    for (Node n : layers) assertEquals("bsr", n.attrString("scheme", ""), n.toString());
                    long zeroBlocks = 0, blocks = 0;
                    double maxDropped = 0, minKept = Double.MAX_VALUE;
                    List<Double> perLayerFrac = new ArrayList<>();
                    for (int li = 0; li < 3; li++) {
                        double[][] a = nk(layers.get(li)), o = before.get(li);
                        int bk = blk[0], bn = blk[1];
                        long lz = 0, lb = 0;
                        double lMaxDropped = 0, lMinKept = Double.MAX_VALUE;
                        for (int r = 0; r < a.length; r += bn) {
                            for (int c = 0; c < a[0].length; c += bk) {
                                boolean zero = true, same = true;
                                double norm = 0;
                                for (int i = r; i < r + bn; i++) {
                                    for (int j = c; j < c + bk; j++) {
                                        zero &= a[i][j] == 0;
                                        same &= a[i][j] == o[i][j];
                                        norm += o[i][j] * o[i][j];
                                    }
                                }
                                assertTrue(zero || same, "block (" + r + "," + c + ") of layer " + li + " is partly pruned");
                                lb++;
                                if (zero) {
                                    lz++;
                                    lMaxDropped = Math.max(lMaxDropped, norm);
                                } else {
                                    lMinKept = Math.min(lMinKept, norm);
                                }
                            }
                        }
                        if (!global) {
                            assertEquals(Math.round(0.6 * lb), lz, "layer " + li + " zero blocks");
                            assertTrue(lMaxDropped <= lMinKept, "layer " + li + ": a dropped block outweighs a kept one");
                        }
                        maxDropped = Math.max(maxDropped, lMaxDropped);
                        minKept = Math.min(minKept, lMinKept);
                        zeroBlocks += lz;
                        blocks += lb;
                        perLayerFrac.add(lz / (double) lb);
                        assertEquals(lz / (double) lb, rep.layers().get(li).sparsity(), 0.02, "reported sparsity of layer " + li);
                    }
                    if (global) {
                        assertEquals(0.6, zeroBlocks / (double) blocks, 0.01, "global zero fraction");
                        assertTrue(maxDropped <= minKept, "a dropped block outweighs a kept one");
                        // layers of larger weights lose fewer blocks
                        assertTrue(perLayerFrac.get(1) < perLayerFrac.get(2), "global threshold: " + perLayerFrac);
                    }
                    assertTrue(rep.bytesAfter() < rep.bytesBefore() * 0.6, rep.table());
                    // the pruned graph runs natively like the reference
                    try (Session s = Session.create(g, ctx); Session r = Session.create(g, ctx, Session.Options.REFERENCE)) {
                        float[] got = s.run(in).get("y").toFloatArray(), want = r.run(in).get("y").toFloatArray();
                        for (int i = 0; i < got.length; i++) assertEquals(want[i], got[i], 1e-4 + 1e-4 * Math.abs(want[i]), "y[" + i + "]");
                    }
                }
            }
        }
    }

    static double[][] nk(Node n) {
        float[] w = n.op() == Op.QLINEAR ? CompressedOps.decode(n, n.input(1).constantData(), null) : Compression.weightNK(n);
        boolean q = n.op() == Op.QLINEAR;
        int k = (int) (q ? n.attrLong("k", 0) : Compression.inFeatures(n)), nOut = (int) (q ? n.attrLong("n", 0) : Compression.outFeatures(n));
        double[][] r = new double[nOut][k];
        for (int i = 0; i < nOut; i++) for (int j = 0; j < k; j++) r[i][j] = w[i * k + j];
        return r;
    }

    @Test
    void excludedLayersStayAsTheyAre() {
        try (Graph g = threeLayers(new Random(3))) {
            Compression.Report rep = Compression.apply(g, ctx, Options.of(Precision.INT8).withExclude(List.of("*.down", "up")), List.of());
            List<Op> ops = g.nodes().stream().map(Node::op).toList();
            assertEquals(List.of(Op.QLINEAR, Op.LINEAR, Op.LINEAR), ops);
            assertTrue(rep.layers().get(1).scheme().startsWith("skipped"), rep.table());
            assertEquals(rep.layers().get(1).bytesBefore(), rep.layers().get(1).bytesAfter());
        }
        assertThrows(IllegalArgumentException.class, () -> Options.of(Precision.FP4).withFp4(Fp4.Format.E2M1, 48, 1));
        assertThrows(IllegalArgumentException.class, () -> Options.of(Precision.FP32).withSparsity(1.0));
        assertThrows(IllegalArgumentException.class, () -> Precision.parse("int4"));
        try (Graph g = threeLayers(new Random(3))) {
            assertThrows(IllegalArgumentException.class, () -> Compression.apply(g, ctx, Options.of(Precision.FP4).withFp4Search(64), List.of()));
        }
    }

    @Test
    void saveAndLoad(@TempDir Path dir) throws Exception {
        Map<String, TensorData> in = randomX(new Random(2), 5, true);
        for (Options o : List.of(Options.of(Precision.INT8).withSparsity(0.5), Options.of(Precision.FP4).withFp4Search(32),
                Options.of(Precision.FP32).withSparsity(0.7))) {
            Path file = dir.resolve("layers.safetensors");
            float[] want;
            try (Graph g = threeLayers(new Random(4))) {
                List<Map<String, TensorData>> calib = List.of(randomX(new Random(7), 16, false));
                Compression.apply(g, ctx, o, o.needsCalibration() ? calib : List.of());
                Compression.save(g, file, "three", o);
                try (Session s = Session.create(g, ctx)) {
                    want = s.run(in).get("y").toFloatArray();
                }
            }
            try (Graph g = threeLayers(new Random(4))) {
                assertEquals(o.describe(), Compression.load(g, file));
                try (Session s = Session.create(g, ctx)) {
                    assertArrayEquals(want, s.run(in).get("y").toFloatArray(), o.describe());
                }
            }
            // another model: K differs
            try (Graph other = oneLayer(new Random(1), 128, false, "none", true, false)) {
                assertThrows(ModelFormatException.class, () -> Compression.load(other, file));
            }
        }
        // a flipped byte in the last tensor's data fails its checksum, naming the tensor
        Path file = dir.resolve("layers.safetensors");
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(f.length() - 3);
            int v = f.read();
            f.seek(f.length() - 3);
            f.write(v ^ 0x55);
        }
        try (Graph g = threeLayers(new Random(4))) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> Compression.load(g, file));
            assertTrue(e.getMessage().contains("checksum") && e.getMessage().contains("layers.safetensors") && e.getMessage().contains("layer.0"), e.getMessage());
        }
        // truncated
        Path cut = dir.resolve("cut.safetensors");
        byte[] all = Files.readAllBytes(file);
        Files.write(cut, java.util.Arrays.copyOf(all, all.length - 100));
        try (Graph g = threeLayers(new Random(4))) {
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> Compression.load(g, cut));
            assertTrue(e.getMessage().contains("cut.safetensors"), e.getMessage());
        }
        assertTrue(Files.list(dir).noneMatch(p -> p.toString().endsWith(".tmp")), "temporary file left behind");
    }

    /**
     * The bars of issue 5 on the real model, vs fp32 over 60 sentences: bf16 and LLM.int8 mean
     * cosine >= 0.999 (met); fp4 >= 0.98 (met by GPTQ, not by round to nearest), see below.
     */
    @Test
    void miniLmAccuracyBars() throws Exception {
        Path onnx = MiniLm.onnx();
        double[][] ref;
        try (CompressionEval fp32 = new CompressionEval(onnx, ctx, Options.of(Precision.FP32))) {
            ref = fp32.embed(CompressionEval.SENTENCES);
        }
        Map<String, Options> bars = new java.util.LinkedHashMap<>();
        bars.put("bf16", Options.of(Precision.BF16));
        bars.put("int8 LLM.int8", Options.of(Precision.INT8));
        // FP4 with every linear layer converted: round to nearest stays below the 0.98 (E2M1 g32
        // 0.969, NF4 g32 0.974, searched g32 0.974); GPTQ NF4 g32 on the 64 calibration sentences
        // (disjoint from these 60) reaches ~0.987 (BENCHMARKS.md), asserted at the 0.98
        bars.put("fp4 GPTQ NF4 g32", Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 32, 1).withFp4Method(Compression.Fp4Method.GPTQ));
        StringBuilder report = new StringBuilder();
        for (Map.Entry<String, Options> e : bars.entrySet()) {
            try (CompressionEval m = new CompressionEval(onnx, ctx, e.getValue())) {
                double[] c = CompressionEval.cosines(m.embed(CompressionEval.SENTENCES), ref);
                report.append(String.format("%s: mean %.5f min %.5f%n", e.getKey(), c[0], c[1]));
                boolean fp4 = e.getValue().precision() == Precision.FP4;
                double bar = fp4 ? 0.98 : 0.999;
                assertTrue(c[0] >= bar, e.getKey() + ": mean cosine " + c[0] + " < " + bar + "\n" + report);
                assertTrue(c[1] >= (fp4 ? 0.92 : bar - 0.04), e.getKey() + ": min cosine " + c[1] + "\n" + report);
            }
        }
        System.out.print(report);
    }
}
