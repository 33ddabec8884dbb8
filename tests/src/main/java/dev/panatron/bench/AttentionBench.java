package dev.panatron.bench;

import dev.panatron.AttentionOptions;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.KvCache;
import dev.panatron.Tensor;
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

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;

/**
 * Flash attention through the Java façade, against a naive materialized attention in the same
 * JMH run: scores = Q Kᵀ and out = P V through {@link Kernels#matmul} (oneDNN where built in),
 * with the softmax in plain Java (parallel over rows). The native harness
 * ({@code pt-bench --op attn}) has the same comparison with a vectorized C softmax; use it for
 * the kernel ratio, this one for what a Java caller sees.
 *
 * <pre>
 *   ./mvnw -Pbench package -DskipTests
 *   java --enable-native-access=ALL-UNNAMED -jar tests/target/benchmarks.jar AttentionBench
 *   java ... -jar tests/target/benchmarks.jar AttentionBench.Prefill -p seq=2048 -p dtype=F32
 * </pre>
 */
public class AttentionBench {
    private AttentionBench() {}

    static void fill(Tensor t, long seed, float scale) {
        Random r = new Random(seed);
        float[] x = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < x.length; i++) x[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        t.copyFrom(x);
    }

    /** Row softmax (in place, f32) of {@code rows} rows of {@code n} over [0, valid(row)). */
    static void softmaxRows(MemorySegment s, int rows, int n, float scale, boolean causal) {
        IntStream.range(0, rows).parallel().forEach(r -> {
            float[] row = new float[n];
            long off = (long) r * n * 4;
            MemorySegment.copy(s, ValueLayout.JAVA_FLOAT, off, row, 0, n);
            int valid = causal ? r % n + 1 : n;
            float mx = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < valid; j++) mx = Math.max(mx, row[j]);
            float sum = 0;
            for (int j = 0; j < valid; j++) {
                row[j] = (float) Math.exp((row[j] - mx) * scale);
                sum += row[j];
            }
            float inv = 1 / sum;
            for (int j = 0; j < n; j++) row[j] = j < valid ? row[j] * inv : 0;
            MemorySegment.copy(row, 0, s, ValueLayout.JAVA_FLOAT, off, n);
        });
    }

    /** Prefill: B=1, H=8, Hkv=2, D=128 (a GQA decoder layer), causal. */
    @State(Scope.Benchmark)
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 2, time = 2)
    @Measurement(iterations = 5, time = 2)
    @Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
    public static class Prefill {
        @Param({"512", "2048"})
        int seq;

        @Param({"F32"})
        String dtype;

        @Param({"true"})
        boolean causal;

        final int h = 8, hkv = 2, d = 128;
        Context ctx;
        Tensor q, k, v, out, scores, naiveOut;

        @Setup(Level.Trial)
        public void setUp() {
            ctx = Context.create(0);
            DType dt = DType.valueOf(dtype);
            q = Tensor.allocate(dt, 1, seq, h, d);
            k = Tensor.allocate(dt, 1, seq, hkv, d);
            v = Tensor.allocate(dt, 1, seq, hkv, d);
            out = Tensor.allocate(dt, 1, seq, h, d);
            naiveOut = Tensor.allocate(DType.F32, 1, seq, h, d);
            fill(q, 1, 1);
            fill(k, 2, 1);
            fill(v, 3, 1);
            scores = Tensor.allocate(DType.F32, h / hkv, seq, seq);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            for (Tensor t : new Tensor[] {q, k, v, out, scores, naiveOut}) t.close();
            ctx.close();
        }

        @Benchmark
        public Tensor flash() {
            Kernels.flashAttention(ctx, q, k, v, out, causal ? AttentionOptions.CAUSAL : AttentionOptions.DEFAULT);
            return out;
        }

        /** f32 only: Q Kᵀ and P V per kv head through oneDNN GEMMs, softmax in Java. */
        @Benchmark
        public Tensor naive() {
            if (q.dtype() != DType.F32) throw new IllegalStateException("the naive baseline runs f32 (use pt-bench for bf16)");
            int g = h / hkv;
            float scale = (float) (1 / Math.sqrt(d));
            for (int kv = 0; kv < hkv; kv++) {
                long es = 4;
                // q heads kv*g .. kv*g+g-1 as [g, S, D]; k and v of this kv head as [S, D]
                Tensor qh = Tensor.wrap(q.segment().asSlice((long) kv * g * d * es), DType.F32, new long[] {g, seq, d}, new long[] {d * es, (long) h * d * es, es});
                Tensor kh = Tensor.wrap(k.segment().asSlice((long) kv * d * es), DType.F32, new long[] {seq, d}, new long[] {(long) hkv * d * es, es});
                Tensor vh = Tensor.wrap(v.segment().asSlice((long) kv * d * es), DType.F32, new long[] {seq, d}, new long[] {(long) hkv * d * es, es});
                Tensor oh = Tensor.wrap(naiveOut.segment().asSlice((long) kv * g * d * es), DType.F32, new long[] {g, seq, d}, new long[] {d * es, (long) h * d * es, es});
                Kernels.matmul(ctx, qh, kh, null, scores, Kernels.MatmulOptions.LINEAR);
                softmaxRows(scores.segment(), g * seq, seq, scale, causal);
                Kernels.matmul(ctx, scores, vh, null, oh, Kernels.MatmulOptions.DEFAULT);
            }
            return naiveOut;
        }
    }

    /** Decode: one token, B=1, H=32, Hkv=8, D=128, against a KV cache of {@code kv} rows. */
    @State(Scope.Benchmark)
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    @Warmup(iterations = 2, time = 2)
    @Measurement(iterations = 5, time = 2)
    @Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
    public static class Decode {
        @Param({"4096", "32768", "131072"})
        int kv;

        @Param({"BF16", "F32"})
        String dtype;

        final int h = 32, hkv = 8, d = 128;
        Context ctx;
        KvCache cache;
        Tensor q, out;

        @Setup(Level.Trial)
        public void setUp() {
            ctx = Context.create(0);
            DType dt = DType.valueOf(dtype);
            cache = KvCache.allocate(dt, 1, hkv, kv, d);
            // fill the cache through append, in chunks
            int chunk = 4096;
            try (Tensor kn = Tensor.allocate(dt, 1, chunk, hkv, d); Tensor vn = Tensor.allocate(dt, 1, chunk, hkv, d)) {
                fill(kn, 4, 1);
                fill(vn, 5, 1);
                for (int s = 0; s < kv; s += chunk) cache.append(ctx, kn, vn, KvCache.Rope.neox(10000f));
            }
            q = Tensor.allocate(dt, 1, 1, h, d);
            out = Tensor.allocate(dt, 1, 1, h, d);
            fill(q, 6, 1);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            cache.close();
            q.close();
            out.close();
            ctx.close();
        }

        /** Reports time per token; K/V bytes read = 2 * kv * hkv * d * elem. */
        @Benchmark
        public Tensor flashDecode() {
            cache.attend(ctx, q, out, AttentionOptions.CAUSAL);
            return out;
        }
    }
}
