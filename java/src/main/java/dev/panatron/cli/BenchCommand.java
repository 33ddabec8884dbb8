package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.Embedder;
import dev.panatron.Tensor;
import dev.panatron.lm.DecoderModel;
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
@Command(name = "bench", description = "Throughput benchmarks.", subcommands = {BenchCommand.Embed.class, BenchCommand.Generate.class})
final class BenchCommand implements Runnable {
    @ParentCommand
    Main main;

    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing what to benchmark (bench embed, bench generate)");
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

        @Override
        public Integer call() throws Exception {
            if (batch < 1) throw new IllegalArgumentException("--batch must be >= 1, got " + batch);
            if (seq < 2) throw new IllegalArgumentException("--seq must be >= 2 ([CLS] and [SEP]), got " + seq);
            if (!(seconds > 0) || seconds > 3600) throw new IllegalArgumentException("--seconds must be in (0, 3600], got " + seconds);
            var err = bench.main.err;
            String result;
            try (Embedder e = model.load(Embedder.Pooling.MEAN, batch, err)) {
                if (seq > e.maxLength()) throw new IllegalArgumentException("--seq " + seq + " exceeds the model's " + e.maxLength() + " tokens");
                Random rnd = new Random(42);
                int vocab = e.tokenizer().vocabSize();
                int[][] ids = new int[batch][seq];
                for (int[] row : ids) {
                    for (int t = 0; t < seq; t++) row[t] = t == 0 ? 101 : t == seq - 1 ? 102 : 1000 + rnd.nextInt(Math.max(1, vocab - 1000));
                }
                err.printf(Locale.ROOT, "panatron bench embed: %s, batch %d x %d tokens, %d threads, %s; warming up%n", e.modelName(), batch, seq,
                        e.threads(), e.precision().name().toLowerCase(Locale.ROOT));
                long w0 = System.nanoTime();
                int warm = 0;
                while (warm < 3 || (System.nanoTime() - w0 < 1e9 && warm < 20)) {
                    e.embedIds(ids);
                    warm++;
                }
                err.printf(Locale.ROOT, "panatron bench embed: measuring for %.1f s%n", seconds);
                double[] per = new double[16];
                int n = 0;
                long t0 = System.nanoTime(), end = t0 + (long) (seconds * 1e9);
                while (System.nanoTime() < end || n == 0) {
                    long a = System.nanoTime();
                    e.embedIds(ids);
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
                    r.put("threads", e.threads());
                    r.put("precision", e.precision().name().toLowerCase(Locale.ROOT));
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
                    result = String.format(Locale.ROOT, "%s batch %d x %d tokens, %d threads, %s: %.1f seq/s, %.0f tok/s "
                                    + "(%d batches in %.2f s; per batch median %.2f ms, min %.2f, max %.2f)%n", e.modelName(), batch, seq, e.threads(),
                            e.precision().name().toLowerCase(Locale.ROOT), seqPerS, tokPerS, n, total, median * 1e3, s[0] * 1e3, s[n - 1] * 1e3);
                }
            }
            spec.commandLine().getOut().print(result);
            spec.commandLine().getOut().flush();
            return 0;
        }
    }

    /** Prefill and decode tokens/s of a decoder LM on random prompt ids (median of repeats). */
    @Command(name = "generate", description = "Prefill and decode tokens/s of a decoder LM.")
    static final class Generate implements Callable<Integer> {
        @Spec CommandSpec spec;
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
                var out = spec.commandLine().getOut();
                if (json) out.println(om.writeValueAsString(o));
                else out.printf("prefill %.1f tok/s, decode %.1f tok/s (median of %d; min %.1f max %.1f)%n", pre[repeats / 2], dec[repeats / 2], repeats, dec[0], dec[repeats - 1]);
            }
            spec.commandLine().getOut().flush();
            return 0;
        }
    }
}
