package dev.panatron;

import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link Kernels#matmul} against a plain double-precision reference written here, on fresh
 * random inputs (the seed is printed on failure), odd sizes, NaN-poisoned outputs, f32 and
 * bf16, through oneDNN and through each of our own kernels (forced with disableCaps).
 */
class MatmulTest {
    static final long SEED = System.nanoTime();

    /** A way to run matmul: oneDNN, or our kernels with some CPU features switched off. */
    record Config(String name, int threads, boolean oneDnn, int disableCaps) {
        @Override public String toString() { return name; }
    }

    static List<Config> configs() {
        return List.of(
                new Config("oneDNN", 2, true, 0),
                new Config("own (AMX bf16, AVX-512 f32)", 2, false, 0),
                new Config("own, AVX512-BF16 dot products", 2, false, CpuCaps.AMX_BF16 | CpuCaps.AVX512_FP16),
                new Config("own, bf16 widened to f32", 2, false, CpuCaps.AMX_BF16),
                new Config("own, AVX2", 2, false, CpuCaps.AVX512F),
                new Config("own, portable", 3, false, CpuCaps.AVX512F | CpuCaps.AVX2),
                new Config("own, 1 thread", 1, false, 0));
    }

    static final java.util.Map<Config, Context> CONTEXTS = new java.util.concurrent.ConcurrentHashMap<>();

    static Context ctx(Config c) {
        return CONTEXTS.computeIfAbsent(c, k -> Context.create(k.threads(), k.oneDnn(), k.disableCaps()));
    }

    @AfterAll
    static void closeContexts() {
        CONTEXTS.values().forEach(Context::close);
    }

    @BeforeAll
    static void load() {
        Native.load();
    }

    // ------------------------------------------------------------------ the reference

    /** One problem: shapes, options and dtypes. batch 0 means 2-D a. */
    record Case(long batch, long m, long n, long k, boolean bBatched, boolean transB, boolean bias, Activation act,
                float alpha, float beta, DType dtype, DType cdtype, long pad) {
        static Case of(long m, long n, long k, boolean transB, DType dt) {
            return new Case(0, m, n, k, false, transB, false, Activation.NONE, 1f, 0f, dt, DType.F32, 0);
        }
        Case with(boolean bias, Activation act, float alpha, float beta) {
            return new Case(batch, m, n, k, bBatched, transB, bias, act, alpha, beta, dtype, cdtype, pad);
        }
        Case out(DType c) { return new Case(batch, m, n, k, bBatched, transB, bias, act, alpha, beta, dtype, c, pad); }
        Case batched(long b, boolean bb, long p) { return new Case(b, m, n, k, bb, transB, bias, act, alpha, beta, dtype, cdtype, p); }
    }

    static double act(double x, Activation a) {
        return switch (a) {
            case NONE -> x;
            case RELU -> x < 0 ? 0 : x;
            case GELU_ERF -> 0.5 * x * (1 + erf(x / Math.sqrt(2)));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case SILU -> x / (1 + Math.exp(-x));
        };
    }

