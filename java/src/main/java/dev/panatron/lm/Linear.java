package dev.panatron.lm;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.Tensor;

import java.lang.foreign.Arena;

/**
 * One linear layer {@code out[R, N] = x[R, K] @ W + bias}, f32 in and out. The weight
 * precision is the implementation's business: this is the hook where quantized formats
 * (int8, fp4) attach (see {@link Precision}).
 */
public abstract sealed class Linear permits Linear.Dense {
    /** Input features K. */
    public abstract long in();

    /** Output features N. */
    public abstract long out();

    /** Bytes of weight read per application (for the bandwidth bound). */
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
     * @param precision  how to store the weight (converted once, into {@code arena}, when its dtype differs)
     * @param maxRows    the most rows {@code apply} sees (sizes the bf16 input scratch)
     */
    public static Linear create(Tensor weight, Tensor bias, boolean conv1d, Precision precision, Arena arena, Context ctx, int maxRows) {
        DType want = switch (precision) {
            case FP32 -> DType.F32;
            case BF16 -> DType.BF16;
        };
        Tensor w = weight;
        if (w.dtype() != want) {
            w = Tensor.allocate(arena, want, weight.shape());
            Kernels.convert(ctx, weight, w);
        }
        return new Dense(w, bias, conv1d, want == DType.BF16 ? Tensor.allocate(arena, DType.BF16, maxRows, conv1d ? w.dim(0) : w.dim(1)) : null);
    }

    /** f32 or bf16 dense weights through {@link Kernels#matmul}. */
    static final class Dense extends Linear {
        private final Tensor w, bias, scratch;
        private final boolean conv1d;
        private final Kernels.MatmulOptions[] opts = new Kernels.MatmulOptions[Kernels.Activation.values().length];

        Dense(Tensor w, Tensor bias, boolean conv1d, Tensor scratch) {
            this.w = w;
            this.bias = bias;
            this.conv1d = conv1d;
            this.scratch = scratch;
            for (Kernels.Activation a : Kernels.Activation.values()) {
                opts[a.ordinal()] = Kernels.MatmulOptions.DEFAULT.withTransB(!conv1d).withActivation(a);
            }
        }

        @Override public long in() { return conv1d ? w.dim(0) : w.dim(1); }

        @Override public long out() { return conv1d ? w.dim(1) : w.dim(0); }

        @Override public long weightBytes() { return w.dtype().bytesFor(w.numel()); }

        Tensor weight() { return w; }

        @Override
        public void apply(Context ctx, Tensor x, Tensor out, Kernels.Activation act) {
            Tensor a = x;
            if (scratch != null) {
                long rows = x.dim(0);
                if (rows > scratch.dim(0)) throw new IllegalArgumentException("linear: " + rows + " rows, scratch holds " + scratch.dim(0));
                a = rows == scratch.dim(0) ? scratch : scratch.slice(0, 0, rows);
                Kernels.convert(ctx, x, a);
            }
            Kernels.matmul(ctx, a, w, bias, out, opts[act.ordinal()]);
        }
    }
}
