package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.BlockSparse;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.OneDnnS8Matmul;
import dev.panatron.QuantKernels;
import dev.panatron.Tensor;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/**
 * {@code panatron bench kernels}: our compressed kernels against their baselines through the
 * public Java API, each row timed next to its baseline in one process (interleaved samples,
 * median of repeats, min and max kept), at BERT-base linear shapes.
 */
@Command(name = "kernels", sortOptions = false, description = {
        "Compressed GEMM kernels against their baselines, each row timed next to its baseline in this process",
        "(samples interleaved, median of repeats), at BERT-base linear shapes M x K x N, M in 16,128,512,",
        "K x N in 768x768, 768x3072, 3072x768 (M = 1 for the GEMV):",
        "  bsr_int8   block-sparse int8 (blocks --block, 4x1 by default; 70% and 90% pruned) vs dense oneDNN s8 matmul",
        "  llm_int8   LLM.int8 (0 and 1% planted outlier columns, threshold 6) vs oneDNN s8 and vs f32 GEMM",
        "  w8a8       W8A8 int8 vs oneDNN s8 matmul",
        "  fp4_gemv   FP4 (E2M1, group 64) weight-only GEMV vs f32 GEMV, weights cold on both sides (as in decoding)",
        "  bf16_gemm  bf16 GEMM (prepacked weight) vs f32 GEMM",
        "GOPS = 2*M*N*K / time: dense-equivalent operations, also for the sparse kernels. ratio = baseline time / ours",
        "(> 1: ours is faster). oneDNN s8 gets x already quantized to int8 (its quantization is not timed); ours",
        "quantize f32 activations inside the call. f32 GEMM: pt_matmul (oneDNN's f32 matmul when the library has it).",
        "Prints a table (or one JSON array with --json) once complete; progress on stderr.",
        "Run it with OMP_WAIT_POLICY=passive: with OpenMP's default (spinning) wait policy, oneDNN's worker threads",
        "and ours take each other's cores and the oneDNN baselines come out many times slower than they are.",
        "Numbers from a loaded machine are noisy: compare ratios, not absolute GOPS."})
final class BenchKernels implements Callable<Integer> {
    /** Kernel names, in output order. */
    static final List<String> KERNELS = List.of("bsr_int8", "llm_int8", "w8a8", "fp4_gemv", "bf16_gemm");

    @ParentCommand
    BenchCommand bench;

    @Spec
    CommandSpec spec;

    @Option(names = "--json", description = "print one JSON array of rows")
    boolean json;

    @Option(names = "--threads", paramLabel = "T", defaultValue = "0", description = "kernel threads (0 = every core)")
    int threads;

    @Option(names = "--quick", description = "a small subset (M 16, K x N 768x768; 3 short repeats) for tests and smoke runs")
    boolean quick;

    @Option(names = "--kernel", paramLabel = "NAME", split = ",", arity = "1..*",
            description = "only these kernels (bsr_int8, llm_int8, w8a8, fp4_gemv, bf16_gemm; default all)")
    List<String> kernels;

    @Option(names = "--block", paramLabel = "KxN", defaultValue = "4x1",
            description = "bsr_int8 block, K x N (default ${DEFAULT-VALUE}, the conversion's default; 64x16 is the AMX tile)")
    String block;

    @Option(names = "--repeats", paramLabel = "R", description = "timed samples per row and side (default 7; 3 with --quick)")
    Integer repeats;

    @Option(names = "--min-ms", paramLabel = "MS", description = "minimum length of one sample in ms (calls are repeated to fill it; default 30, 1 with --quick)")
    Double minMs;

    @Option(names = "--device", paramLabel = "cpu|cuda", defaultValue = "cpu",
            description = {"cpu (default), or cuda: the GPU kernels on GPU 0 (flash_attn, flash_decode, s8_gemm, w8a8, fp4_gemv at issue 7's",
                    "shapes) against cuBLASLt bf16, a materialized attention, or the device copy bandwidth, timed with CUDA events"})
    String device;