    /** erf in double: Abramowitz-Stegun 7.1.26 is too coarse; use the series / continued fraction. */
    static double erf(double x) {
        double ax = Math.abs(x);
        double r;
        if (ax < 2.5) { // Taylor series, converges fast here
            double term = ax, sum = ax, x2 = ax * ax;
            for (int n = 1; n < 60; n++) {
                term *= -x2 / n;
                sum += term / (2 * n + 1);
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else { // continued fraction for erfc
            double f = 0;
            for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }

    /** A tensor of shape `shape` whose rows are padded by `pad` elements (and batches by 3*pad). */
    static Tensor padded(Arena arena, DType dt, long pad, long... shape) {
        int nd = shape.length;
        long es = dt.byteSize();
        long[] st = new long[nd];
        st[nd - 1] = es;
        long rowElems = shape[nd - 1] + pad;
        if (nd >= 2) st[nd - 2] = rowElems * es;
        if (nd == 3) st[0] = (shape[1] * rowElems + 3 * pad) * es;
        long bytes = nd == 3 ? shape[0] * st[0] : nd == 2 ? shape[0] * st[0] : shape[0] * es;
        MemorySegment seg = arena.allocate(Math.max(bytes, 64), 64);
        seg.fill((byte) 0xff); // NaN everywhere, padding included
        return Tensor.wrap(seg, dt, shape, st);
    }

    static float[] randoms(Random r, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = r.nextFloat() * 2 - 1;
        return v;
    }

    /** Runs one case; returns a description of the failure, or null. */
    static String run(Context ctx, Case t, Random rnd) {
        try (Arena arena = Arena.ofConfined()) {
            long nb = t.batch() > 0 ? t.batch() : 1;
            long[] aShape = t.batch() > 0 ? new long[] {t.batch(), t.m(), t.k()} : new long[] {t.m(), t.k()};
            long br = t.transB() ? t.n() : t.k(), bc = t.transB() ? t.k() : t.n();
            long[] bShape = t.bBatched() ? new long[] {t.batch(), br, bc} : new long[] {br, bc};
            long[] cShape = t.batch() > 0 ? new long[] {t.batch(), t.m(), t.n()} : new long[] {t.m(), t.n()};
            Tensor a = padded(arena, t.dtype(), t.pad(), aShape);
            Tensor b = padded(arena, t.dtype(), t.pad(), bShape);
            Tensor c = padded(arena, t.cdtype(), t.pad(), cShape);
            float[] af = randoms(rnd, a.numel()), bf = randoms(rnd, b.numel());
            a.copyFrom(af);
            b.copyFrom(bf);
            float[] aq = a.toFloatArray(), bq = b.toFloatArray(); // what the kernel sees (bf16-rounded)
            float[] biasv = randoms(rnd, t.n());
            Tensor bias = t.bias() ? Tensor.allocate(arena, DType.F32, t.n()) : null;
            if (bias != null) bias.copyFrom(biasv);
            float[] c0 = null;
            if (t.beta() != 0) {
                c.copyFrom(randoms(rnd, c.numel()));
                c0 = c.toFloatArray();
            } // else c stays NaN
            MatmulOptions o = new MatmulOptions(t.transB(), t.act(), t.alpha(), t.beta());
            Kernels.matmul(ctx, a, b, bias, c, o);
            float[] got = c.toFloatArray();
            double alpha = t.alpha() == 0 ? 1 : t.alpha();
            double bfUlp = t.cdtype() == DType.BF16 ? 1.0 / 256 : 0;
            double worst = 0, eOurs = 0, eLp = 0;
            String where = "";
            long m = t.m(), n = t.n(), k = t.k();
            for (long q = 0; q < nb; q++) {
                long qb = t.bBatched() ? q : 0;
                for (long i = 0; i < m; i++) {
                    for (long j = 0; j < n; j++) {
                        double s = 0, slp = 0, sabs = 0;
                        for (long p = 0; p < k; p++) {
                            int ai = (int) ((q * m + i) * k + p);
                            int bi = (int) (qb * br * bc + (t.transB() ? j * k + p : p * n + j));
                            s += (double) af[ai] * bf[bi];
                            slp += (double) aq[ai] * bq[bi];
                            sabs += Math.abs((double) aq[ai] * bq[bi]);
                        }
                        int ci = (int) ((q * m + i) * n + j);
                        double extra = (bias != null ? biasv[(int) j] : 0) + (c0 != null ? t.beta() * (double) c0[ci] : 0);
                        double pre = alpha * slp + extra, want = act(pre, t.act()), exact = act(alpha * s + extra, t.act());
                        double scale = Math.abs(alpha) * sabs + (bias != null ? Math.abs(biasv[(int) j]) : 0)
                                + (c0 != null ? Math.abs(t.beta() * c0[ci]) : 0);
                        double allowed = 1e-6 * scale + 2e-6 * Math.abs(pre) + 1e-6 * Math.abs(want) + bfUlp * Math.abs(want) + 1e-30;
                        double e = Math.abs(got[ci] - want) / allowed;
                        if (Double.isNaN(e)) e = Double.POSITIVE_INFINITY;
                        if (e > worst) {
                            worst = e;
                            where = "[" + q + "," + i + "," + j + "] got " + got[ci] + " want " + want;
                        }
                        if (t.dtype() == DType.BF16) {
                            double lp = t.cdtype() == DType.BF16 ? Tensor.bf16ToFloat(Tensor.floatToBf16((float) want)) : want;
                            double sc = scale + 1e-3;
                            double eo = Math.abs(got[ci] - exact) / sc, el = Math.abs(lp - exact) / sc;
                            eOurs = Math.max(eOurs, Double.isNaN(eo) ? Double.POSITIVE_INFINITY : eo);
                            eLp = Math.max(eLp, el);
                        }
                    }
                }
            }
            if (worst > 1) return t + ": error " + worst + " x tolerance at " + where;
            if (t.dtype() == DType.BF16 && eOurs > 2 * eLp + 1e-6) return t + ": error vs exact " + eOurs + " > 2 x bf16 reference's " + eLp;
            if (t.pad() > 0) { // padding between rows must still be NaN (never written)
                MemorySegment seg = c.segment();
                long rowBytes = c.strides()[c.ndim() - 2], es = t.cdtype().byteSize();
                for (long r = 0; r < nb * m - 1; r++) {
                    long q = r / m, i = r % m;
                    long base = (c.ndim() == 3 ? q * c.strides()[0] : 0) + i * rowBytes;
                    for (long off = n * es; off < rowBytes; off++) {
                        if (seg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, base + off) != (byte) 0xff) return t + ": padding of c written at row " + r;
                    }
                }
            }
            return null;
        }
    }

    static void check(Config cfg, List<Case> cases) {
        Random rnd = new Random(SEED ^ cfg.name().hashCode());
        Context ctx = ctx(cfg);
        List<String> failures = new ArrayList<>();
        for (Case t : cases) {
            String f = run(ctx, t, rnd);
            if (f != null) failures.add(f);
        }
        if (!failures.isEmpty()) {
            fail("[" + cfg + "] seed " + SEED + ": " + failures.size() + " of " + cases.size() + " cases failed, first: "
                    + String.join("\n  ", failures.subList(0, Math.min(5, failures.size()))));
        }
    }

    // ------------------------------------------------------------------ the tests

    static final long[][] SIZES = {{1, 1, 1}, {7, 5, 3}, {63, 65, 127}, {65, 63, 129}, {1, 257, 63}, {33, 17, 257},
            {5, 130, 77}, {13, 47, 600}, {127, 33, 1}, {2, 3, 0}};

    @ParameterizedTest
    @MethodSource("configs")
    void oddSizesF32AndBf16(Config cfg) {
        List<Case> cases = new ArrayList<>();
        int s = 0;
        for (long[] z : SIZES) {
            for (boolean tb : new boolean[] {false, true}) {
                cases.add(Case.of(z[0], z[1], z[2], tb, DType.F32).with(s % 2 == 0, Activation.NONE, 1f, 0f));
                Case h = Case.of(z[0], z[1], z[2], tb, DType.BF16).with(s % 2 == 1, Activation.NONE, 1f, 0f);
                cases.add(s % 3 == 0 ? h.out(DType.BF16) : h);
                s++;
            }
        }
        check(cfg, cases);
    }

    @ParameterizedTest
    @MethodSource("configs")
    void everyEpilogueOption(Config cfg) {
        List<Case> cases = new ArrayList<>();
        float[][] ab = {{1, 0}, {0.5f, 0}, {1, 1}, {-0.75f, 0.5f}};
        long[][] sizes = {{37, 45, 70}, {3, 70, 45}, {10, 35, 530}};
        int s = 0;
        // oneDNN JIT-compiles a primitive per distinct problem (tens of ms each): one size there
        // (test_gemm covers every option on every size through oneDNN too)
        if (cfg.oneDnn()) sizes = new long[][] {sizes[0]};
        for (long[] z : sizes) {
            for (Activation act : Activation.values()) {
                if (z[2] > 512 && act != Activation.NONE && act != Activation.GELU_ERF) continue; // K blocks: two acts suffice
                for (float[] x : ab) {
                    s++;
                    boolean tb = s % 2 == 0, bias = s % 3 != 0;
                    cases.add(Case.of(z[0], z[1], z[2], tb, DType.F32).with(bias, act, x[0], x[1]));
                    cases.add(Case.of(z[0], z[1], z[2], tb, DType.BF16).with(bias, act, x[0], x[1]).out(s % 2 == 0 ? DType.BF16 : DType.F32));
                }
            }
        }
        check(cfg, cases);
    }

    @ParameterizedTest
    @MethodSource("configs")
    void batchedAndStrided(Config cfg) {
        List<Case> cases = new ArrayList<>();
        for (boolean bb : new boolean[] {false, true}) {
            for (long pad : new long[] {0, 5}) {
                for (boolean tb : new boolean[] {false, true}) {
                    for (DType dt : new DType[] {DType.F32, DType.BF16}) {
                        cases.add(Case.of(19, 33, 45, tb, dt).with(tb, pad > 0 ? Activation.GELU_ERF : Activation.NONE, 1f, bb ? 0.5f : 0f)
                                .batched(3, bb, pad));
                    }
                }
            }
        }
        cases.add(Case.of(1, 70, 33, true, DType.F32).batched(4, false, 0)); // a batch of single rows
        cases.add(Case.of(150, 100, 300, true, DType.F32).with(true, Activation.SILU, 1f, 0f)); // several threads' parts
        check(cfg, cases);
    }

    /** Our kernels and oneDNN give the same answer (within f32 rounding) on the same inputs. */
    @Test
    void ownAndOneDnnAgree() {
        if (Panatron.oneDnnVersion() == null) return; // built without oneDNN: nothing to compare
        Random rnd = new Random(SEED);
        try (Arena arena = Arena.ofConfined(); Context own = Context.create(2, false, 0); Context dnnl = Context.create(2, true, 0)) {
            for (DType dt : new DType[] {DType.F32, DType.BF16}) {
                for (Activation act : Activation.values()) {
                    Tensor a = Tensor.allocate(arena, dt, 2, 29, 71), w = Tensor.allocate(arena, dt, 53, 71);
                    Tensor bias = Tensor.allocate(arena, DType.F32, 53);
                    a.copyFrom(randoms(rnd, a.numel()));
                    w.copyFrom(randoms(rnd, w.numel()));
                    bias.copyFrom(randoms(rnd, 53));
                    Tensor c1 = Tensor.allocate(arena, DType.F32, 2, 29, 53), c2 = Tensor.allocate(arena, DType.F32, 2, 29, 53);
                    float[] init = randoms(rnd, c1.numel());
                    c1.copyFrom(init);
                    c2.copyFrom(init);
                    MatmulOptions o = new MatmulOptions(true, act, 0.75f, 0.5f);
                    Kernels.matmul(own, a, w, bias, c1, o);
                    Kernels.matmul(dnnl, a, w, bias, c2, o);
                    float[] x = c1.toFloatArray(), y = c2.toFloatArray();
                    for (int i = 0; i < x.length; i++) {
                        assertTrue(Math.abs(x[i] - y[i]) <= 2e-5 * (1 + Math.abs(y[i])),
                                dt + " " + act + ": element " + i + " ours " + x[i] + " oneDNN " + y[i] + " (seed " + SEED + ")");
                    }
                }
            }
        }
    }

    /** 4 Java threads share one context; every result is checked. */
    @ParameterizedTest
    @MethodSource("stressConfigs")
    void fourThreadsShareOneContext(Config cfg) throws Exception {
        Context ctx = ctx(cfg);
        AtomicInteger done = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<String>> fs = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                final long seed = SEED + t;
                fs.add(pool.submit(() -> {
                    Random rnd = new Random(seed);
                    for (int it = 0; it < 60; it++) {
                        long m = 1 + rnd.nextInt(40), n = 1 + rnd.nextInt(3) * 31, k = 1 + rnd.nextInt(3) * 37;
                        DType dt = rnd.nextBoolean() ? DType.F32 : DType.BF16;
                        Case c = Case.of(m, n, k, rnd.nextBoolean(), dt).with(rnd.nextBoolean(), Activation.values()[rnd.nextInt(5)], 1f, 0f);
                        String f = run(ctx, c, rnd);
                        if (f != null) return f;
                        done.incrementAndGet();
                    }
                    return null;
                }));
            }
            for (Future<String> f : fs) {
                String r = f.get();
                if (r != null) fail("[" + cfg + "] seed " + SEED + ": " + r);
            }
        } finally {
            pool.shutdown();
        }
        assertEquals(240, done.get());
    }

    static List<Config> stressConfigs() {
        return List.of(configs().get(0), configs().get(1));
    }
}
