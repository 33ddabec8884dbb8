package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Plain Java implementations of every {@link Op}: the reference the native kernels are tested
 * against, the evaluator of constant folding, and the executor's fallback for ops without a
 * native kernel yet. Written for clarity first; the hot ones (f32 elementwise, layer norm,
 * softmax) have a direct f32 loop and split rows over the context's threads.
 *
 * <p>Every method writes a preallocated, contiguous output whose shape the caller computed (by
 * shape inference); inputs are contiguous. Reductions accumulate in double. The {@code ctx}
 * argument only supplies the thread count (it may be null) — it is there so a call can switch
 * to its {@link NativeOps} twin by changing the class name.
 */
public final class RefOps {
    private RefOps() {}

    // ================================================================ dispatcher (constant folding)

    /**
     * Evaluates {@code node} on {@code in} into {@code out} (outputs preallocated with the
     * inferred shapes; symbolic attributes are not allowed here).
     *
     * @throws GraphException for an op/dtype combination without an implementation
     */
    public static void execute(Context ctx, Node n, TensorData[] in, TensorData[] out) {
        TensorData x = in.length > 0 ? in[0] : null, o = out[0];
        switch (n.op()) {
            case ADD, SUB, MUL, DIV, POW, EQUAL, LESS, GREATER -> binary(ctx, n.op(), x, in[1], o);
            case WHERE -> where(in[0], in[1], in[2], o);
            case SQRT, ERF, EXP, TANH, SIGMOID, RELU, NEG, RECIPROCAL, NOT -> unary(ctx, n.op(), x, o);
            case GELU -> gelu(ctx, x, "tanh".equals(n.attrString("approximate", "none")), o);
            case CAST -> cast(x, o);
            case REDUCE_MEAN, REDUCE_SUM -> reduce(n.op() == Op.REDUCE_MEAN, x, ShapeInference.reducedAxes(n, x.rank()), o);
            case SHAPE -> shape(x, n.attrLong("start", 0), o);
            case RESHAPE, UNSQUEEZE, SQUEEZE, IDENTITY -> copy(x, o);
            case TRANSPOSE -> transpose(x, perm(n, x.rank()), o);
            case CONCAT -> concat(Arrays.asList(in), (int) ShapeInference.norm(n, n.attrLong("axis", 0), x.rank()), o);
            case SLICE -> slice(x, in[1], in[2], in.length > 3 ? in[3] : null, in.length > 4 ? in[4] : null, o);
            case GATHER -> gather(x, in[1], (int) ShapeInference.norm(n, n.attrLong("axis", 0), x.rank()), o);
            case EXPAND -> expand(x, o);
            case CONSTANT_OF_SHAPE -> constantOfShape((TensorData) n.attr("value"), o);
            case RANGE -> range(x, in[2], o);
            case MATMUL -> matmul(ctx, x, in[1], o);
            case GEMM -> gemm(x, in[1], in.length > 2 ? in[2] : null, n.attrDouble("alpha", 1), n.attrDouble("beta", 1),
                    n.attrLong("transA", 0) != 0, n.attrLong("transB", 0) != 0, o);
            case SOFTMAX -> softmax(ctx, x, (int) ShapeInference.norm(n, n.attrLong("axis", -1), x.rank()), o);
            case LINEAR -> linear(ctx, x, in[1], in.length > 2 ? in[2] : null, in.length > 3 ? in[3] : null, n.attrLong("transB", 0) != 0,
                    n.attrString("activation", "none"), o);
            case QLINEAR -> CompressedOps.reference(ctx, n, in, o);
            case LAYER_NORM -> layerNorm(ctx, x, in[1], in.length > 2 ? in[2] : null, in.length > 3 ? in[3] : null, n.attrDouble("epsilon", 1e-5), o);
            case ATTENTION -> attention(ctx, x, in[1], in[2], in.length > 3 ? in[3] : null, n.attrLong("key_padding", 0) != 0,
                    (int) n.attrLong("num_heads", 1), n.attrDouble("scale", 0), o);
        }
    }