    /**
     * One measured row: {@code ops} operations (or bytes, for unit GB/s) per call, seconds per
     * call of ours and of the baseline, one value per sample.
     */
    record Row(String kernel, String dtype, String shape, double ops, String unit, long m, long k, long n, double sparsity, double outliers,
               String baseline, double[] oursS, double[] baseS) {
        /** A GEMM-shaped row: shape MxKxN, 2MNK operations. */
        Row(String kernel, String dtype, long m, long k, long n, double sparsity, double outliers, String baseline, double[] oursS, double[] baseS) {
            this(kernel, dtype, m + "x" + k + "x" + n, 2.0 * m * n * k, "GOPS", m, k, n, sparsity, outliers, baseline, oursS, baseS);
        }
    }

    @Override
    public Integer call() throws Exception {
        boolean cuda = DecoderCli.isCuda(device);
        List<String> known = cuda ? BenchKernelsCuda.KERNELS : KERNELS;
        LinkedHashSet<String> want = new LinkedHashSet<>();
        if (kernels == null || kernels.isEmpty()) want.addAll(known);
        else for (String s : kernels) {
            String k = s.trim().toLowerCase(Locale.ROOT);
            if (!known.contains(k)) {
                throw new CommandLine.ParameterException(spec.commandLine(), "unknown --kernel '" + s + "' for --device " + device
                        + " (expected one of " + String.join(", ", known) + ")");
            }
            want.add(k);
        }
        int reps = repeats != null ? repeats : quick ? 3 : 7;
        double ms = minMs != null ? minMs : quick ? 1 : cuda ? 20 : 30;
        if (reps < 1 || reps > 1000) throw new CommandLine.ParameterException(spec.commandLine(), "--repeats must be in 1..1000, got " + reps);
        if (!(ms >= 0) || ms > 10_000) throw new CommandLine.ParameterException(spec.commandLine(), "--min-ms must be in [0, 10000], got " + ms);
        if (cuda) {
            try (dev.panatron.cuda.CudaContext cctx = DecoderCli.cudaContext()) {
                PrintStream err = bench.main.err;
                err.printf(Locale.ROOT, "panatron bench kernels: %s, %d repeats of >= %.0f ms per side (CUDA events); kernels %s%n",
                        cctx.device().name(), reps, ms, String.join(",", want));
                Timer timer = new Timer(reps, (long) (ms * 1e6), err, cctx);
                List<Row> rows = BenchKernelsCuda.rows(cctx, want, quick, timer, err);
                print(rows, -1, reps, null, cctx.device().name());
            }
            return 0;
        }
        java.util.regex.Matcher bm = java.util.regex.Pattern.compile("(\\d{1,2})x(\\d{1,2})").matcher(block);
        int bk = bm.matches() ? Integer.parseInt(bm.group(1)) : 0, bn = bm.matches() ? Integer.parseInt(bm.group(2)) : 0;
        if (bk < 1 || bk > 64 || bn < 1 || bn > 64) throw new CommandLine.ParameterException(spec.commandLine(), "--block must be KxN with K and N in 1..64, got '" + block + "'");
        if (threads < 0) throw new CommandLine.ParameterException(spec.commandLine(), "--threads must be >= 0, got " + threads);
        PrintStream err = bench.main.err;
        String waitPolicy = System.getenv("OMP_WAIT_POLICY");
        if (waitPolicy == null || !waitPolicy.equalsIgnoreCase("passive")) {
            err.println("panatron bench kernels: warning: OMP_WAIT_POLICY is not 'passive': oneDNN's spinning OpenMP workers and ours"
                    + " slow each other down and the baselines look worse than they are (run with OMP_WAIT_POLICY=passive)");
        }
        long[] mList = quick ? new long[] {16} : new long[] {16, 128, 512};
        long[][] kns = quick ? new long[][] {{768, 768}} : new long[][] {{768, 768}, {768, 3072}, {3072, 768}};
        Context ctx = threads > 0 ? Context.create(threads) : Context.shared();
        boolean s8Needed = want.contains("bsr_int8") || want.contains("llm_int8") || want.contains("w8a8");
        if (s8Needed && !ctx.usesOneDnn()) {
            throw new IllegalStateException("the int8 baselines need oneDNN, which this library or context does not use (panatron info)");
        }
        int nThreads = ctx.threads();
        String f32Base = ctx.usesOneDnn() ? "onednn_f32" : "own_f32";
        err.printf(Locale.ROOT, "panatron bench kernels: %d threads, %d repeats of >= %.0f ms per side; kernels %s%n", ctx.threads(), reps, ms,
                String.join(",", want));
        List<Row> rows = new ArrayList<>();
        Timer timer = new Timer(reps, (long) (ms * 1e6), err);
        SplittableRandom rnd = new SplittableRandom(42);
        try {
            for (long[] kn : kns) {
                long k = kn[0], n = kn[1];
                try (Arena arena = Arena.ofConfined()) {
                    Tensor w = Tensor.allocate(arena, DType.F32, n, k);            // [N, K] PyTorch layout
                    w.copyFrom(uniform(rnd, (int) (n * k), 1f));
                    Tensor wq = Tensor.allocate(arena, DType.I8, n, k), ws = Tensor.allocate(arena, DType.F32, n);
                    QuantKernels.quantizeInt8Weight(ctx, w, wq, ws);
                    Tensor wPacked = Tensor.allocate(arena, DType.I8, QuantKernels.int8PackedBytes(n, k));
                    QuantKernels.packInt8Weight(ctx, wq, wPacked);
                    for (long m : mList) {
                        Tensor x = Tensor.allocate(arena, DType.F32, m, k), y = Tensor.allocate(arena, DType.F32, m, n);
                        Tensor yb = Tensor.allocate(arena, DType.F32, m, n);
                        x.copyFrom(uniform(rnd, (int) (m * k), 1f));
                        Tensor xs8 = Tensor.allocate(arena, DType.I8, m, k);
                        for (long i = 0; i < m * k; i++) xs8.segment().set(ValueLayout.JAVA_BYTE, i, (byte) (rnd.nextInt(255) - 127));
                        OneDnnS8Matmul s8 = s8Needed ? OneDnnS8Matmul.create(ctx, m, wq, ws) : null;
                        try {
                            Runnable s8Run = s8 == null ? null : () -> s8.run(ctx, xs8, 1f / 127, null, yb);
                            Runnable f32Run = () -> Kernels.matmul(ctx, x, w, null, yb, MatmulOptions.LINEAR);
                            if (want.contains("bsr_int8")) {
                                for (double sp : new double[] {0.7, 0.9}) {
                                    try (BlockSparse.Weight bw = BlockSparse.prune(ctx, w, true, bk, bn, sp, DType.I8)) {
                                        rows.add(timer.row("bsr_int8", "s8 bsr " + bk + "x" + bn, m, k, n, sp, 0, "onednn_s8",
                                                () -> BlockSparse.matmul(ctx, x, bw, null, Kernels.Activation.NONE, y), s8Run));
                                    }
                                }
                            }
                            if (want.contains("llm_int8")) {
                                Tensor xo = Tensor.allocate(arena, DType.F32, m, k);
                                float[] xv = x.toFloatArray();
                                int nOut = (int) Math.round(0.01 * k);
                                int[] cols = rnd.ints(0, (int) k).distinct().limit(nOut).toArray();
                                for (int r = 0; r < m; r++) for (int c : cols) xv[(int) (r * k + c)] = (rnd.nextBoolean() ? 1 : -1) * (float) (6.5 + 3 * rnd.nextDouble());
                                xo.copyFrom(xv);
                                for (double frac : new double[] {0, (double) nOut / k}) {
                                    Tensor xin = frac == 0 ? x : xo;
                                    Runnable ours = () -> QuantKernels.matmulInt8(ctx, xin, wq, ws, null, null, y, QuantKernels.Int8Options.LLM_INT8, wPacked);
                                    rows.add(timer.row("llm_int8", "s8 llm.int8", m, k, n, 0, frac, "onednn_s8", ours, s8Run));
                                    rows.add(timer.row("llm_int8", "s8 llm.int8", m, k, n, 0, frac, f32Base, ours, f32Run));
                                }
                            }
                            if (want.contains("w8a8")) {
                                rows.add(timer.row("w8a8", "s8 w8a8", m, k, n, 0, 0, "onednn_s8",
                                        () -> QuantKernels.matmulInt8(ctx, x, wq, ws, null, null, y, QuantKernels.Int8Options.W8A8, wPacked), s8Run));
                            }
                            if (want.contains("bf16_gemm")) {
                                Tensor xb = Tensor.allocate(arena, DType.BF16, m, k);
                                xb.copyFrom(x.toFloatArray());
                                try (Kernels.PackedMatrix pb = Kernels.pack(ctx, w, true, DType.BF16)) {
                                    rows.add(timer.row("bf16_gemm", "bf16", m, k, n, 0, 0, f32Base,
                                            () -> Kernels.matmul(ctx, xb, pb, null, y, MatmulOptions.LINEAR), f32Run));
                                }
                            }
                        } finally {
                            if (s8 != null) s8.close();
                        }
                    }
                    if (want.contains("fp4_gemv")) {
                        /* weights cold on both sides, as in a decode step (a model's weights pass
                         * through the cache once per token): each call reads the next of enough
                         * copies to fill COLD_BYTES, above the last-level cache (as pt-bench --op fp4) */
                        int group = 64;
                        Tensor codes0 = Tensor.allocate(arena, DType.U4, n, k), sc0 = Tensor.allocate(arena, DType.F32, n, k / group);
                        Fp4.quantize(ctx, w, Fp4.Format.E2M1, group, 1f, null, codes0, sc0);
                        long fp4Bytes = codes0.segment().byteSize() + sc0.segment().byteSize();
                        Tensor[] codes = copies(arena, codes0, fp4Bytes), scs = copies(arena, sc0, fp4Bytes);
                        Tensor[] wCold = copies(arena, w, w.segment().byteSize());
                        Tensor x1 = Tensor.allocate(arena, DType.F32, 1, k), y1 = Tensor.allocate(arena, DType.F32, 1, n), y1b = Tensor.allocate(arena, DType.F32, 1, n);
                        x1.copyFrom(uniform(rnd, (int) k, 1f));
                        int[] next = {0, 0};
                        rows.add(timer.row("fp4_gemv", "fp4 e2m1 g64 cold", 1, k, n, 0, 0, f32Base + "_gemv",
                                () -> {
                                    int i = next[0]++ % codes.length;
                                    Fp4.matmul(ctx, x1, codes[i], scs[i], Fp4.Format.E2M1, group, null, y1);
                                },
                                () -> Kernels.matmul(ctx, x1, wCold[next[1]++ % wCold.length], null, y1b, MatmulOptions.LINEAR)));
                    }
                }
            }
        } finally {
            if (threads > 0) ctx.close();
        }
        rows.sort(Comparator.comparingInt(r -> KERNELS.indexOf(r.kernel())));   // stable: shapes keep their order
        print(rows, nThreads, reps, waitPolicy, null);
        return 0;
    }

