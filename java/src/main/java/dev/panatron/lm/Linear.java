package dev.panatron.lm;

import dev.panatron.Precision;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels;
import dev.panatron.QuantKernels;
import dev.panatron.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One linear layer {@code out[R, N] = act(x[R, K] @ W + bias)}, f32 in and out. The weight
 * precision is the implementation's business (see {@link Precision}): f32/bf16 dense weights,
 * LLM.int8 or FP4 weight-only. Every buffer a call needs is made at load: {@code apply}
 * allocates no native memory.
 */
public abstract sealed class Linear permits Linear.Dense, Linear.Int8, Linear.Fp4Weight {
    /** FP4 scale group along K (system property {@code panatron.fp4.group}: 32 or 64). */
    static final int FP4_GROUP = Integer.getInteger("panatron.fp4.group", 64);

    /** Input features K. */
    public abstract long in();

    /** Output features N. */
    public abstract long out();

    /** Bytes of weight (and scales) read per application (for the bandwidth bound). */
    public abstract long weightBytes();

    /**
     * {@code out = act(x @ W + bias)}.
     *
     * @param x   [R, K] f32
     * @param out [R, N] f32, not overlapping x
     */
    public abstract void apply(Context ctx, Tensor x, Tensor out, Kernels.Activation act);

    /**
     * Makes a linear layer.
     *
     * @param weight     f32 or bf16: [N, K] (nn.Linear) or [K, N] when {@code conv1d} (GPT-2's Conv1D)
     * @param bias       [N] f32 or null
     * @param precision  how to store the weight (converted or quantized once, into {@code arena})
     * @param maxRows    the most rows {@code apply} sees (sizes the bf16 input scratch)
     */
    public static Linear create(Tensor weight, Tensor bias, boolean conv1d, Precision precision, Arena arena, Context ctx, int maxRows) {
        return switch (precision) {
            case FP32, BF16 -> {
                DType want = precision == Precision.BF16 ? DType.BF16 : DType.F32;
                // Conv1D [K, N] weights are transposed once into [N, K]: at M = 1 the GEMV then
                // streams whole rows (measured 2x the bandwidth of reading [K, N] column blocks)
                Tensor w;
                try (Arena tmp = Arena.ofConfined()) {
                    w = conv1d ? nk(weight, true, want == DType.F32 ? arena : tmp, ctx) : weight;
                    if (w.dtype() != want) {
                        Tensor c = Tensor.allocate(arena, want, w.shape());
                        Kernels.convert(ctx, w, c);
                        w = c;
                    }
                }
                yield new Dense(w, bias, false, want == DType.BF16 ? Tensor.allocate(arena, DType.BF16, maxRows, w.dim(1)) : null);
            }
            case INT8 -> {
                try (Arena tmp = Arena.ofConfined()) {
                    Tensor w = nk(weight, conv1d, tmp, ctx);
                    long n = w.dim(0), k = w.dim(1);
                    Tensor wq = Tensor.allocate(arena, DType.I8, n, k), scale = Tensor.allocate(arena, DType.F32, n);
                    QuantKernels.quantizeInt8Weight(ctx, w, wq, scale);
                    Tensor packed = Tensor.allocate(arena, DType.I8, QuantKernels.int8PackedBytes(n, k));
                    QuantKernels.packInt8Weight(ctx, wq, packed);
                    yield new Int8(wq, scale, packed, bias);
                }
            }
            case FP4 -> {
                try (Arena tmp = Arena.ofConfined()) {
                    Tensor w = nk(weight, conv1d, tmp, ctx);
                    long n = w.dim(0), k = w.dim(1);
                    if (k % 2 != 0) throw new IllegalArgumentException("fp4: a linear layer with K=" + k + " (odd) cannot be packed two codes per byte");
                    int group = FP4_GROUP > 0 && k % FP4_GROUP == 0 ? FP4_GROUP : k % 32 == 0 ? 32 : 0;
                    Tensor codes = Tensor.allocate(arena, DType.U4, n, k);
                    Tensor scales = Tensor.allocate(arena, DType.BF16, n, group == 0 ? 1 : k / group);
                    Fp4.quantize(ctx, w, Fp4.Format.E2M1, group, 1f, null, codes, scales);
                    yield new Fp4Weight(codes, scales, group, bias);
                }
            }
        };
    }

    /** The weight as a contiguous [N, K] f32 or bf16 tensor (transposed into {@code tmp} for Conv1D). */
    private static Tensor nk(Tensor weight, boolean conv1d, Arena tmp, Context ctx) {
        if (!conv1d) return weight;
        long k = weight.dim(0), n = weight.dim(1);
        Tensor src = weight;
        if (src.dtype() != DType.F32) {
            src = Tensor.allocate(tmp, DType.F32, k, n);
            Kernels.convert(ctx, weight, src);
        }
        Tensor t = Tensor.allocate(tmp, DType.F32, n, k);
        MemorySegment s = src.segment(), d = t.segment();
        long rs = src.strides()[0] / 4;
        final int b = 64; // cache blocks
        for (long k0 = 0; k0 < k; k0 += b) {
            for (long n0 = 0; n0 < n; n0 += b) {
                for (long kk = k0; kk < Math.min(k, k0 + b); kk++) {
                    for (long nn = n0; nn < Math.min(n, n0 + b); nn++) {
                        d.setAtIndex(ValueLayout.JAVA_FLOAT, nn * k + kk, s.getAtIndex(ValueLayout.JAVA_FLOAT, kk * rs + nn));
                    }
                }
            }
        }
        return t;
    }