    static long[] perm(Node n, int r) {
        long[] p = n.attrLongs("perm");
        if (p != null) return p;
        p = new long[r];
        for (int i = 0; i < r; i++) p[i] = r - 1 - i;
        return p;
    }

    // ================================================================ elementwise

    /**
     * {@code out = a (op) b} with numpy broadcasting. ADD, SUB, MUL, DIV, POW on matching dtypes
     * (float types computed in float/double, integers in long with truncating division);
     * EQUAL, LESS, GREATER give a U8 bool output.
     */
    public static void binary(Context ctx, Op op, TensorData a, TensorData b, TensorData out) {
        long[] os = out.shape();
        int r = os.length;
        long[] sa = bstrides(a.shape(), os), sb = bstrides(b.shape(), os);
        long inner = r == 0 ? 1 : os[r - 1];
        long outer = out.numel() / Math.max(1, inner);
        long ia = r == 0 ? 0 : sa[r - 1], ib = r == 0 ? 0 : sb[r - 1];
        boolean f32 = a.dtype() == DType.F32 && b.dtype() == DType.F32 && out.dtype() == DType.F32;
        boolean integer = !a.dtype().isFloat();
        Parallel.forRange(f32 ? ctx : null, outer, inner, (lo, hi) -> {
            for (long row = lo; row < hi; row++) {
                long oa = offset(row, os, sa), ob = offset(row, os, sb), oo = row * inner;
                if (f32) {
                    binaryF32(op, a.segment(), oa, ia, b.segment(), ob, ib, out.segment(), oo, inner);
                    continue;
                }
                for (long j = 0; j < inner; j++) {
                    long pa = oa + j * ia, pb = ob + j * ib;
                    switch (op) {
                        case EQUAL -> out.setLong(oo + j, integer ? (a.getLong(pa) == b.getLong(pb) ? 1 : 0) : (a.getDouble(pa) == b.getDouble(pb) ? 1 : 0));
                        case LESS -> out.setLong(oo + j, integer ? (a.getLong(pa) < b.getLong(pb) ? 1 : 0) : (a.getDouble(pa) < b.getDouble(pb) ? 1 : 0));
                        case GREATER -> out.setLong(oo + j, integer ? (a.getLong(pa) > b.getLong(pb) ? 1 : 0) : (a.getDouble(pa) > b.getDouble(pb) ? 1 : 0));
                        default -> {
                            if (integer) out.setLong(oo + j, longOp(op, a.getLong(pa), b.getLong(pb)));
                            else out.setDouble(oo + j, floatOp(op, (float) a.getDouble(pa), (float) b.getDouble(pb)));
                        }
                    }
                }
            }
        });
    }

    private static void binaryF32(Op op, MemorySegment a, long oa, long ia, MemorySegment b, long ob, long ib, MemorySegment o, long oo, long n) {
        var F = java.lang.foreign.ValueLayout.JAVA_FLOAT;
        switch (op) {
            case ADD -> { for (long j = 0; j < n; j++) o.setAtIndex(F, oo + j, a.getAtIndex(F, oa + j * ia) + b.getAtIndex(F, ob + j * ib)); }
            case SUB -> { for (long j = 0; j < n; j++) o.setAtIndex(F, oo + j, a.getAtIndex(F, oa + j * ia) - b.getAtIndex(F, ob + j * ib)); }
            case MUL -> { for (long j = 0; j < n; j++) o.setAtIndex(F, oo + j, a.getAtIndex(F, oa + j * ia) * b.getAtIndex(F, ob + j * ib)); }
            case DIV -> { for (long j = 0; j < n; j++) o.setAtIndex(F, oo + j, a.getAtIndex(F, oa + j * ia) / b.getAtIndex(F, ob + j * ib)); }
            default -> { for (long j = 0; j < n; j++) o.setAtIndex(F, oo + j, floatOp(op, a.getAtIndex(F, oa + j * ia), b.getAtIndex(F, ob + j * ib))); }
        }
    }

