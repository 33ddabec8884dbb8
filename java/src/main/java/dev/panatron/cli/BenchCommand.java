package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.Tensor;
import dev.panatron.lm.DecoderModel;
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

    /** Prefill and decode tokens/s of a decoder LM on random prompt ids (median of repeats). */
    @Command(name = "generate", description = "Prefill and decode tokens/s of a decoder LM.")
    static final class Generate implements Callable<Integer> {
        @Option(names = "--model", required = true) Path model;
        @Option(names = "--prompt-len", defaultValue = "64") int promptLen;
        @Option(names = "--new-tokens", defaultValue = "32") int newTokens;
        @Option(names = "--batch", defaultValue = "1") int batch;
        @Option(names = "--repeats", defaultValue = "3") int repeats;
        @Option(names = "--precision", defaultValue = "fp32") String precision;
        @Option(names = "--json") boolean json;
        @Option(names = "--threads", defaultValue = "0", description = "kernel threads (0 = the default)") int threads;

        @Override
        public Integer call() throws Exception {
            dev.panatron.Context ctx = threads > 0 ? dev.panatron.Context.create(threads) : dev.panatron.Context.shared();
            try (DecoderModel m = DecoderModel.load(model, GenerateCommand.parsePrecision(precision), ctx, 64)) {
                int v = m.config().vocab();
                SplittableRandom r = new SplittableRandom(42);
                int[][] prompts = new int[batch][promptLen];
                for (int[] p : prompts) for (int i = 0; i < promptLen; i++) p[i] = r.nextInt(v);
                double[] pre = new double[repeats], dec = new double[repeats];
                try (Session s = m.newSession(batch, Math.min(m.config().maxPositions(), promptLen + newTokens))) {
                    int[] step = new int[batch];
                    for (int rep = 0; rep < repeats; rep++) {
                        s.reset();
                        long t0 = System.nanoTime();
                        for (int b = 0; b < batch; b++) s.prefill(b, prompts[b]);
                        long t1 = System.nanoTime();
                        for (int i = 0; i < newTokens; i++) {
                            Tensor l = s.decode(step);
                            step[0] = (int) (Math.abs(l.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0) * 1000) % v);
                        }
                        long t2 = System.nanoTime();
                        pre[rep] = (double) batch * promptLen / ((t1 - t0) / 1e9);
                        dec[rep] = (double) batch * newTokens / ((t2 - t1) / 1e9);
                    }
                }
                Arrays.sort(pre);
                Arrays.sort(dec);
                ObjectMapper om = new ObjectMapper();
                ObjectNode o = om.createObjectNode();
                o.put("model", model.toString());
                o.put("precision", precision);
                o.put("batch", batch);
                o.put("prompt_len", promptLen);
                o.put("new_tokens", newTokens);
                o.put("prefill_tokens_per_s", pre[repeats / 2]);
                o.put("decode_tokens_per_s", dec[repeats / 2]);
                o.put("decode_tokens_per_s_min", dec[0]);
                o.put("decode_tokens_per_s_max", dec[repeats - 1]);
                o.put("weight_bytes_per_token", m.weightBytesPerToken());
                if (json) System.out.println(om.writeValueAsString(o));
                else System.out.printf("prefill %.1f tok/s, decode %.1f tok/s (median of %d; min %.1f max %.1f)%n", pre[repeats / 2], dec[repeats / 2], repeats, dec[0], dec[repeats - 1]);
            }
            return 0;
        }
    }
}
