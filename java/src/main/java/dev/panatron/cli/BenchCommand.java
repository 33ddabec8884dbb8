package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.Embedder;
import dev.panatron.Tensor;
import dev.panatron.lm.DecoderModel;
import dev.panatron.Precision;
import dev.panatron.lm.Session;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;

/** {@code panatron bench <what>}: throughput measurements. */
@Command(name = "bench", description = "Throughput benchmarks.", subcommands = {BenchCommand.Embed.class, BenchCommand.Generate.class, BenchKernels.class})
final class BenchCommand implements Runnable {
    @ParentCommand
    Main main;

    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing what to benchmark (bench embed, bench generate, bench kernels)");
    }

    /**
     * {@code panatron bench embed [--model NAME] --batch B --seq L --threads T --seconds S
     * [--precision P] [--json]}: sequences per second of the encoder plus pooling on random
     * token ids ([CLS] ... [SEP], L tokens each, batches of B), after a warm-up.
     */
    @Command(name = "embed", description = {"Embedding throughput on random token ids: batches of B sequences of L tokens.",
            "Prints sequences and tokens per second (with --json: {\"seq_per_s\":..., \"tok_per_s\":...}); progress on stderr."})
    static final class Embed implements Callable<Integer> {
        @ParentCommand
        BenchCommand bench;

        @Spec
        CommandSpec spec;

        @Mixin
        ModelOptions model;

        @Option(names = "--batch", paramLabel = "B", defaultValue = "8", description = "sequences per batch (default ${DEFAULT-VALUE})")
        int batch;

        @Option(names = "--seq", paramLabel = "L", defaultValue = "128", description = "tokens per sequence, [CLS] and [SEP] included (default ${DEFAULT-VALUE})")
        int seq;

        @Option(names = "--seconds", paramLabel = "S", defaultValue = "10", description = "measuring time (default ${DEFAULT-VALUE})")
        double seconds;

        @Option(names = "--json", description = "print JSON")
        boolean json;

        @Option(names = "--device", paramLabel = "cpu|cuda", defaultValue = "cpu",
                description = "cpu (default), or cuda: GPU 0, the encoder in bf16 on packed sequences, pooling on the GPU")
        String device;

        @Override
        public Integer call() throws Exception {
            if (batch < 1) throw new IllegalArgumentException("--batch must be >= 1, got " + batch);
            if (seq < 2) throw new IllegalArgumentException("--seq must be >= 2 ([CLS] and [SEP]), got " + seq);
            if (!(seconds > 0) || seconds > 3600) throw new IllegalArgumentException("--seconds must be in (0, 3600], got " + seconds);
            var err = bench.main.err;
            String result;
            boolean cuda = DecoderCli.isCuda(device);
            if (cuda) EmbedCommand.requireGpuModel(model);
            try (dev.panatron.cuda.CudaContext cctx = cuda ? DecoderCli.cudaContext() : null;
                 Embedder e = model.load(Embedder.Pooling.MEAN, batch, err);
                 dev.panatron.cuda.CudaEmbedder g = cctx == null ? null : new dev.panatron.cuda.CudaEmbedder(cctx, e, batch)) {
                java.util.function.Function<int[][], java.util.List<float[]>> run = g != null ? g::embedIds : e::embedIds;
                String prec = g != null ? "bf16" : e.precision().name().toLowerCase(Locale.ROOT);
                String where = g != null ? "cuda (" + cctx.device().name() + ")" : e.threads() + " threads";
                if (seq > e.maxLength()) throw new IllegalArgumentException("--seq " + seq + " exceeds the model's " + e.maxLength() + " tokens");
                Random rnd = new Random(42);
                int vocab = e.tokenizer().vocabSize();
                int[][] ids = new int[batch][seq];
                for (int[] row : ids) {
                    for (int t = 0; t < seq; t++) row[t] = t == 0 ? 101 : t == seq - 1 ? 102 : 1000 + rnd.nextInt(Math.max(1, vocab - 1000));
                }
                err.printf(Locale.ROOT, "panatron bench embed: %s, batch %d x %d tokens, %s, %s; warming up%n", e.modelName(), batch, seq,
                        where, prec);
                long w0 = System.nanoTime();
                int warm = 0;
                while (warm < 3 || (System.nanoTime() - w0 < 1e9 && warm < 20)) {
                    run.apply(ids);
                    warm++;
                }
                err.printf(Locale.ROOT, "panatron bench embed: measuring for %.1f s%n", seconds);
                double[] per = new double[16];
                int n = 0;
                long t0 = System.nanoTime(), end = t0 + (long) (seconds * 1e9);
                while (System.nanoTime() < end || n == 0) {
                    long a = System.nanoTime();
                    run.apply(ids);
                    if (n == per.length) per = Arrays.copyOf(per, n * 2);
                    per[n++] = (System.nanoTime() - a) / 1e9;
                }
                double total = (System.nanoTime() - t0) / 1e9;
                double[] s = Arrays.copyOf(per, n);
                Arrays.sort(s);
                double median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
                double seqPerS = batch * n / total, tokPerS = seqPerS * seq;
                if (json) {
                    ObjectMapper om = new ObjectMapper();
                    ObjectNode r = om.createObjectNode();
                    r.put("model", e.modelName());
                    r.put("batch", batch);
                    r.put("seq", seq);
                    r.put("device", g != null ? "cuda" : "cpu");
                    if (g != null) r.put("gpu", cctx.device().name());
                    r.put("threads", e.threads());
                    r.put("precision", prec);
                    r.put("sparsity", e.conversion().sparsity());
                    r.put("packed", e.packed());
                    r.put("batches", n);
                    r.put("seconds", total);
                    r.put("seq_per_s", seqPerS);
                    r.put("tok_per_s", tokPerS);
                    r.put("batch_ms_median", median * 1e3);
                    r.put("batch_ms_min", s[0] * 1e3);
                    r.put("batch_ms_max", s[n - 1] * 1e3);
                    r.put("planner_peak_bytes", e.plannedBytes(batch, seq));
                    result = om.writeValueAsString(r) + System.lineSeparator();
                } else {
                    result = String.format(Locale.ROOT, "%s batch %d x %d tokens, %s, %s: %.1f seq/s, %.0f tok/s "
                                    + "(%d batches in %.2f s; per batch median %.2f ms, min %.2f, max %.2f)%n", e.modelName(), batch, seq, where,
                            prec + (e.conversion().sparsity() > 0 ? " sparsity " + e.conversion().sparsity() : ""), seqPerS, tokPerS, n, total, median * 1e3, s[0] * 1e3, s[n - 1] * 1e3);
                }
            }
            spec.commandLine().getOut().print(result);
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    /**
     * Prefill and decode tokens/s of a decoder LM on random prompt ids, and decode against two
     * memory-bandwidth bounds: weight bytes per token over the READ bandwidth (a pure streaming
     * read of 256 MiB, a 64-bit sum on the kernel threads: what a decode step, which only reads
     * its weights, could at best do) and over the COPY bandwidth ({@code pt-bench --op copy}'s
     * convention: a 256 MiB memcpy split over the threads, read + write bytes). Both are measured
     * natively on the context's threads ({@link dev.panatron.MemoryStream}), interleaved with the
     * generation repeats. Median of repeats.
     */
    @Command(name = "generate", description = "Prefill and decode tokens/s of a decoder LM, decode as a fraction of the bandwidth bound.")
    static final class Generate implements Callable<Integer> {
        @Spec CommandSpec spec;
        @Option(names = "--model", required = true, description = "HF model directory") Path model;
        @Option(names = "--prompt-len", defaultValue = "64", description = "prompt tokens (random ids; default ${DEFAULT-VALUE})") int promptLen;
        @Option(names = "--new-tokens", defaultValue = "32", description = "decode steps per repeat (default ${DEFAULT-VALUE})") int newTokens;
        @Option(names = "--batch", defaultValue = "1", description = "sequences decoded together (default ${DEFAULT-VALUE})") int batch;
        @Option(names = "--repeats", defaultValue = "5", description = "repeats (default ${DEFAULT-VALUE}); the first is a warm-up and not counted") int repeats;
        @Option(names = "--precision", defaultValue = "fp32", description = "fp32, bf16, int8 or fp4") String precision;
        @Option(names = "--json", description = "print one JSON object") boolean json;
        @Option(names = "--threads", defaultValue = "0", description = "kernel threads (0 = every core)") int threads;
        @Option(names = "--copy-mib", defaultValue = "256", description = "MiB copied, and read, per bandwidth sample (default ${DEFAULT-VALUE})") int copyMib;
        @Option(names = "--device", defaultValue = "cpu", description = "cpu, or cuda (GPU 0: bf16 weights, greedy decode steps replayed as a CUDA graph)") String device;
        @Option(names = "--no-graph", description = "cuda: enqueue the decode step's kernels one by one instead of replaying the captured graph") boolean noGraph;
        @Option(names = "--fuse-norms", description = "cuda, batch <= 8: norms and residual adds fused into the GEMV kernels") boolean fuseNorms;
        @Option(names = "--cublaslt-only", description = "cuda: every linear through cuBLASLt (default: the GEMV kernel for batch <= 8)") boolean cublasltOnly;

        @Override
        public Integer call() throws Exception {
            if (promptLen < 1 || newTokens < 1 || batch < 1 || repeats < 1 || copyMib < 1) {
                throw new IllegalArgumentException("--prompt-len, --new-tokens, --batch, --repeats and --copy-mib must be >= 1");
            }
            if (DecoderCli.isCuda(device)) return callCuda();
            dev.panatron.Context ctx = threads > 0 ? dev.panatron.Context.create(threads) : dev.panatron.Context.shared();
            int copyThreads = ctx.threads();
            try (DecoderModel m = DecoderModel.load(model, Precision.parse(precision), ctx, 64);
                 java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                int v = m.config().vocab();
                if (promptLen + newTokens > m.config().maxPositions()) {
                    throw new IllegalArgumentException("--prompt-len " + promptLen + " + --new-tokens " + newTokens + " exceeds the context window of "
                            + m.config().maxPositions() + " tokens");
                }
                long copyBytes = (long) copyMib << 20;
                java.lang.foreign.MemorySegment src = arena.allocate(copyBytes, 64), dst = arena.allocate(copyBytes, 64);
                src.fill((byte) 1);
                dst.fill((byte) 2);
                SplittableRandom r = new SplittableRandom(42);
                int[][] prompts = new int[batch][promptLen];
                for (int[] p : prompts) for (int i = 0; i < promptLen; i++) p[i] = r.nextInt(v);
                int n = repeats;
                double[] pre = new double[n], dec = new double[n], bw = new double[n], decCpu = new double[n], bwCpu = new double[n];
                double[] rbw = new double[n], rbwCpu = new double[n];
                var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
                try (Session s = m.newSession(batch, promptLen + newTokens)) {
                    int[] step = new int[batch];
                    for (int rep = -1; rep < n; rep++) {   // rep -1: warm-up
                        long c0 = os.getProcessCpuTime();
                        double gbs = 0;   // 4 copies per sample: the process CPU clock ticks in ~10 ms steps
                        for (int c = 0; c < 4; c++) gbs += copyGbs(ctx, src, dst, copyBytes) / 4;
                        long c1 = os.getProcessCpuTime();
                        double rgbs = 0;  // 4 reads of the same 256 MiB (the source of the copies)
                        for (int c = 0; c < 4; c++) rgbs += readGbs(ctx, src, copyBytes) / 4;
                        long c1r = os.getProcessCpuTime();
                        s.reset();
                        long t0 = System.nanoTime();
                        for (int b = 0; b < batch; b++) s.prefill(b, prompts[b]);
                        long t1 = System.nanoTime(), c2 = os.getProcessCpuTime();
                        for (int i = 0; i < newTokens; i++) {
                            Tensor l = s.decode(step);
                            for (int b = 0; b < batch; b++) {
                                float f = l.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, (long) b * v);
                                step[b] = (int) ((Float.isFinite(f) ? Math.abs(f) * 1000 : 0) % v);
                            }
                        }
                        long t2 = System.nanoTime(), c3 = os.getProcessCpuTime();
                        if (rep < 0) continue;
                        // CPU clock (process CPU time over the threads): what a quiet machine's wall clock would show
                        decCpu[rep] = (c3 - c2) / 1e6 / ctx.threads() / newTokens;
                        // NaN (JSON null) when the samples took less than one tick of the CPU clock (a small --copy-mib)
                        bwCpu[rep] = c1 > c0 ? 4 * 2.0 * copyBytes / ((c1 - c0) / 1e9 / copyThreads) / 1e9 : Double.NaN;
                        rbwCpu[rep] = c1r > c1 ? 4.0 * copyBytes / ((c1r - c1) / 1e9 / copyThreads) / 1e9 : Double.NaN;
                        rbw[rep] = rgbs;
                        pre[rep] = (double) batch * promptLen / ((t1 - t0) / 1e9);
                        dec[rep] = (double) batch * newTokens / ((t2 - t1) / 1e9);
                        bw[rep] = gbs;
                    }
                }
                long wb = m.weightBytesPerToken();
                // the bound: one decode step (batch sequences) reads every weight once
                double[] frac = new double[n];
                for (int i = 0; i < n; i++) frac[i] = dec[i] / batch * wb / (bw[i] * 1e9);
                double[] fracCpu = new double[n];
                for (int i = 0; i < n; i++) fracCpu[i] = wb / (bwCpu[i] * 1e9) * 1e3 / (decCpu[i] / batch);
                // against the read bound, the repeat's own read sample
                double[] rfrac = new double[n], rfracCpu = new double[n];
                for (int i = 0; i < n; i++) {
                    rfrac[i] = dec[i] / batch * wb / (rbw[i] * 1e9);
                    rfracCpu[i] = wb / (rbwCpu[i] * 1e9) * 1e3 / (decCpu[i] / batch);
                }
                Arrays.sort(rfrac);
                Arrays.sort(rfracCpu);
                Arrays.sort(rbw);
                Arrays.sort(rbwCpu);
                Arrays.sort(fracCpu);
                Arrays.sort(decCpu);
                Arrays.sort(bwCpu);
                Arrays.sort(pre);
                Arrays.sort(dec);
                Arrays.sort(bw);
                Arrays.sort(frac);
                double boundTps = batch * bw[n / 2] * 1e9 / wb, readBoundTps = batch * rbw[n / 2] * 1e9 / wb;
                ObjectMapper om = new ObjectMapper();
                ObjectNode o = om.createObjectNode();
                o.put("model", model.toString());
                o.put("precision", Precision.parse(precision).name().toLowerCase(java.util.Locale.ROOT));
                o.put("threads", ctx.threads());
                o.put("batch", batch);
                o.put("prompt_len", promptLen);
                o.put("new_tokens", newTokens);
                o.put("repeats", n);
                o.put("prefill_tokens_per_s", pre[n / 2]);
                o.put("prefill_tokens_per_s_min", pre[0]);
                o.put("prefill_tokens_per_s_max", pre[n - 1]);
                o.put("decode_tokens_per_s", dec[n / 2]);
                o.put("decode_tokens_per_s_min", dec[0]);
                o.put("decode_tokens_per_s_max", dec[n - 1]);
                o.put("weight_bytes_per_token", wb);
                o.put("copy_gbs", bw[n / 2]);
                o.put("copy_gbs_min", bw[0]);
                o.put("copy_gbs_max", bw[n - 1]);
                o.put("bound_decode_tokens_per_s", boundTps);
                o.put("decode_fraction_of_bound", frac[n / 2]);
                o.put("decode_fraction_of_bound_min", frac[0]);
                o.put("decode_fraction_of_bound_max", frac[n - 1]);
                o.put("decode_cpu_ms_per_step", decCpu[n / 2]);
                putFinite(o, "copy_cpu_gbs", bwCpu[n / 2]);
                putFinite(o, "decode_cpu_fraction_of_bound", fracCpu[n / 2]);
                putFinite(o, "decode_cpu_fraction_of_bound_min", fracCpu[0]);
                putFinite(o, "decode_cpu_fraction_of_bound_max", fracCpu[n - 1]);
                o.put("read_gbs", rbw[n / 2]);
                o.put("read_gbs_min", rbw[0]);
                o.put("read_gbs_max", rbw[n - 1]);
                o.put("bound_read_decode_tokens_per_s", readBoundTps);
                o.put("decode_fraction_of_read_bound", rfrac[n / 2]);
                o.put("decode_fraction_of_read_bound_min", rfrac[0]);
                o.put("decode_fraction_of_read_bound_max", rfrac[n - 1]);
                putFinite(o, "read_cpu_gbs", rbwCpu[n / 2]);
                putFinite(o, "decode_cpu_fraction_of_read_bound", rfracCpu[n / 2]);
                var out = spec.commandLine().getOut();
                if (json) out.println(om.writeValueAsString(o));
                else {
                    out.printf("%s, %s, %d threads, batch %d, prompt %d, %d new tokens, median of %d (min..max)%n", model, o.get("precision").asText(),
                            ctx.threads(), batch, promptLen, newTokens, n);
                    out.printf("  prefill %.1f tok/s (%.1f..%.1f)%n", pre[n / 2], pre[0], pre[n - 1]);
                    out.printf("  decode  %.2f tok/s (%.2f..%.2f) = %.1f ms/step%n", dec[n / 2], dec[0], dec[n - 1], 1000.0 * batch / dec[n / 2]);
                    out.printf("  bound   %.1f MB of weights per step / copy %.2f GB/s (%.2f..%.2f; read + write bytes) = %.2f tok/s; decode at %.0f%% of it (%.0f..%.0f%%)%n",
                            wb / 1e6, bw[n / 2], bw[0], bw[n - 1], boundTps, 100 * frac[n / 2], 100 * frac[0], 100 * frac[n - 1]);
                    out.printf("  bound   %.1f MB of weights per step / read %.2f GB/s (%.2f..%.2f; streaming read) = %.2f tok/s; decode at %.0f%% of it (%.0f..%.0f%%)%n",
                            wb / 1e6, rbw[n / 2], rbw[0], rbw[n - 1], readBoundTps, 100 * rfrac[n / 2], 100 * rfrac[0], 100 * rfrac[n - 1]);
                    out.printf("  cpu clock (process CPU time / threads; a loaded machine's wall clock overstates both): decode %.1f ms/step, copy %.2f GB/s,"
                            + " decode at %.0f%% of the copy bound (%.0f..%.0f%%); read %.2f GB/s, decode at %.0f%% of the read bound%n", decCpu[n / 2], bwCpu[n / 2],
                            100 * fracCpu[n / 2], 100 * fracCpu[0], 100 * fracCpu[n - 1], rbwCpu[n / 2], 100 * rfracCpu[n / 2]);
                }
            }
            spec.commandLine().getOut().flush();
            return 0;
        }

        /**
         * The GPU run: prompts of random ids prefilled per sequence, then greedy decode steps chained
         * on the device (no host round trip); the bound is the device-to-device copy bandwidth
         * (read + write bytes) measured between repeats.
         */
        private int callCuda() throws Exception {
            Precision p = Precision.parse(precision);
            if (p != Precision.FP32 && p != Precision.BF16) throw new IllegalArgumentException("--device cuda runs bf16 weights: --precision " + precision + " is CPU only");
            try (dev.panatron.cuda.CudaContext cctx = DecoderCli.cudaContext();
                 dev.panatron.lm.CudaDecoder d = dev.panatron.lm.CudaDecoder.load(model, cctx, batch, promptLen + newTokens, 512)) {
                d.setUseGraph(!noGraph);
                d.setUseGemv(!cublasltOnly);
                d.setFuseNorms(fuseNorms);
                int v = d.config().vocab();
                long copyBytes = (long) copyMib << 20;
                dev.panatron.cuda.DeviceTensor src = cctx.allocate(dev.panatron.DType.F32, copyBytes / 4), dst = cctx.allocate(dev.panatron.DType.F32, copyBytes / 4);
                src.fillBytes(1);
                SplittableRandom r = new SplittableRandom(42);
                int[][] prompts = new int[batch][promptLen];
                for (int[] q : prompts) for (int i = 0; i < promptLen; i++) q[i] = r.nextInt(v);
                int n = repeats;
                double[] pre = new double[n], dec = new double[n], bw = new double[n];
                for (int rep = -1; rep < n; rep++) {
                    cctx.synchronize();
                    long c0 = System.nanoTime();
                    for (int c = 0; c < 8; c++) dst.copyFrom(src);
                    cctx.synchronize();
                    long c1 = System.nanoTime();
                    d.reset();
                    long t0 = System.nanoTime();
                    for (int b = 0; b < batch; b++) d.prefill(b, prompts[b]);
                    d.synchronize();
                    long t1 = System.nanoTime();
                    for (int i = 0; i < newTokens; i++) d.step();
                    d.synchronize();
                    long t2 = System.nanoTime();
                    if (rep < 0) continue;
                    bw[rep] = 8 * 2.0 * copyBytes / ((c1 - c0) / 1e9) / 1e9;
                    pre[rep] = (double) batch * promptLen / ((t1 - t0) / 1e9);
                    dec[rep] = (double) batch * newTokens / ((t2 - t1) / 1e9);
                }
                src.close();
                dst.close();
                long wb = d.weightBytesPerToken();
                double[] frac = new double[n];
                for (int i = 0; i < n; i++) frac[i] = dec[i] / batch * wb / (bw[i] * 1e9);
                // the statistics of bench kernels (BenchKernels.median / min / max)
                double preMed = BenchKernels.median(pre), decMed = BenchKernels.median(dec), bwMed = BenchKernels.median(bw);
                double fracMed = BenchKernels.median(frac);
                double boundTps = batch * bwMed * 1e9 / wb;
                ObjectMapper om = new ObjectMapper();
                ObjectNode o = om.createObjectNode();
                o.put("model", model.toString());
                o.put("device", cctx.device().name());
                o.put("precision", "bf16");
                o.put("cuda_graph", !noGraph);
                o.put("gemv", !cublasltOnly && batch <= 8);
                o.put("fused_norms", fuseNorms && !cublasltOnly && batch <= 8);
                o.put("batch", batch);
                o.put("prompt_len", promptLen);
                o.put("new_tokens", newTokens);
                o.put("repeats", n);
                o.put("prefill_tokens_per_s", preMed);
                o.put("prefill_tokens_per_s_min", BenchKernels.min(pre));
                o.put("prefill_tokens_per_s_max", BenchKernels.max(pre));
                o.put("decode_tokens_per_s", decMed);
                o.put("decode_tokens_per_s_min", BenchKernels.min(dec));
                o.put("decode_tokens_per_s_max", BenchKernels.max(dec));
                o.put("decode_ms_per_step", 1000.0 * batch / decMed);
                o.put("weight_bytes_per_token", wb);
                o.put("copy_gbs", bwMed);
                o.put("bound_decode_tokens_per_s", boundTps);
                o.put("decode_fraction_of_bound", fracMed);
                var out = spec.commandLine().getOut();
                if (json) out.println(om.writeValueAsString(o));
                else {
                    out.printf("%s on %s, bf16, %s, batch %d, prompt %d, %d new tokens, median of %d (min..max)%n", model, cctx.device().name(),
                            noGraph ? "eager" : "CUDA graph", batch, promptLen, newTokens, n);
                    out.printf("  prefill %.1f tok/s (%.1f..%.1f)%n", preMed, BenchKernels.min(pre), BenchKernels.max(pre));
                    out.printf("  decode  %.1f tok/s (%.1f..%.1f) = %.3f ms/step%n", decMed, BenchKernels.min(dec), BenchKernels.max(dec), 1000.0 * batch / decMed);
                    out.printf("  bound   %.1f MB of weights per step / device copy %.0f GB/s = %.0f tok/s; decode at %.0f%% of it%n",
                            wb / 1e6, bwMed, boundTps, 100 * fracMed);
                }
                out.flush();
            }
            return 0;
        }

        /** v, or JSON null when it is not finite. */
        static void putFinite(ObjectNode o, String key, double v) {
            if (Double.isFinite(v)) o.put(key, v);
            else o.putNull(key);
        }

        /** Copy bandwidth in GB/s (read + write bytes, pt-bench's convention): a native memcpy split over ctx's threads. */
        static double copyGbs(dev.panatron.Context ctx, java.lang.foreign.MemorySegment src, java.lang.foreign.MemorySegment dst, long bytes) {
            long t0 = System.nanoTime();
            dev.panatron.MemoryStream.copy(ctx, src.asSlice(0, bytes), dst);
            return 2.0 * bytes / ((System.nanoTime() - t0) / 1e9) / 1e9;
        }

        /** Read bandwidth in GB/s: a native streaming read (64-bit sum) split over ctx's threads. */
        static double readGbs(dev.panatron.Context ctx, java.lang.foreign.MemorySegment src, long bytes) {
            long t0 = System.nanoTime();
            dev.panatron.MemoryStream.read(ctx, src.asSlice(0, bytes));
            return bytes / ((System.nanoTime() - t0) / 1e9) / 1e9;
        }
    }
}
