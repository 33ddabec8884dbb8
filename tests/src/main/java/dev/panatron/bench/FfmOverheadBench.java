package dev.panatron.bench;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.Tensor;
import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_ctx_params;
import dev.panatron.ffm.pt_matmul_params;
import dev.panatron.ffm.pt_tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * The fixed cost of crossing into native code, for kernels too small to hide it:
 * <ul>
 *   <li>{@code javaVersion} / {@code nativeVersion}: a constant in Java vs the pt_version()
 *       downcall (the bare FFM transition);</li>
 *   <li>{@code javaMatmul1x1x1} vs {@code rawMatmul1x1x1} (pt_matmul downcall on prebuilt
 *       descriptors: argument checks in C, dispatch, one-thread kernel) vs
 *       {@code kernelsMatmul1x1x1} (the public {@link Kernels#matmul}: Java validation too);</li>
 *   <li>the same three at 16x16x16, where a naive Java triple loop is still competitive.</li>
 * </ul>
 * <pre>
 * $JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED -jar tests/target/benchmarks.jar FfmOverheadBench -f 1 -wi 3 -i 5
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class FfmOverheadBench {
    Arena arena;
    Context ctx;             // public API, 1 thread, own kernels
    MemorySegment rawCtx;    // a pt_ctx made directly through the bindings
    Tensor a1, b1, c1, a16, b16, c16;
    MemorySegment da1, db1, dc1, da16, db16, dc16, params;
    float x = 1.5f, y = -2.25f;
    float[] ja16 = new float[256], jb16 = new float[256], jc16 = new float[256];

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        ctx = Context.create(1, false, 0);
        MemorySegment p = pt_ctx_params.allocate(arena);
        pt_ctx_params.n_threads(p, 1);
        pt_ctx_params.use_onednn(p, 0);
        MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
        if (panatron_h.pt_ctx_create(p, out) != 0) throw new IllegalStateException("pt_ctx_create failed");
        rawCtx = out.get(ValueLayout.ADDRESS, 0);
        a1 = Tensor.allocate(DType.F32, 1, 1); b1 = Tensor.allocate(DType.F32, 1, 1); c1 = Tensor.allocate(DType.F32, 1, 1);
        a16 = Tensor.allocate(DType.F32, 16, 16); b16 = Tensor.allocate(DType.F32, 16, 16); c16 = Tensor.allocate(DType.F32, 16, 16);
        a1.fill(x); b1.fill(y); a16.fill(0.5f); b16.fill(0.25f);
        java.util.Arrays.fill(ja16, 0.5f);
        java.util.Arrays.fill(jb16, 0.25f);
        da1 = desc(a1); db1 = desc(b1); dc1 = desc(c1); da16 = desc(a16); db16 = desc(b16); dc16 = desc(c16);
        params = pt_matmul_params.allocate(arena);
        pt_matmul_params.alpha(params, 1f);
    }

    MemorySegment desc(Tensor t) {
        MemorySegment d = pt_tensor.allocate(arena);
        pt_tensor.data(d, t.segment());
        pt_tensor.dtype(d, t.dtype().code());
        pt_tensor.ndim(d, t.ndim());
        for (int i = 0; i < t.ndim(); i++) {
            pt_tensor.shape(d, i, t.dim(i));
            pt_tensor.stride(d, i, t.strides()[i]);
        }
        return d;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        panatron_h.pt_ctx_destroy(rawCtx);
        ctx.close();
        for (Tensor t : new Tensor[] {a1, b1, c1, a16, b16, c16}) t.close();
        arena.close();
    }

    @Benchmark
    public int javaVersion() { return (0 << 16) | (1 << 8); }

    @Benchmark
    public int nativeVersion() { return panatron_h.pt_version(); }

    @Benchmark
    public float javaMatmul1x1x1() { return x * y; }

    @Benchmark
    public int rawMatmul1x1x1() { return panatron_h.pt_matmul(rawCtx, da1, db1, MemorySegment.NULL, dc1, params); }

    @Benchmark
    public Tensor kernelsMatmul1x1x1() {
        Kernels.matmul(ctx, a1, b1, c1);
        return c1;
    }

    @Benchmark
    public float[] javaMatmul16() {
        float[] a = ja16, b = jb16, c = jc16;
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 16; j++) c[i * 16 + j] = 0;
            for (int p = 0; p < 16; p++) {
                float av = a[i * 16 + p];
                for (int j = 0; j < 16; j++) c[i * 16 + j] += av * b[p * 16 + j];
            }
        }
        return c;
    }

    @Benchmark
    public int rawMatmul16() { return panatron_h.pt_matmul(rawCtx, da16, db16, MemorySegment.NULL, dc16, params); }

    @Benchmark
    public Tensor kernelsMatmul16() {
        Kernels.matmul(ctx, a16, b16, c16);
        return c16;
    }
}
