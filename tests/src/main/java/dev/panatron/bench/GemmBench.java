package dev.panatron.bench;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.Kernels.MatmulOptions;
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

import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * Dense GEMM through the Java API ({@link Kernels#matmul}): our own kernels against oneDNN in
 * the same run, f32 and bf16, at 512x512x512 and at a BERT-base FFN up-projection
 * (x[128, 768] @ W[3072, 768]^T, PyTorch weight layout).
 *
 * <pre>
 * ./mvnw -B -q -Pbench package -DskipTests
 * $JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED -jar tests/target/benchmarks.jar GemmBench -f 1 -wi 3 -i 5
 * </pre>
 * Report ratios own/onednn of the same shape, dtype and thread count (GFLOP/s = 2*M*N*K / time).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class GemmBench {
    /** MxNxK; "bert" is the 128x3072x768 linear (transB). */
    @Param({"512", "bert"})
    public String shape;

    @Param({"f32", "bf16"})
    public String dtype;

    @Param({"own", "onednn"})
    public String impl;

    @Param({"2"})
    public int threads;

    Context ctx;
    Tensor a, b, c;
    MatmulOptions opts;

    @Setup(Level.Trial)
    public void setup() {
        DType dt = dtype.equals("bf16") ? DType.BF16 : DType.F32;
        long m, n, k;
        boolean transB;
        if (shape.equals("bert")) { m = 128; n = 3072; k = 768; transB = true; }
        else { m = n = k = Long.parseLong(shape); transB = false; }
        ctx = Context.create(threads, impl.equals("onednn"), 0);
        if (impl.equals("onednn") && !ctx.usesOneDnn()) throw new IllegalStateException("built without oneDNN");
        a = Tensor.allocate(dt, m, k);
        b = transB ? Tensor.allocate(dt, n, k) : Tensor.allocate(dt, k, n);
        c = Tensor.allocate(DType.F32, m, n);
        Random r = new Random(42);
        float[] av = new float[(int) a.numel()], bv = new float[(int) b.numel()];
        for (int i = 0; i < av.length; i++) av[i] = r.nextFloat() - 0.5f;
        for (int i = 0; i < bv.length; i++) bv[i] = r.nextFloat() - 0.5f;
        a.copyFrom(av);
        b.copyFrom(bv);
        opts = transB ? MatmulOptions.LINEAR : MatmulOptions.DEFAULT;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        a.close();
        b.close();
        c.close();
        ctx.close();
    }

    @Benchmark
    public Tensor matmul() {
        Kernels.matmul(ctx, a, b, null, c, opts);
        return c;
    }
}