    /** f32 or bf16 dense weights through {@link Kernels#matmul} (GEMV-like kernel at M <= 8). */
    static final class Dense extends Linear {
        private final Tensor w, bias, scratch;
        private final Tensor[] scratchViews;
        private final boolean conv1d;
        private final Kernels.MatmulOptions[] opts = new Kernels.MatmulOptions[Kernels.Activation.values().length];

        Dense(Tensor w, Tensor bias, boolean conv1d, Tensor scratch) {
            this.w = w;
            this.bias = bias;
            this.conv1d = conv1d;
            this.scratch = scratch;
            this.scratchViews = scratch == null ? null : new Tensor[(int) scratch.dim(0)];
            for (Kernels.Activation a : Kernels.Activation.values()) {
                opts[a.ordinal()] = Kernels.MatmulOptions.DEFAULT.withTransB(!conv1d).withActivation(a);
            }
        }

        @Override public long in() { return conv1d ? w.dim(0) : w.dim(1); }

        @Override public long out() { return conv1d ? w.dim(1) : w.dim(0); }

        @Override public long weightBytes() { return w.dtype().bytesFor(w.numel()); }

        Tensor weight() { return w; }

        /** True when {@link #prepare} applies (no bf16 input conversion before the matmul). */
        boolean preparable() { return scratch == null; }

        /** {@link #apply} prepared for repeated runs on x and out, the activation fused (only when {@link #preparable}). */
        Kernels.Call prepare(Context ctx, Tensor x, Tensor out, Kernels.Activation act) {
            return Kernels.prepareMatmul(ctx, x, w, bias, out, opts[act.ordinal()]);
        }

        @Override
        public void apply(Context ctx, Tensor x, Tensor out, Kernels.Activation act) {
            Tensor a = x;
            if (scratch != null) {
                long rows = x.dim(0);
                if (rows > scratch.dim(0)) throw new IllegalArgumentException("linear: " + rows + " rows, scratch holds " + scratch.dim(0));
                a = scratchViews[(int) rows - 1];
                if (a == null) a = scratchViews[(int) rows - 1] = scratch.slice(0, 0, rows);  // made once per row count
                Kernels.convert(ctx, x, a);
            }
            Kernels.matmul(ctx, a, w, bias, out, opts[act.ordinal()]);
        }
    }

    /** LLM.int8 ({@link QuantKernels#matmulInt8}, threshold 6) on a weight packed at load. */
    static final class Int8 extends Linear {
        private final Tensor wq, scale, packed, bias;
        private final QuantKernels.Int8Options[] opts = new QuantKernels.Int8Options[Kernels.Activation.values().length];

        Int8(Tensor wq, Tensor scale, Tensor packed, Tensor bias) {
            this.wq = wq;
            this.scale = scale;
            this.packed = packed;
            this.bias = bias;
            for (Kernels.Activation a : Kernels.Activation.values()) {
                opts[a.ordinal()] = new QuantKernels.Int8Options(QuantKernels.Int8Mode.LLM, a, 6.0f);
            }
        }

        @Override public long in() { return wq.dim(1); }

        @Override public long out() { return wq.dim(0); }

        @Override public long weightBytes() { return packed.numel() + 4 * scale.numel(); }

        @Override
        public void apply(Context ctx, Tensor x, Tensor out, Kernels.Activation act) {
            QuantKernels.matmulInt8(ctx, x, wq, scale, null, bias, out, opts[act.ordinal()], packed);
        }
    }

    /** FP4 (E2M1) weight-only ({@link Fp4#matmul}); the activation runs in place after it. */
    static final class Fp4Weight extends Linear {
        private final Tensor codes, scales, bias;
        private final int group;

        Fp4Weight(Tensor codes, Tensor scales, int group, Tensor bias) {
            this.codes = codes;
            this.scales = scales;
            this.group = group;
            this.bias = bias;
        }

        @Override public long in() { return codes.dim(1); }

        @Override public long out() { return codes.dim(0); }

        @Override public long weightBytes() { return codes.numel() / 2 + 2 * scales.numel(); }

        int group() { return group; }

        /** The weight the codes stand for, [N, K] (for tests). */
        void dequantize(Context ctx, Tensor out) {
            Fp4.dequantize(ctx, codes, scales, Fp4.Format.E2M1, group, out);
        }

        /** {@link #apply} without activation, prepared for repeated runs on x and out. */
        Kernels.Call prepare(Context ctx, Tensor x, Tensor out) {
            return Fp4.prepareMatmul(ctx, x, codes, scales, Fp4.Format.E2M1, group, bias, out);
        }

        @Override
        public void apply(Context ctx, Tensor x, Tensor out, Kernels.Activation act) {
            Fp4.matmul(ctx, x, codes, scales, Fp4.Format.E2M1, group, bias, out);
            switch (act) {
                case NONE -> { }
                case RELU -> Kernels.relu(ctx, out, out);
                case GELU_ERF -> Kernels.gelu(ctx, out, out, false);
                case GELU_TANH -> Kernels.gelu(ctx, out, out, true);
                case SILU -> Kernels.silu(ctx, out, out);
            }
        }
    }
}