    private static float floatOp(Op op, float x, float y) {
        return switch (op) {
            case ADD -> x + y;
            case SUB -> x - y;
            case MUL -> x * y;
            case DIV -> x / y;
            case POW -> y == 2f ? x * x : (float) Math.pow(x, y);
            default -> throw new GraphException("binary op " + op + " on floats");
        };
    }

    private static long longOp(Op op, long x, long y) {
        return switch (op) {
            case ADD -> x + y;
            case SUB -> x - y;
            case MUL -> x * y;
            case DIV -> {
                if (y == 0) throw new GraphException("integer division by zero");
                yield x / y;
            }
            case POW -> (long) Math.pow(x, y);
            default -> throw new GraphException("binary op " + op + " on integers");
        };
    }

    /** {@code out = where(cond, x, y)} with broadcasting (cond U8). */
    public static void where(TensorData cond, TensorData x, TensorData y, TensorData out) {
        long[] os = out.shape();
        long[] sc = bstrides(cond.shape(), os), sx = bstrides(x.shape(), os), sy = bstrides(y.shape(), os);
        boolean integer = !out.dtype().isFloat();
        for (long i = 0; i < out.numel(); i++) {
            long pc = flatOffset(i, os, sc);
            boolean t = cond.getLong(pc) != 0;
            long p = flatOffset(i, os, t ? sx : sy);
            TensorData s = t ? x : y;
            if (integer) out.setLong(i, s.getLong(p));
            else out.setDouble(i, s.getDouble(p));
        }
    }

    /** Elementwise math: SQRT, ERF, EXP, TANH, SIGMOID, RELU, NEG, RECIPROCAL (floats; NEG also ints), NOT (bool). */
    public static void unary(Context ctx, Op op, TensorData x, TensorData out) {
        if (op == Op.NOT) {
            for (long i = 0; i < x.numel(); i++) out.setLong(i, x.getLong(i) == 0 ? 1 : 0);
            return;
        }
        if (op == Op.NEG && !x.dtype().isFloat()) {
            for (long i = 0; i < x.numel(); i++) out.setLong(i, -x.getLong(i));
            return;
        }
        boolean f32 = x.dtype() == DType.F32 && out.dtype() == DType.F32;
        Parallel.forRange(ctx, x.numel(), 8, (lo, hi) -> {
            for (long i = lo; i < hi; i++) {
                double v = f32 ? x.getFloat(i) : x.getDouble(i);
                double r = switch (op) {
                    case SQRT -> Math.sqrt((float) v);
                    case ERF -> erf(v);
                    case EXP -> Math.exp(v);
                    case TANH -> Math.tanh(v);
                    case SIGMOID -> 1 / (1 + Math.exp(-v));
                    case RELU -> v > 0 ? v : 0;
                    case NEG -> -v;
                    case RECIPROCAL -> 1 / v;
                    default -> throw new GraphException("unary op " + op);
                };
                if (f32) out.setFloat(i, (float) r);
                else out.setDouble(i, r);
            }
        });
    }

    /** GELU: {@code x/2 (1 + erf(x/√2))}, or the tanh approximation. */
    public static void gelu(Context ctx, TensorData x, boolean tanh, TensorData out) {
        Parallel.forRange(ctx, x.numel(), 32, (lo, hi) -> {
            for (long i = lo; i < hi; i++) out.setDouble(i, gelu(x.getDouble(i), tanh));
        });
    }

    static double gelu(double v, boolean tanh) {
        if (tanh) return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
        return 0.5 * v * (1 + erf(v / Math.sqrt(2)));
    }

    /**
     * The error function to about 1e-15 (Java's Math has none): for |x| < 3 the series
     * {@code erf(x) = 2/sqrt(pi) exp(-x^2) sum 2^n x^(2n+1) / (2n+1)!!} (all terms positive: no
     * cancellation), beyond it 1 - erfc(x) from erfc's continued fraction.
     */
    public static double erf(double x) {
        if (Double.isNaN(x)) return x;
        double ax = Math.abs(x);
        double r;
        if (ax < 3) {
            double x2 = ax * ax, term = ax, sum = ax;
            for (int n = 1; n < 200 && term > 1e-17 * sum; n++) {
                term *= 2 * x2 / (2 * n + 1);
                sum += term;
            }
            r = 2 / Math.sqrt(Math.PI) * Math.exp(-x2) * sum;
        } else if (ax < 6) {
            // erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
            double f = ax;
            for (int k = 80; k >= 1; k--) f = ax + (k / 2.0) / f;
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
        } else {
            r = 1;
        }
        return x < 0 ? -r : r;
    }

