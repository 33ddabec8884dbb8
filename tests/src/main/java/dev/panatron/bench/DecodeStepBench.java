package dev.panatron.bench;

import dev.panatron.Context;
import dev.panatron.lm.DecoderModel;
import dev.panatron.Precision;
import dev.panatron.lm.Session;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * One decode step (batch 1) of a GPT-2-124M-shaped model (12 layers, 768 hidden, 12 heads,
 * vocab 50257, 1024 positions) with random f32 weights written to a temporary safetensors
 * file, with {@code context} tokens already in the KV cache. Weight bytes per token / step time
 * = the bandwidth the step achieves; compare with {@code pt-bench --op copy}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx2g"})
public class DecodeStepBench {
    @Param({"2"})
    public int threads;

    @Param({"128"})
    public int context;

    /** Linear-layer weights: FP32, BF16, INT8 or FP4 ({@link Precision}). */
    @Param({"FP32"})
    public String precision;

    Path dir;
    Context ctx;
    DecoderModel model;
    Session session;
    int[] token = {42};

    @Setup(Level.Trial)
    public void setup() throws IOException {
        dir = Files.createTempDirectory("gpt2-124m-random");
        writeGpt2(dir, 768, 12, 12, 50257, 1024, 7);
        ctx = Context.create(threads);
        model = DecoderModel.load(dir, Precision.parse(precision), ctx, 64);
        System.out.printf("%nweight bytes per token: %d%n", model.weightBytesPerToken());
        session = model.newSession(1, 1024);
        int[] prompt = new int[context];
        for (int i = 0; i < context; i++) prompt[i] = (i * 7919) % 50257;
        session.prefill(0, prompt);
    }

    @Benchmark
    public Object decodeStep() {
        if (session.length(0) >= session.maxSeq() - 1) {
            session.reset();
            session.prefill(0, new int[context]);
        }
        return session.decode(token);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        session.close();
        model.close();
        ctx.close();
        try (var s = Files.list(dir)) {
            for (Path p : s.toList()) Files.delete(p);
        }
        Files.delete(dir);
    }

    /** Writes config.json + model.safetensors of a random GPT-2 (HF names, Conv1D layout). */
    static void writeGpt2(Path dir, int h, int layers, int heads, int vocab, int positions, long seed) throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"model_type\":\"gpt2\",\"n_embd\":" + h + ",\"n_layer\":" + layers + ",\"n_head\":" + heads
                + ",\"vocab_size\":" + vocab + ",\"n_positions\":" + positions + ",\"activation_function\":\"gelu_new\",\"layer_norm_epsilon\":1e-5}");
        Map<String, long[]> t = new LinkedHashMap<>();
        t.put("wte.weight", new long[] {vocab, h});
        t.put("wpe.weight", new long[] {positions, h});
        for (int i = 0; i < layers; i++) {
            String p = "h." + i + ".";
            t.put(p + "ln_1.weight", new long[] {h});
            t.put(p + "ln_1.bias", new long[] {h});
            t.put(p + "attn.c_attn.weight", new long[] {h, 3L * h});
            t.put(p + "attn.c_attn.bias", new long[] {3L * h});
            t.put(p + "attn.c_proj.weight", new long[] {h, h});
            t.put(p + "attn.c_proj.bias", new long[] {h});
            t.put(p + "ln_2.weight", new long[] {h});
            t.put(p + "ln_2.bias", new long[] {h});
            t.put(p + "mlp.c_fc.weight", new long[] {h, 4L * h});
            t.put(p + "mlp.c_fc.bias", new long[] {4L * h});
            t.put(p + "mlp.c_proj.weight", new long[] {4L * h, h});
            t.put(p + "mlp.c_proj.bias", new long[] {h});
        }
        t.put("ln_f.weight", new long[] {h});
        t.put("ln_f.bias", new long[] {h});
        StringBuilder hdr = new StringBuilder("{");
        long off = 0;
        for (var e : t.entrySet()) {
            long n = 1;
            for (long d : e.getValue()) n *= d;
            if (hdr.length() > 1) hdr.append(',');
            hdr.append('"').append(e.getKey()).append("\":{\"dtype\":\"F32\",\"shape\":").append(java.util.Arrays.toString(e.getValue()))
                    .append(",\"data_offsets\":[").append(off).append(',').append(off + 4 * n).append("]}");
            off += 4 * n;
        }
        hdr.append('}');
        while ((hdr.length() + 8) % 8 != 0) hdr.append(' ');
        byte[] hb = hdr.toString().getBytes(StandardCharsets.UTF_8);
        SplittableRandom r = new SplittableRandom(seed);
        try (FileChannel ch = FileChannel.open(dir.resolve("model.safetensors"), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(hb.length).put(hb).flip();
            while (b.hasRemaining()) ch.write(b);
            b.clear();
            for (var e : t.entrySet()) {
                long n = 1;
                for (long d : e.getValue()) n *= d;
                boolean norm = e.getKey().contains("ln_") && e.getKey().endsWith(".weight");
                for (long i = 0; i < n; i++) {
                    if (b.remaining() < 4) {
                        b.flip();
                        while (b.hasRemaining()) ch.write(b);
                        b.clear();
                    }
                    b.putFloat(norm ? 1f : (float) (r.nextDouble() * 0.04 - 0.02));
                }
            }
            b.flip();
            while (b.hasRemaining()) ch.write(b);
        }
    }
}
