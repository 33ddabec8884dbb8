package dev.panatron.graph;

import dev.panatron.BlockSparse;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels;
import dev.panatron.Kernels.Activation;
import dev.panatron.QuantKernels;
import dev.panatron.QuantKernels.Int8Mode;
import dev.panatron.QuantKernels.Int8Options;
import dev.panatron.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Execution of {@link Op#QLINEAR} (compressed linear layers made by {@link Compression}):
 * {@link #bind} runs them through the int8 ({@link QuantKernels#matmulInt8}, LLM.int8 or W8A8,
 * the weight packed once per session) and FP4 ({@link Fp4#matmul}, decoded in registers)
 * kernels; {@link #reference} is the plain-Java twin (weight decoded to double, f32
 * activations: the weight-only math; for W8A8 / LLM.int8 it omits the activation rounding).
 */
final class CompressedOps {
    private CompressedOps() {}

    static Activation activation(String act) {
        return switch (act) {
            case "none" -> Activation.NONE;
            case "gelu" -> Activation.GELU_ERF;
            case "gelu_tanh" -> Activation.GELU_TANH;
            case "relu" -> Activation.RELU;
            default -> throw new GraphException("unknown activation '" + act + "'");
        };
    }

    /** The code that runs QLINEAR node {@code n} on the plan's views. */
    static Runnable bind(Context ctx, Plan plan, Node n, TensorData[] in, TensorData out, Weights weights) {
        TensorData x = in[0], codes = in[1], scales = in.length > 2 ? in[2] : null;
        TensorData bias = in.length > 3 ? in[3] : null, residual = in.length > 4 ? in[4] : null;
        String scheme = n.attrString("scheme", "");
        String act = n.attrString("activation", "none");
        if (x.dtype() != DType.F32 && x.dtype() != DType.BF16 || out.dtype() != DType.F32 && out.dtype() != DType.BF16) {
            return () -> reference(ctx, n, in, out);
        }
        long k = n.attrLong("k", -1), nOut = n.hasAttr("n") ? n.attrLong("n", 0) : codes.dim(0);
        Tensor xm = x.asMatrix().asTensor(), om = out.asMatrix().asTensor(), bt = bias == null ? null : bias.asTensor();
        // with a residual (or an activation fp4 has no epilogue for) the product goes to a temporary first
        boolean fp4 = scheme.equals("fp4");
        Activation a = activation(act);
        boolean needTmp = residual != null || (fp4 && a != Activation.NONE);
        // (int8 and bsr apply the activation in their epilogue when there is no residual)
        Tensor ym = needTmp ? TensorData.allocate(plan.arena(), out.dtype(), out.asMatrix().shape()).asTensor() : om;
        Runnable product;
        switch (scheme) {
            case "llm_int8", "w8a8", "w8a32" -> {
                Int8Mode mode = switch (scheme) {
                    case "w8a8" -> Int8Mode.W8A8;
                    case "w8a32" -> Int8Mode.WEIGHT_ONLY;
                    default -> Int8Mode.LLM;
                };
                Int8Options opts = new Int8Options(mode, residual == null ? a : Activation.NONE, (float) n.attrDouble("threshold", 6.0));
                Tensor wq = codes.asTensor(), ws = scales.asTensor();
                Tensor packed = weights == null ? null : weights.derived(n.input(1), () -> {
                    Tensor p = Tensor.allocate(DType.I8, QuantKernels.int8PackedBytes(nOut, k));
                    QuantKernels.packInt8Weight(ctx, wq, p);
                    return p;
                });
                product = () -> QuantKernels.matmulInt8(ctx, xm, wq, ws, null, bt, ym, opts, packed);
            }
            case "bsr" -> {
                if (weights == null) return () -> reference(ctx, n, in, out);
                BlockSparse.Weight bw = weights.derived(n.input(1), () -> BlockSparse.load(codes.segment()));
                Activation pa = residual == null ? a : Activation.NONE;
                product = () -> BlockSparse.matmul(ctx, xm, bw, bt, pa, ym);
            }
            case "fp4" -> {
                Fp4.Format format = Fp4.Format.valueOf(n.attrString("format", "E2M1"));
                int group = (int) n.attrLong("group", 0);
                Tensor ct = Tensor.wrap(codes.segment(), DType.U4, nOut, k), st = scales.asTensor();
                product = () -> Fp4.matmul(ctx, xm, ct, st, format, group, bt, ym);
            }
            default -> throw new GraphException(n, "unknown compression scheme '" + scheme + "'");
        }
        if (!needTmp) return product;
        if (residual == null) {       // fp4 + activation
            Kernels.Unary u = switch (a) {
                case GELU_ERF -> Kernels.Unary.GELU_ERF;
                case GELU_TANH -> Kernels.Unary.GELU_TANH;
                default -> null;
            };
            if (u == null) return () -> reference(ctx, n, in, out);
            return () -> {
                product.run();
                Kernels.unary(ctx, u, ym, om);
            };
        }
        if (a != Activation.NONE) return () -> reference(ctx, n, in, out);
        Tensor rm = residual.asMatrix().asTensor();
        return () -> {
            product.run();
            Kernels.add(ctx, ym, rm, om);
        };
    }

    /** The weight of QLINEAR node {@code n} decoded to f32 [N, K] (for the reference and tests). */
    static float[] decode(Node n, TensorData codes, TensorData scales) {
        int k = (int) n.attrLong("k", -1), nOut = (int) (n.hasAttr("n") ? n.attrLong("n", 0) : codes.dim(0));
        float[] w = new float[nOut * k];
        MemorySegment c = codes.segment();
        String scheme = n.attrString("scheme", "");
        if (scheme.equals("bsr")) {
            Context ctx = Context.shared();
            try (BlockSparse.Weight bw = BlockSparse.load(c); Tensor d = bw.toDense(ctx)) {
                float[] kn = d.toFloatArray();
                for (int i = 0; i < k; i++) for (int j = 0; j < nOut; j++) w[j * k + i] = kn[i * nOut + j];
            }
        } else if (scheme.equals("fp4")) {
            float[] lv = Fp4.levels(Fp4.Format.valueOf(n.attrString("format", "E2M1")));
            int group = (int) n.attrLong("group", 0);
            long groups = scales.dim(1);
            for (int r = 0; r < nOut; r++) {
                for (int j = 0; j < k; j++) {
                    int b = c.get(ValueLayout.JAVA_BYTE, ((long) r * k + j) / 2) & 0xff;
                    int code = (j & 1) == 0 ? b & 15 : b >>> 4;
                    double s = scales.getDouble(r * groups + (group == 0 ? 0 : j / group));
                    w[r * k + j] = (float) (lv[code] * s);
                }
            }
        } else {
            for (int r = 0; r < nOut; r++) {
                double s = scales.getDouble(r);
                for (int j = 0; j < k; j++) w[r * k + j] = (float) (c.get(ValueLayout.JAVA_BYTE, (long) r * k + j) * s);
            }
        }
        return w;
    }

    /** Plain Java: {@code out = act(x @ decode(W)ᵀ + bias + residual)}, double accumulation. */
    static void reference(Context ctx, Node n, TensorData[] in, TensorData out) {
        TensorData x = in[0];
        float[] w = decode(n, in[1], in.length > 2 ? in[2] : null);
        TensorData bias = in.length > 3 ? in[3] : null, residual = in.length > 4 ? in[4] : null;
        String act = n.attrString("activation", "none");
        long k = x.dim(-1), nOut = out.dim(-1), rows = x.numel() / Math.max(1, k);
        Parallel.forRange(ctx, rows, nOut * k, (lo, hi) -> {
            double[] xr = new double[(int) k];
            for (long i = lo; i < hi; i++) {
                for (int p = 0; p < k; p++) xr[p] = x.getDouble(i * k + p);
                for (long j = 0; j < nOut; j++) {
                    double s = 0;
                    int base = (int) (j * k);
                    for (int p = 0; p < k; p++) s += xr[p] * w[base + p];
                    if (bias != null) s += bias.getDouble(j);
                    if (residual != null) s += residual.getDouble(i * nOut + j);
                    out.setDouble(i * nOut + j, RefOps.activate(s, act));
                }
            }
        });
    }
}