    /** Converts between dtypes: floats round to nearest, float to int truncates, anything to bool (U8) is != 0. */
    public static void cast(TensorData x, TensorData out) {
        boolean toInt = !out.dtype().isFloat(), fromInt = !x.dtype().isFloat();
        for (long i = 0; i < x.numel(); i++) {
            if (toInt && fromInt) out.setLong(i, x.getLong(i));
            else if (toInt) {
                double v = x.getDouble(i);
                out.setLong(i, (long) v);
            } else out.setDouble(i, x.getDouble(i));
        }
    }

    // ================================================================ reductions

    /** Mean or sum over the axes flagged in {@code reduced}; out has keepdims or not (same element order). */
    public static void reduce(boolean mean, TensorData x, boolean[] reduced, TensorData out) {
        long[] s = x.shape();
        int r = s.length;
        double[] acc = new double[Math.toIntExact(out.numel())];
        long count = 1;
        for (int i = 0; i < r; i++) if (reduced[i]) count *= s[i];
        // out index of each input element: the kept dims, in order
        long[] ostr = new long[r];
        long st = 1;
        for (int i = r - 1; i >= 0; i--) {
            if (!reduced[i]) {
                ostr[i] = st;
                st *= s[i];
            }
        }
        long[] idx = new long[r];
        for (long i = 0; i < x.numel(); i++) {
            long o = 0;
            for (int d = 0; d < r; d++) o += idx[d] * ostr[d];
            acc[(int) o] += x.getDouble(i);
            for (int d = r - 1; d >= 0; d--) {
                if (++idx[d] < s[d]) break;
                idx[d] = 0;
            }
        }
        for (int i = 0; i < acc.length; i++) out.setDouble(i, mean ? acc[i] / count : acc[i]);
    }

    /** Softmax along {@code axis}, max-subtracted, in double. */
    public static void softmax(Context ctx, TensorData x, int axis, TensorData out) {
        long[] s = x.shape();
        long len = s[axis], inner = 1, outer = 1;
        for (int i = axis + 1; i < s.length; i++) inner *= s[i];
        for (int i = 0; i < axis; i++) outer *= s[i];
        long fi = inner;
        Parallel.forRange(ctx, outer * inner, len * 8, (lo, hi) -> {
            for (long q = lo; q < hi; q++) {
                long base = (q / fi) * len * fi + q % fi;
                double max = Double.NEGATIVE_INFINITY;
                for (long j = 0; j < len; j++) max = Math.max(max, x.getDouble(base + j * fi));
                double sum = 0;
                for (long j = 0; j < len; j++) sum += Math.exp(x.getDouble(base + j * fi) - max);
                for (long j = 0; j < len; j++) out.setDouble(base + j * fi, Math.exp(x.getDouble(base + j * fi) - max) / sum);
            }
        });
    }

    /** LayerNorm over the last dim: {@code (x - mean) / sqrt(var + eps) * gamma + beta} (biased variance). */
    public static void layerNorm(Context ctx, TensorData x, TensorData gamma, TensorData beta, double eps, TensorData out) {
        layerNorm(ctx, x, gamma, beta, null, eps, out);
    }

