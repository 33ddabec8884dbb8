package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.Tensor;
import dev.panatron.lm.DecoderModel;
import dev.panatron.lm.Precision;
import dev.panatron.lm.Session;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/** {@code panatron bench ...}: speed measurements. */
@Command(name = "bench", description = "Benchmarks.", subcommands = {BenchCommand.Generate.class})
final class BenchCommand implements Runnable {
    @Override
    public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    /**
     * Prefill and decode tokens/s of a decoder LM on random prompt ids, and decode against the
     * memory-bandwidth bound (weight bytes per token / copy bandwidth, the copy measured as
     * {@code pt-bench --op copy} does: a 256 MiB memcpy split over the threads, read + write
     * bytes), the copy runs interleaved with the generation repeats. Median of repeats.
     */
    @Command(name = "generate", description = "Prefill and decode tokens/s of a decoder LM, decode as a fraction of the bandwidth bound.")
    static final class Generate implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "HF model directory") Path model;
        @Option(names = "--prompt-len", defaultValue = "64", description = "prompt tokens (random ids; default ${DEFAULT-VALUE})") int promptLen;
        @Option(names = "--new-tokens", defaultValue = "32", description = "decode steps per repeat (default ${DEFAULT-VALUE})") int newTokens;
        @Option(names = "--batch", defaultValue = "1", description = "sequences decoded together (default ${DEFAULT-VALUE})") int batch;
        @Option(names = "--repeats", defaultValue = "5", description = "repeats (default ${DEFAULT-VALUE}); the first is a warm-up and not counted") int repeats;
        @Option(names = "--precision", defaultValue = "fp32", description = "fp32, bf16, int8 or fp4") String precision;
        @Option(names = "--json", description = "print one JSON object") boolean json;
        @Option(names = "--threads", defaultValue = "0", description = "kernel threads (0 = every core)") int threads;
        @Option(names = "--copy-mib", defaultValue = "256", description = "MiB copied per bandwidth sample (default ${DEFAULT-VALUE})") int copyMib;

        @Override
        public Integer call() throws Exception {
            if (promptLen < 1 || newTokens < 1 || batch < 1 || repeats < 1 || copyMib < 1) {
                throw new IllegalArgumentException("--prompt-len, --new-tokens, --batch, --repeats and --copy-mib must be >= 1");
            }
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
                var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
                try (Session s = m.newSession(batch, promptLen + newTokens)) {
                    int[] step = new int[batch];
                    for (int rep = -1; rep < n; rep++) {   // rep -1: warm-up
                        long c0 = os.getProcessCpuTime();
                        double gbs = 0;   // 4 copies per sample: the process CPU clock ticks in ~10 ms steps
                        for (int c = 0; c < 4; c++) gbs += copyGbs(src, dst, copyBytes, copyThreads) / 4;
                        long c1 = os.getProcessCpuTime();
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
                        bwCpu[rep] = 4 * 2.0 * copyBytes / ((c1 - c0) / 1e9 / copyThreads) / 1e9;
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
                Arrays.sort(fracCpu);
                Arrays.sort(decCpu);
                Arrays.sort(bwCpu);
                Arrays.sort(pre);
                Arrays.sort(dec);
                Arrays.sort(bw);
                Arrays.sort(frac);
                double boundTps = batch * bw[n / 2] * 1e9 / wb;
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
                o.put("copy_cpu_gbs", bwCpu[n / 2]);
                o.put("decode_cpu_fraction_of_bound", fracCpu[n / 2]);
                o.put("decode_cpu_fraction_of_bound_min", fracCpu[0]);
                o.put("decode_cpu_fraction_of_bound_max", fracCpu[n - 1]);
                if (json) System.out.println(om.writeValueAsString(o));
                else {
                    System.out.printf("%s, %s, %d threads, batch %d, prompt %d, %d new tokens, median of %d (min..max)%n", model, o.get("precision").asText(),
                            ctx.threads(), batch, promptLen, newTokens, n);
                    System.out.printf("  prefill %.1f tok/s (%.1f..%.1f)%n", pre[n / 2], pre[0], pre[n - 1]);
                    System.out.printf("  decode  %.2f tok/s (%.2f..%.2f) = %.1f ms/step%n", dec[n / 2], dec[0], dec[n - 1], 1000.0 * batch / dec[n / 2]);
                    System.out.printf("  bound   %.1f MB of weights per step / copy %.2f GB/s (%.2f..%.2f) = %.2f tok/s; decode at %.0f%% of it (%.0f..%.0f%%)%n",
                            wb / 1e6, bw[n / 2], bw[0], bw[n - 1], boundTps, 100 * frac[n / 2], 100 * frac[0], 100 * frac[n - 1]);
                    System.out.printf("  cpu clock (process CPU time / threads; a loaded machine's wall clock overstates both): decode %.1f ms/step, copy %.2f GB/s,"
                            + " decode at %.0f%% of the bound (%.0f..%.0f%%)%n", decCpu[n / 2], bwCpu[n / 2], 100 * fracCpu[n / 2], 100 * fracCpu[0], 100 * fracCpu[n - 1]);
                }
            }
            return 0;
        }

        /** Copy bandwidth in GB/s (read + write bytes, pt-bench's convention): one memcpy split over threads. */
        static double copyGbs(java.lang.foreign.MemorySegment src, java.lang.foreign.MemorySegment dst, long bytes, int threads) throws InterruptedException {
            int t = Math.max(1, Math.min(threads, 64));
            long chunk = (bytes / t + 63) & ~63L;
            Thread[] th = new Thread[t];
            long t0 = System.nanoTime();
            for (int i = 1; i < t; i++) {
                long off = chunk * i, len = Math.max(0, Math.min(chunk, bytes - off));
                th[i] = Thread.ofPlatform().start(() -> java.lang.foreign.MemorySegment.copy(src, off, dst, off, len));
            }
            java.lang.foreign.MemorySegment.copy(src, 0, dst, 0, Math.min(chunk, bytes));
            for (int i = 1; i < t; i++) th[i].join();
            return 2.0 * bytes / ((System.nanoTime() - t0) / 1e9) / 1e9;
        }
    }
}
