package dev.panatron;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Shared pieces of the elementwise/norm JUnit tests: the two native code paths, random data,
 * NaN-poisoned outputs, strided views, independent double references of erf/erfc and bf16
 * rounding, and a NaN/inf-aware comparison that names the first bad element and the seed.
 */
final class ElemTestSupport {
    private ElemTestSupport() {}

    /** Odd sizes: 1, 7, 63, 65, 127 and transformer-ish widths. */
    static final int[] SIZES = {1, 7, 63, 65, 127, 384, 1000};

    /** A way to run the kernels: AVX-512 fast path or portable C (AVX-512 disabled). */
    record Path(String name, int disableCaps) {
        @Override public String toString() { return name; }
    }

    static final Path FAST = new Path("fast", 0), PORTABLE = new Path("portable", CpuCaps.AVX512F);

    static List<Path> paths() { return List.of(FAST, PORTABLE); }

    private static final java.util.Map<Path, Context> CONTEXTS = new java.util.concurrent.ConcurrentHashMap<>();

    /** One 2-thread context per path, shared by the test classes, never closed (JVM exit frees it). */
    static Context ctx(Path p) {
        return CONTEXTS.computeIfAbsent(p, k -> Context.create(2, true, k.disableCaps()));
    }

    static float[] rand(Random r, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return v;
    }

    /** A new tensor holding {@code v} (rounded to dtype); the test must read it back for references. */
    static Tensor tensor(DType dt, float[] v, long... shape) { return Tensor.of(dt, v, shape); }

    /** A new tensor full of NaN. */
    static Tensor poisoned(DType dt, long... shape) {
        Tensor t = Tensor.allocate(dt, shape);
        t.fill(Float.NaN);
        return t;
    }

    /**
     * A strided view: rows padded by {@code pad} elements (the padding holds NaN), so the view's
     * row stride is larger than its row. Returned with its backing tensor (close the backing).
     */
    static Tensor[] strided(DType dt, float[] v, long rows, long cols, long pad) {
        Tensor back = poisoned(dt, rows, cols + pad);
        Tensor view = back.slice(1, 0, cols);
        view.copyFrom(v);
        return new Tensor[] {view, back};
    }

    /** bf16 round to nearest even, written independently of the library. */
    static float roundBf16(float f) {
        if (Float.isNaN(f)) return f;
        int u = Float.floatToRawIntBits(f);
        int lower = u & 0xffff, upper = u >>> 16;
        if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) != 0)) upper++;
        return Float.intBitsToFloat(upper << 16);
    }

    static double round(DType dt, double v) {
        return switch (dt) {
            case BF16 -> roundBf16((float) v);
            case F16 -> Float.float16ToFloat(Float.floatToFloat16((float) v));
            default -> (float) v;
        };
    }

    /** erfc(z) in double: Taylor series of erf below 2.5, continued fraction above. */
    static double erfc(double z) {
        if (Double.isNaN(z)) return z;
        if (z < 0) return 2 - erfc(-z);
        if (z < 2.5) {
            double sum = 0, term = z; // term_n = (-1)^n z^(2n+1) / n!
            for (int n = 0; n < 200; n++) {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-18 * Math.abs(sum)) break;
                term *= -z * z / (n + 1);
            }
            return 1 - 2 / Math.sqrt(Math.PI) * sum;
        }
        if (z > 27) return 0;
        double t = z;
        for (int k = 120; k >= 1; k--) t = z + (k / 2.0) / t;
        return Math.exp(-z * z) / (Math.sqrt(Math.PI) * t);
    }

    static double gelu(double x) { return x == Double.NEGATIVE_INFINITY ? 0 : 0.5 * x * erfc(-x / Math.sqrt(2)); }

    static double geluTanh(double x) {
        if (Double.isInfinite(x)) return x > 0 ? x : 0;
        double u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
        return x > -3 ? 0.5 * x * (1 + Math.tanh(u)) : x / (1 + Math.exp(-2 * u)); // 1+tanh cancels far left
    }

    static double sigmoid(double x) { return x < 0 ? Math.exp(x) / (1 + Math.exp(x)) : 1 / (1 + Math.exp(-x)); }

    static double silu(double x) { return x == Double.NEGATIVE_INFINITY ? 0 : x * sigmoid(x); }

    /** Relative tolerance of an output dtype on top of the f32 one: bf16 rounds once (2^-9). */
    static double rtol(DType out, double f32) { return out == DType.BF16 ? 4e-3 + f32 : out == DType.F16 ? 1e-3 + f32 : f32; }

    /** Every element of got within atol + rtol |want|; NaN must stay NaN and infinities match. */
    static void assertClose(float[] got, double[] want, double atol, double rtol, long seed, String what) {
        if (got.length != want.length) fail(what + ": " + got.length + " values, expected " + want.length);
        int bad = 0, first = -1;
        for (int i = 0; i < got.length; i++) {
            double g = got[i], w = want[i];
            boolean ok = Double.isNaN(w) ? Double.isNaN(g)
                    : Double.isInfinite(w) ? g == w
                    : !Double.isNaN(g) && Math.abs(g - w) <= atol + rtol * Math.abs(w);
            if (!ok) {
                if (first < 0) first = i;
                bad++;
            }
        }
        if (bad > 0) {
            fail(what + ": " + bad + "/" + got.length + " elements off, first [" + first + "] got " + got[first] + " want "
                    + want[first] + " (atol " + atol + ", rtol " + rtol + ", seed " + seed + ")");
        }
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }
}