    /**
     * LayerNorm of {@code x + residual} (residual like x, or null) over the last dim; the sum is
     * taken in f32 (rounded once, as a kernel adding two f32 rows does).
     */
    public static void layerNorm(Context ctx, TensorData x, TensorData gamma, TensorData beta, TensorData residual, double eps, TensorData out) {
        int c = Math.toIntExact(x.dim(-1));
        long rows = x.numel() / Math.max(1, c);
        boolean f32 = x.dtype() == DType.F32 && out.dtype() == DType.F32;
        double[] g = new double[c], bt = new double[c];
        for (int j = 0; j < c; j++) {
            g[j] = gamma == null ? 1 : gamma.getDouble(j);
            bt[j] = beta == null ? 0 : beta.getDouble(j);
        }
        Parallel.forRange(ctx, rows, c * 4L, (lo, hi) -> {
            float[] row = new float[c];
            for (long r = lo; r < hi; r++) {
                long base = r * c;
                if (f32) MemorySegment.copy(x.segment(), java.lang.foreign.ValueLayout.JAVA_FLOAT, base * 4, row, 0, c);
                else for (int j = 0; j < c; j++) row[j] = (float) x.getDouble(base + j);
                if (residual != null) for (int j = 0; j < c; j++) row[j] += (float) residual.getDouble(base + j);
                double mean = 0, var = 0;
                for (int j = 0; j < c; j++) mean += row[j];
                mean /= c;
                for (int j = 0; j < c; j++) {
                    double d = row[j] - mean;
                    var += d * d;
                }
                double inv = 1 / Math.sqrt(var / c + eps);
                for (int j = 0; j < c; j++) row[j] = (float) ((row[j] - mean) * inv * g[j] + bt[j]);
                if (f32) MemorySegment.copy(row, 0, out.segment(), java.lang.foreign.ValueLayout.JAVA_FLOAT, base * 4, c);
                else for (int j = 0; j < c; j++) out.setDouble(base + j, row[j]);
            }
        });
    }

    // ================================================================ shapes and layout

    /** The dims of x from {@code start} as i64. */
    public static void shape(TensorData x, long start, TensorData out) {
        long st = start < 0 ? start + x.rank() : start;
        for (long i = 0; i < out.numel(); i++) out.setLong(i, x.dim((int) (st + i)));
    }

    /** A plain copy (reshape, squeeze, unsqueeze, identity: same elements, new shape). */
    public static void copy(TensorData x, TensorData out) {
        if (x.segment().address() != out.segment().address() || !x.segment().isNative()) x.copyTo(out);
    }

    /** Permutes dims: {@code out.shape[i] = x.shape[perm[i]]}. */
    public static void transpose(TensorData x, long[] perm, TensorData out) {
        long[] s = x.shape();
        int r = s.length;
        long es = x.dtype().byteSize();
        long[] xs = new long[r];
        long st = 1;
        for (int i = r - 1; i >= 0; i--) {
            xs[i] = st;
            st *= s[i];
        }
        long[] os = out.shape();
        long[] src = new long[r]; // stride in x of each out dim
        for (int i = 0; i < r; i++) src[i] = xs[(int) perm[i]];
        boolean innerKept = r > 0 && perm[r - 1] == r - 1;
        long run = innerKept ? os[r - 1] : 1;
        long outer = out.numel() / Math.max(1, run);
        MemorySegment xm = x.segment(), om = out.segment();
        long[] idx = new long[r];
        int last = innerKept ? r - 2 : r - 1;
        for (long q = 0; q < outer; q++) {
            long off = 0;
            for (int d = 0; d <= last; d++) off += idx[d] * src[d];
            MemorySegment.copy(xm, off * es, om, q * run * es, run * es);
            for (int d = last; d >= 0; d--) {
                if (++idx[d] < os[d]) break;
                idx[d] = 0;
            }
        }
    }

    /** Concatenates along {@code axis}. */
    public static void concat(java.util.List<TensorData> xs, int axis, TensorData out) {
        long[] os = out.shape();
        long outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= os[i];
        for (int i = axis + 1; i < os.length; i++) inner *= os[i];
        long es = out.dtype().byteSize(), orow = os[axis] * inner * es, pos = 0;
        for (TensorData x : xs) {
            long chunk = x.dim(axis) * inner * es;
            for (long q = 0; q < outer; q++) MemorySegment.copy(x.segment(), q * chunk, out.segment(), q * orow + pos, chunk);
            pos += chunk;
        }
    }

