package dev.panatron.bench;

import dev.panatron.BlockSparse;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.OneDnnS8Matmul;
import dev.panatron.QuantKernels;
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

import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The compressed kernels of issue 5 through the Java façade, next to their baselines in the same
 * run (the rows of {@code panatron bench kernels}): y[M, N] = x[M, K] . W^T at BERT-base linear
 * shapes, W [N, K] random, x random (f32; i8 for the oneDNN s8 baseline, whose activation
 * quantization is not timed).
 * <ul>
 *   <li>{@code bsr_int8_70}, {@code bsr_int8_90}: block-sparse int8 ({@link BlockSparse}, 4x1 blocks, 70% / 90% pruned)</li>
 *   <li>{@code llm_int8}, {@code llm_int8_outliers}: LLM.int8 ({@link QuantKernels#matmulInt8}, packed weight),
 *       without and with 1% planted outlier columns (|x| in [6.5, 9.5])</li>
 *   <li>{@code w8a8}: W8A8 int8</li>
 *   <li>{@code fp4}: FP4 E2M1 group 64 weight-only ({@link Fp4#matmul}; a GEMV at M = 1)</li>
 *   <li>{@code bf16}: bf16 GEMM on a prepacked weight ({@link Kernels#pack})</li>
 *   <li>baselines: {@code onednn_s8} ({@link OneDnnS8Matmul}, plain oneDNN s8 matmul) and {@code f32}
 *       ({@link Kernels#matmul}, oneDNN's f32 matmul when the library has it)</li>
 * </ul>
 * <pre>
 * ./mvnw -B -q -Pbench package -DskipTests
 * $JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED -jar tests/target/benchmarks.jar CompressedBench -f 1 -wi 3 -i 5 \
 *     [-p m=16 -p kn=768x3072 -p impl=bsr_int8_90,onednn_s8]
 * </pre>
 * Report ratios against the baseline of the same m, kn and threads (GOPS = 2*M*N*K / time,
 * dense-equivalent for the sparse kernels).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CompressedBench {
    @Param({"1", "16", "128"})
    public int m;

    /** K x N of the layer (768x3072: FFN up, 3072x768: FFN down, 768x768: attention projections). */
    @Param({"768x3072", "3072x768"})
    public String kn;

    @Param({"bsr_int8_70", "bsr_int8_90", "llm_int8", "llm_int8_outliers", "w8a8", "onednn_s8", "fp4", "bf16", "f32"})
    public String impl;

    @Param({"2"})
    public int threads;

    Context ctx;
    Tensor w, wq, ws, wPacked, x, xs8, xb, y, codes, scales;
    BlockSparse.Weight bsr;
    OneDnnS8Matmul s8;
    Kernels.PackedMatrix packed;
    Runnable op;

    @Setup(Level.Trial)
    public void setup() {
        String[] p = kn.split("x");
        long k = Long.parseLong(p[0]), n = Long.parseLong(p[1]);
        ctx = Context.create(threads);
        SplittableRandom r = new SplittableRandom(42);
        w = Tensor.allocate(DType.F32, n, k);
        w.copyFrom(uniform(r, (int) (n * k)));
        x = Tensor.allocate(DType.F32, m, k);
        float[] xv = uniform(r, (int) (m * k));
        if (impl.equals("llm_int8_outliers")) {
            int[] cols = r.ints(0, (int) k).distinct().limit(Math.round(0.01 * k)).toArray();
            for (int i = 0; i < m; i++) for (int c : cols) xv[(int) (i * k + c)] = (r.nextBoolean() ? 1 : -1) * (float) (6.5 + 3 * r.nextDouble());
        }
        x.copyFrom(xv);
        y = Tensor.allocate(DType.F32, m, n);
        wq = Tensor.allocate(DType.I8, n, k);
        ws = Tensor.allocate(DType.F32, n);
        QuantKernels.quantizeInt8Weight(ctx, w, wq, ws);
        op = switch (impl) {
            case "bsr_int8_70", "bsr_int8_90" -> {
                bsr = BlockSparse.prune(ctx, w, true, 4, 1, impl.endsWith("70") ? 0.7 : 0.9, DType.I8);
                yield () -> BlockSparse.matmul(ctx, x, bsr, null, Kernels.Activation.NONE, y);
            }
            case "llm_int8", "llm_int8_outliers", "w8a8" -> {
                wPacked = Tensor.allocate(DType.I8, QuantKernels.int8PackedBytes(n, k));
                QuantKernels.packInt8Weight(ctx, wq, wPacked);
                QuantKernels.Int8Options o = impl.equals("w8a8") ? QuantKernels.Int8Options.W8A8 : QuantKernels.Int8Options.LLM_INT8;
                yield () -> QuantKernels.matmulInt8(ctx, x, wq, ws, null, null, y, o, wPacked);
            }
            case "onednn_s8" -> {
                if (!ctx.usesOneDnn()) throw new IllegalStateException("built without oneDNN");
                xs8 = Tensor.allocate(DType.I8, m, k);
                for (long i = 0; i < m * k; i++) xs8.segment().set(ValueLayout.JAVA_BYTE, i, (byte) (r.nextInt(255) - 127));
                s8 = OneDnnS8Matmul.create(ctx, m, wq, ws);
                yield () -> s8.run(ctx, xs8, 1f / 127, null, y);
            }
            case "fp4" -> {
                codes = Tensor.allocate(DType.U4, n, k);
                scales = Tensor.allocate(DType.F32, n, k / 64);
                Fp4.quantize(ctx, w, Fp4.Format.E2M1, 64, 1f, null, codes, scales);
                yield () -> Fp4.matmul(ctx, x, codes, scales, Fp4.Format.E2M1, 64, null, y);
            }
            case "bf16" -> {
                xb = Tensor.allocate(DType.BF16, m, k);
                xb.copyFrom(xv);
                packed = Kernels.pack(ctx, w, true, DType.BF16);
                yield () -> Kernels.matmul(ctx, xb, packed, null, y, MatmulOptions.LINEAR);
            }
            case "f32" -> () -> Kernels.matmul(ctx, x, w, null, y, MatmulOptions.LINEAR);
            default -> throw new IllegalArgumentException("impl " + impl);
        };
        op.run();
    }

    static float[] uniform(SplittableRandom r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextDouble() * 2 - 1);
        return v;
    }

    @Benchmark
    public void matmul() { op.run(); }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (AutoCloseable c : new AutoCloseable[] {s8, bsr, packed, w, wq, ws, wPacked, x, xs8, xb, y, codes, scales, ctx}) {
            if (c == null) continue;
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