    /** Prints the rows as a table or (--json) one JSON array; gpu null for CPU rows. */
    private void print(List<Row> rows, int threads, int reps, String waitPolicy, String gpu) {
        var out = spec.commandLine().getOut();
        if (json) out.println(toJson(rows, threads, reps, waitPolicy, gpu));
        else out.print(table(rows, threads, reps, gpu));
        out.flush();
    }

    /** Bytes of weight copies a cold GEMV row cycles through: above the last-level cache. */
    static final long COLD_BYTES = 256L << 20;

    /** {@code t} and copies of it, as many as fill COLD_BYTES at {@code bytesPerCopy} (all a call reads). */
    static Tensor[] copies(Arena arena, Tensor t, long bytesPerCopy) {
        Tensor[] out = new Tensor[(int) Math.max(1, COLD_BYTES / bytesPerCopy)];
        out[0] = t;
        for (int i = 1; i < out.length; i++) {
            out[i] = Tensor.allocate(arena, t.dtype(), t.shape());
            MemorySegment.copy(t.segment(), 0, out[i].segment(), 0, t.segment().byteSize());
        }
        return out;
    }

    static float[] uniform(SplittableRandom r, int n, float amp) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) ((r.nextDouble() * 2 - 1) * amp);
        return v;
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    static double min(double[] v) { return Arrays.stream(v).min().orElse(Double.NaN); }

    static double max(double[] v) { return Arrays.stream(v).max().orElse(Double.NaN); }

    static String toJson(List<Row> rows, int threads, int reps, String waitPolicy, String gpu) {
        ObjectMapper om = new ObjectMapper();
        ArrayNode a = om.createArrayNode();
        for (Row r : rows) {
            ObjectNode o = a.addObject();
            double to = median(r.oursS()), tb = median(r.baseS());
            o.put("kernel", r.kernel());
            o.put("dtype", r.dtype());
            o.put("shape", r.shape());
            o.put("sparsity", r.sparsity());
            o.put("ours_gops", r.ops() / to / 1e9);
            o.put("baseline", r.baseline());
            o.put("baseline_gops", r.ops() / tb / 1e9);
            o.put("ratio", tb / to);
            o.put("m", r.m());
            o.put("k", r.k());
            o.put("n", r.n());
            o.put("outlier_cols", r.outliers());
            o.put("ours_ms", to * 1e3);
            o.put("ours_ms_min", min(r.oursS()) * 1e3);
            o.put("ours_ms_max", max(r.oursS()) * 1e3);
            o.put("baseline_ms", tb * 1e3);
            o.put("baseline_ms_min", min(r.baseS()) * 1e3);
            o.put("baseline_ms_max", max(r.baseS()) * 1e3);
            o.put("ours_gops_min", r.ops() / max(r.oursS()) / 1e9);
            o.put("ours_gops_max", r.ops() / min(r.oursS()) / 1e9);
            o.put("baseline_gops_min", r.ops() / max(r.baseS()) / 1e9);
            o.put("baseline_gops_max", r.ops() / min(r.baseS()) / 1e9);
            o.put("unit", r.unit());
            o.put("repeats", reps);
            if (gpu != null) {
                o.put("device", "cuda");
                o.put("gpu", gpu);
                continue;
            }
            o.put("device", "cpu");
            o.put("threads", threads);
            if (waitPolicy == null) o.putNull("omp_wait_policy");
            else o.put("omp_wait_policy", waitPolicy);
        }
        try {
            return om.writeValueAsString(a);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static String table(List<Row> rows, int threads, int reps, String gpu) {
        StringBuilder sb = new StringBuilder();
        if (gpu != null) {
            sb.append(String.format(Locale.ROOT, "# %s; median of %d interleaved samples timed with CUDA events (min..max); GOPS = operations/t "
                    + "(GEMM 2MNK, attention 4*B*H*Sq*Sk*D, halved when causal); GB/s rows: bytes read / t, baseline = device copy "
                    + "(read + write bytes); ratio = baseline time / ours%n", gpu, reps));
            sb.append(String.format(Locale.ROOT, "%-12s %-14s %-26s %5s %30s  %-24s %30s %7s%n", "kernel", "dtype", "shape", "unit",
                    "ours", "baseline", "baseline", "ratio"));
            for (Row r : rows) {
                double to = median(r.oursS()), tb = median(r.baseS());
                sb.append(String.format(Locale.ROOT, "%-12s %-14s %-26s %5s %10.1f (%7.1f..%7.1f)  %-24s %10.1f (%7.1f..%7.1f) %7.2f%n", r.kernel(),
                        r.dtype(), r.shape(), r.unit(), r.ops() / to / 1e9, r.ops() / max(r.oursS()) / 1e9, r.ops() / min(r.oursS()) / 1e9,
                        r.baseline(), r.ops() / tb / 1e9, r.ops() / max(r.baseS()) / 1e9, r.ops() / min(r.baseS()) / 1e9, tb / to));
            }
            return sb.toString();
        }
        sb.append(String.format(Locale.ROOT, "# %d threads; median of %d interleaved samples (GOPS min..max); GOPS = 2MNK/t (dense-equivalent); "
                + "ratio = baseline time / ours; shape = MxKxN%n", threads, reps));
        sb.append(String.format(Locale.ROOT, "%-10s %-13s %-14s %5s %6s %22s  %-15s %22s %7s%n", "kernel", "dtype", "shape", "spars", "outl",
                "ours GOPS", "baseline", "baseline GOPS", "ratio"));
        for (Row r : rows) {
            double to = median(r.oursS()), tb = median(r.baseS());
            sb.append(String.format(Locale.ROOT, "%-10s %-13s %-14s %5.2f %5.1f%% %8.1f (%5.1f..%5.1f)  %-15s %8.1f (%5.1f..%5.1f) %7.2f%n", r.kernel(),
                    r.dtype(), r.shape(), r.sparsity(), 100 * r.outliers(), r.ops() / to / 1e9, r.ops() / max(r.oursS()) / 1e9,
                    r.ops() / min(r.oursS()) / 1e9, r.baseline(), r.ops() / tb / 1e9, r.ops() / max(r.baseS()) / 1e9, r.ops() / min(r.baseS()) / 1e9,
                    tb / to));
        }
        return sb.toString();
    }

    /**
     * Interleaved timing of ours and the baseline: seconds per call, one value per sample. With a
     * CUDA context the calls are enqueued back to back and each sample is the GPU time between two
     * CUDA events around them (the host clock otherwise).
     */
    static final class Timer {
        final int reps;
        final long minNs;
        final PrintStream err;
        final dev.panatron.cuda.CudaContext cuda;
        int done;

        Timer(int reps, long minNs, PrintStream err) { this(reps, minNs, err, null); }

        Timer(int reps, long minNs, PrintStream err, dev.panatron.cuda.CudaContext cuda) {
            this.reps = reps;
            this.minNs = minNs;
            this.err = err;
            this.cuda = cuda;
        }

        Row row(String kernel, String dtype, long m, long k, long n, double sparsity, double outliers, String baseline, Runnable ours, Runnable base) {
            err.printf(Locale.ROOT, "panatron bench kernels: [%d] %s %dx%dx%d sparsity %.2f outliers %.1f%% vs %s%n", ++done, kernel, m, k, n,
                    sparsity, 100 * outliers, baseline);
            double[][] s = samples(ours, base);
            return new Row(kernel, dtype, m, k, n, sparsity, outliers, baseline, s[0], s[1]);
        }

        /** A row of any shape: {@code ops} operations (or bytes, unit "GB/s") per call. */
        Row row(String kernel, String dtype, String shape, double ops, String unit, String baseline, Runnable ours, Runnable base) {
            err.printf(Locale.ROOT, "panatron bench kernels: [%d] %s %s %s vs %s%n", ++done, kernel, dtype, shape, baseline);
            double[][] s = samples(ours, base);
            return new Row(kernel, dtype, shape, ops, unit, 0, 0, 0, 0, 0, baseline, s[0], s[1]);
        }

        private double[][] samples(Runnable ours, Runnable base) {
            int io = calls(ours), ib = calls(base);
            /* untimed samples first, for ~1 s before the first row: the JIT compiles the call
             * path then (with -Xbatch, which the launcher gives `bench kernels`, in the foreground;
             * otherwise a C2 compile took one of two cores while a row was timed) */
            long until = System.nanoTime() + (warmedUp ? 0 : 1_000_000_000L);
            do {
                sample(ours, io);
                sample(base, ib);
            } while (System.nanoTime() < until);
            warmedUp = true;
            double[] so = new double[reps], sb = new double[reps];
            for (int r = 0; r < reps; r++) {
                if (r % 2 == 0) {
                    so[r] = sample(ours, io);
                    sb[r] = sample(base, ib);
                } else {
                    sb[r] = sample(base, ib);
                    so[r] = sample(ours, io);
                }
            }
            return new double[][] {so, sb};
        }

        private boolean warmedUp;

        /** Warms up and returns how many calls fill one sample of minNs. */
        int calls(Runnable f) {
            f.run();
            double t = Math.max(1e-9, sample(f, 1));
            return (int) Math.max(1, Math.min(100_000, Math.ceil(minNs / 1e9 / t)));
        }

        double sample(Runnable f, int calls) {
            if (cuda != null) {
                try (dev.panatron.cuda.CudaEvent a = cuda.newEvent(); dev.panatron.cuda.CudaEvent b = cuda.newEvent()) {
                    a.record();
                    for (int i = 0; i < calls; i++) f.run();
                    b.record();
                    return a.elapsedMs(b) / 1e3 / calls;
                }
            }
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) f.run();
            return (System.nanoTime() - t0) / 1e9 / calls;
        }
    }
}