    /** ONNX Slice with starts/ends/axes/steps tensors (axes, steps may be null). */
    public static void slice(TensorData x, TensorData starts, TensorData ends, TensorData axes, TensorData steps, TensorData out) {
        int r = x.rank();
        long[] s = x.shape();
        long[] st = new long[r], step = new long[r];
        Arrays.fill(step, 1);
        for (int i = 0; i < starts.numel(); i++) {
            int a = (int) (axes == null ? i : axes.getLong(i));
            if (a < 0) a += r;
            long sp = steps == null ? 1 : steps.getLong(i);
            long[] se = ShapeInference.SliceMath.clamp(starts.getLong(i), ends.getLong(i), sp, s[a]);
            st[a] = se[0];
            step[a] = sp;
        }
        long[] xs = new long[r];
        long acc = 1;
        for (int i = r - 1; i >= 0; i--) {
            xs[i] = acc;
            acc *= s[i];
        }
        long[] os = out.shape();
        long es = x.dtype().byteSize();
        long[] idx = new long[r];
        for (long q = 0; q < out.numel(); q++) {
            long off = 0;
            for (int d = 0; d < r; d++) off += (st[d] + idx[d] * step[d]) * xs[d];
            MemorySegment.copy(x.segment(), off * es, out.segment(), q * es, es);
            for (int d = r - 1; d >= 0; d--) {
                if (++idx[d] < os[d]) break;
                idx[d] = 0;
            }
        }
    }

    /**
     * {@code out[pre, idx..., post] = x[pre, indices[idx...], post]} along {@code axis}; negative
     * indices count from the end.
     *
     * @throws GraphException for an index out of range
     */
    public static void gather(TensorData x, TensorData indices, int axis, TensorData out) {
        long[] s = x.shape();
        long pre = 1, post = 1;
        for (int i = 0; i < axis; i++) pre *= s[i];
        for (int i = axis + 1; i < s.length; i++) post *= s[i];
        long n = indices.numel(), d = s[axis], es = x.dtype().byteSize(), chunk = post * es;
        for (long j = 0; j < n; j++) {
            long k = indices.getLong(j);
            if (k < -d || k >= d) throw new GraphException("gather: index " + k + " at position " + j + " is out of range for dim " + axis + " of " + x);
        }
        for (long p = 0; p < pre; p++) {
            for (long j = 0; j < n; j++) {
                long k = indices.getLong(j);
                if (k < 0) k += d;
                MemorySegment.copy(x.segment(), (p * d + k) * chunk, out.segment(), (p * n + j) * chunk, chunk);
            }
        }
    }

    /** Broadcasts x to out's shape. */
    public static void expand(TensorData x, TensorData out) {
        long[] os = out.shape();
        long[] sx = bstrides(x.shape(), os);
        long es = x.dtype().byteSize();
        for (long i = 0; i < out.numel(); i++) {
            MemorySegment.copy(x.segment(), flatOffset(i, os, sx) * es, out.segment(), i * es, es);
        }
    }

    /** Fills out with the single element of {@code value} (0.0f when null). */
    public static void constantOfShape(TensorData value, TensorData out) {
        for (long i = 0; i < out.numel(); i++) {
            if (value == null) out.setDouble(i, 0);
            else if (value.dtype().isFloat()) out.setDouble(i, value.getDouble(0));
            else out.setLong(i, value.getLong(0));
        }
    }

    /** {@code out[i] = start + i * delta}. */
    public static void range(TensorData start, TensorData delta, TensorData out) {
        for (long i = 0; i < out.numel(); i++) {
            if (out.dtype().isFloat()) out.setDouble(i, start.getDouble(0) + i * delta.getDouble(0));
            else out.setLong(i, start.getLong(0) + i * delta.getLong(0));
        }
    }

    // ================================================================ products

    /** numpy matmul (batch dims broadcast; 1-D operands promoted), accumulated in double. */
    public static void matmul(Context ctx, TensorData a, TensorData b, TensorData out) {
        long[] as = a.shape(), bs = b.shape();
        boolean av = as.length == 1, bv = bs.length == 1;
        long m = av ? 1 : as[as.length - 2], k = as[as.length - 1], n = bv ? 1 : bs[bs.length - 1];
        long[] os = out.shape();
        int batchRank = os.length - (av ? 0 : 1) - (bv ? 0 : 1);
        long[] bshape = Arrays.copyOf(os, batchRank);
        long[] sa = bstrides(av ? new long[0] : Arrays.copyOf(as, as.length - 2), bshape);
        long[] sb = bstrides(bv ? new long[0] : Arrays.copyOf(bs, bs.length - 2), bshape);
        long batches = TensorData.numel(bshape);
        Parallel.forRange(ctx, batches * m, n * k, (lo, hi) -> {
            for (long q = lo; q < hi; q++) {
                long bi = q / m, i = q % m;
                long oa = flatOffset(bi, bshape, sa) * m * k, ob = flatOffset(bi, bshape, sb) * k * n;
                for (long j = 0; j < n; j++) {
                    double s = 0;
                    for (long p = 0; p < k; p++) s += a.getDouble(oa + i * k + p) * b.getDouble(ob + p * n + j);
                    out.setDouble((bi * m + i) * n + j, s);
                }
            }
        });
    }

    /** ONNX Gemm: {@code alpha op(a) op(b) + beta c} (c broadcast, may be null). */
    public static void gemm(TensorData a, TensorData b, TensorData c, double alpha, double beta, boolean ta, boolean tb, TensorData out) {
        long m = out.dim(0), n = out.dim(1), k = ta ? a.dim(0) : a.dim(1);
        long[] sc = c == null ? null : bstrides(c.shape(), out.shape());
        for (long i = 0; i < m; i++) {
            for (long j = 0; j < n; j++) {
                double s = 0;
                for (long p = 0; p < k; p++) {
                    s += a.getDouble(ta ? p * m + i : i * k + p) * b.getDouble(tb ? j * k + p : p * n + j);
                }
                s *= alpha;
                if (c != null) s += beta * c.getDouble(flatOffset(i * n + j, out.shape(), sc));
                out.setDouble(i * n + j, s);
            }
        }
    }

    /**
     * {@code out = act(x @ w + bias + residual)}: x [..., K]; w [K, N], or [N, K] when transB;
     * bias [N] or null; residual shaped like out, or null; activation "none", "gelu",
     * "gelu_tanh" or "relu".
     */
    public static void linear(Context ctx, TensorData x, TensorData w, TensorData bias, TensorData residual, boolean transB, String activation,
                              TensorData out) {
        long k = x.dim(-1), n = out.dim(-1), rows = x.numel() / Math.max(1, k);
        Parallel.forRange(ctx, rows, n * k, (lo, hi) -> {
            for (long i = lo; i < hi; i++) {
                for (long j = 0; j < n; j++) {
                    double s = 0;
                    for (long p = 0; p < k; p++) s += x.getDouble(i * k + p) * w.getDouble(transB ? j * k + p : p * n + j);
                    if (bias != null) s += bias.getDouble(j);
                    if (residual != null) s += residual.getDouble(i * n + j);
                    out.setDouble(i * n + j, activate(s, activation));
                }
            }
        });
    }

    static double activate(double v, String act) {
        return switch (act) {
            case "none" -> v;
            case "gelu" -> gelu(v, false);
            case "gelu_tanh" -> gelu(v, true);
            case "relu" -> v > 0 ? v : 0;
            default -> throw new GraphException("unknown activation '" + act + "'");
        };
    }

    /**
     * Multi-head attention: q, k, v [B, S, H*D]; mask an additive bias broadcastable to
     * [B, H, S, S] (or null); {@code out[b, i, h*D:(h+1)*D] = softmax(scale q_i·k_j + mask) v}.
     * scale 0 means 1/sqrt(D).
     */
    public static void attention(Context ctx, TensorData q, TensorData k, TensorData v, TensorData mask, int heads, double scale, TensorData out) {
        attention(ctx, q, k, v, mask, false, heads, scale, out);
    }

    /**
     * Like {@link #attention(Context, TensorData, TensorData, TensorData, TensorData, int, double, TensorData)};
     * with {@code keyPadding} the mask is an integer [B, S] keep mask (nonzero = attend) and a
     * row that sees no key gets zeros (the flash-attention kernel's rule).
     */
    public static void attention(Context ctx, TensorData q, TensorData k, TensorData v, TensorData mask, boolean keyPadding, int heads,
                                 double scale, TensorData out) {
        if (keyPadding) {
            long bsz = q.dim(0), s = q.dim(1);
            TensorData add = TensorData.allocate(Arena.ofAuto(), DType.F32, bsz, 1, 1, s);
            boolean[] none = new boolean[(int) bsz];
            for (int b = 0; b < bsz; b++) {
                none[b] = true;
                for (long j = 0; j < s; j++) {
                    boolean keep = mask.getLong(b * s + j) != 0;
                    none[b] &= !keep;
                    add.setFloat(b * s + j, keep ? 0f : Float.NEGATIVE_INFINITY);
                }
            }
            attention(ctx, q, k, v, add, false, heads, scale, out);
            long row = s * q.dim(2);
            for (int b = 0; b < bsz; b++) if (none[b]) for (long i = 0; i < row; i++) out.setDouble(b * row + i, 0);
            return;
        }
        long bsz = q.dim(0), s = q.dim(1), hd = q.dim(2), d = hd / heads;
        double sc = scale == 0 ? 1 / Math.sqrt(d) : scale;
        long[] ms = mask == null ? null : bstrides(mask.shape(), new long[] {bsz, heads, s, s});
        Parallel.forRange(ctx, bsz * heads, s * s * d, (lo, hi) -> {
            double[] p = new double[(int) s];
            for (long bh = lo; bh < hi; bh++) {
                long b = bh / heads, h = bh % heads;
                for (long i = 0; i < s; i++) {
                    long qo = (b * s + i) * hd + h * d;
                    double max = Double.NEGATIVE_INFINITY;
                    for (long j = 0; j < s; j++) {
                        long ko = (b * s + j) * hd + h * d;
                        double dot = 0;
                        for (long t = 0; t < d; t++) dot += q.getDouble(qo + t) * k.getDouble(ko + t);
                        double val = dot * sc;
                        if (mask != null) val += mask.getDouble(b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]);
                        p[(int) j] = val;
                        max = Math.max(max, val);
                    }
                    double sum = 0;
                    for (int j = 0; j < s; j++) sum += p[j] = Math.exp(p[j] - max);
                    for (long t = 0; t < d; t++) {
                        double acc = 0;
                        for (long j = 0; j < s; j++) acc += p[(int) j] * v.getDouble((b * s + j) * hd + h * d + t);
                        out.setDouble(qo + t, acc / sum);
                    }
                }
            }
        });
    }

    // ================================================================ broadcasting helpers

    /** Element strides of {@code s} aligned to the right of {@code target}, 0 where broadcast. */
    static long[] bstrides(long[] s, long[] target) {
        int r = target.length;
        long[] st = new long[r];
        long acc = 1;
        for (int i = s.length - 1; i >= 0; i--) {
            int t = i + r - s.length;
            st[t] = s[i] == 1 && target[t] != 1 ? 0 : acc;
            acc *= s[i];
        }
        return st;
    }

    /** Offset (elements) of row {@code row} (all dims but the last) under strides. */
    private static long offset(long row, long[] shape, long[] strides) {
        long off = 0;
        for (int d = shape.length - 2; d >= 0; d--) {
            long i = row % shape[d];
            row /= shape[d];
            off += i * strides[d];
        }
        return off;
    }

    /** Offset of flat index {@code i} of {@code shape} under strides. */
    static long flatOffset(long i, long[] shape, long[] strides) {
        long off = 0;
        for (int d = shape.length - 1; d >= 0; d--) {
            long x = i % shape[d];
            i /= shape[d];
            off += x * strides[d];
        }
        return off;
    }
}
