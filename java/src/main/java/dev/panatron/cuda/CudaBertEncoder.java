package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A BERT-style encoder stack (post-LayerNorm, GELU(erf) FFN: BERT, MiniLM) run entirely on the
 * GPU over packed variable-length sequences: per layer one fused QKV GEMM, varlen flash attention,
 * the output projection with the residual added by the GEMM (beta = 1), LayerNorm, the FFN with
 * the bias/GELU epilogue and the residual again, LayerNorm. Weights live on the device in the
 * context's memory until {@link #close()}.
 *
 * <p>Head dims the attention kernels lack (MiniLM's 32) are zero-padded to the next supported one
 * (64, 80, 96, 128, 256) in the QKV and output-projection weights at load time: padded q/k columns
 * add nothing to the scores and padded v columns meet zero rows of the output projection, so the
 * result is exact, at the price of the padded FLOPs.
 *
 * <p>Experimental (issue 7): the model executor does not dispatch to the GPU yet; this class is
 * the GPU path of the encoder, built from host weights in PyTorch layout, or from a loaded model's
 * ({@link dev.panatron.graph.BertWeights}; {@link CudaEmbedder} adds the embeddings and pooling).
 */
public final class CudaBertEncoder implements AutoCloseable {
    /**
     * The encoder's shape.
     *
     * @param hidden       model width (heads * head dim)
     * @param heads        attention heads
     * @param intermediate FFN width
     * @param eps          LayerNorm epsilon (BERT: 1e-12)
     */
    public record Config(int hidden, int heads, int intermediate, float eps) {
        /** @throws IllegalArgumentException for non-positive sizes or hidden not divisible by heads */
        public Config {
            if (hidden <= 0 || heads <= 0 || intermediate <= 0 || hidden % heads != 0) {
                throw new IllegalArgumentException("bad encoder config: hidden " + hidden + ", heads " + heads + ", intermediate " + intermediate);
            }
            if (!(eps >= 0) || Float.isInfinite(eps)) throw new IllegalArgumentException("eps " + eps + " must be finite and >= 0");
        }

        public int headDim() { return hidden / heads; }
    }

    /**
     * One layer's weights, host f32 tensors in PyTorch layout (Linear weight [out, in]).
     * q/k/v/o: [hidden, hidden] and [hidden]; ffn1: [intermediate, hidden], [intermediate];
     * ffn2: [hidden, intermediate], [hidden]; LayerNorms: [hidden].
     */
    public record LayerWeights(Tensor wq, Tensor bq, Tensor wk, Tensor bk, Tensor wv, Tensor bv, Tensor wo, Tensor bo,
                               Tensor ln1Gamma, Tensor ln1Beta, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
                               Tensor ln2Gamma, Tensor ln2Beta) {}

    private record DeviceLayer(DeviceTensor wqkv, DeviceTensor bqkv, DeviceTensor wo, DeviceTensor bo, DeviceTensor ln1g,
                               DeviceTensor ln1b, DeviceTensor w1, DeviceTensor b1, DeviceTensor w2, DeviceTensor b2,
                               DeviceTensor ln2g, DeviceTensor ln2b) {}

    private static final int[] HEAD_DIMS = {64, 80, 96, 128, 256};

    private final CudaContext ctx;
    private final Config cfg;
    private final DType dtype;
    private final int paddedHeadDim;
    private final List<DeviceLayer> layers = new ArrayList<>();
    private final List<DeviceTensor> owned = new ArrayList<>();
    private volatile boolean closed;

    /**
     * Uploads the weights (converted to {@code dtype}, biases too; LayerNorm parameters stay f32).
     *
     * @throws IllegalArgumentException for a weight of the wrong shape or dtype, an unsupported
     *         dtype, or a head dim above 256
     */
    public CudaBertEncoder(CudaContext ctx, Config cfg, List<LayerWeights> weights, DType dtype) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
        this.cfg = Objects.requireNonNull(cfg, "cfg");
        this.dtype = Objects.requireNonNull(dtype, "dtype");
        if (dtype != DType.BF16 && dtype != DType.F16) throw new IllegalArgumentException("dtype must be BF16 or F16, got " + dtype);
        this.paddedHeadDim = paddedHeadDim(cfg.headDim());
        try {
            for (int l = 0; l < weights.size(); l++) layers.add(upload(l, hostArrays(l, weights.get(l))));
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * The encoder of a loaded model ({@link dev.panatron.Embedder#encoderWeights()}): its weights
     * uploaded in {@code dtype} as the other constructor does.
     *
     * @throws IllegalArgumentException for inconsistent weight sizes, an unsupported dtype, or a
     *         head dim above 256
     */
    public CudaBertEncoder(CudaContext ctx, dev.panatron.graph.BertWeights w, DType dtype) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(w, "weights");
        this.cfg = new Config(w.hidden(), w.heads(), w.intermediate(), w.eps());
        this.dtype = Objects.requireNonNull(dtype, "dtype");
        if (dtype != DType.BF16 && dtype != DType.F16) throw new IllegalArgumentException("dtype must be BF16 or F16, got " + dtype);
        this.paddedHeadDim = paddedHeadDim(cfg.headDim());
        try {
            for (int l = 0; l < w.layers().size(); l++) {
                var x = w.layers().get(l);
                float[][] a = {x.wq(), x.wk(), x.wv(), x.bq(), x.bk(), x.bv(), x.wo(), x.bo(), x.ln1Gamma(), x.ln1Beta(), x.w1(), x.b1(),
                        x.w2(), x.b2(), x.ln2Gamma(), x.ln2Beta()};
                long h = cfg.hidden(), f = cfg.intermediate();
                long[] len = {h * h, h * h, h * h, h, h, h, h * h, h, h, h, f * h, f, h * f, h, h, h};
                for (int i = 0; i < a.length; i++) {
                    if (a[i] == null || a[i].length != len[i]) {
                        throw new IllegalArgumentException("layer " + l + " weight " + i + ": expected " + len[i] + " floats, got "
                                + (a[i] == null ? "null" : a[i].length));
                    }
                }
                layers.add(upload(l, a));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private static int paddedHeadDim(int d) {
        for (int h : HEAD_DIMS) if (h >= d) return h;
        throw new IllegalArgumentException("head dim " + d + " > 256 is not supported");
    }

    public Config config() { return cfg; }

    public int layerCount() { return layers.size(); }

    /** The head dim the attention kernels run at (the model's, or the next supported one). */
    public int paddedHeadDim() { return paddedHeadDim; }

    /** The host weights as arrays in {@link #upload}'s order, shapes checked. */
    private float[][] hostArrays(int l, LayerWeights w) {
        int h = cfg.hidden(), inter = cfg.intermediate();
        String at = "layer " + l + " ";
        return new float[][] {host(at + "wq", w.wq(), h, h), host(at + "wk", w.wk(), h, h), host(at + "wv", w.wv(), h, h),
                host(at + "bq", w.bq(), h), host(at + "bk", w.bk(), h), host(at + "bv", w.bv(), h),
                host(at + "wo", w.wo(), h, h), host(at + "bo", w.bo(), h),
                host(at + "ln1Gamma", w.ln1Gamma(), h), host(at + "ln1Beta", w.ln1Beta(), h),
                host(at + "w1", w.w1(), inter, h), host(at + "b1", w.b1(), inter), host(at + "w2", w.w2(), h, inter), host(at + "b2", w.b2(), h),
                host(at + "ln2Gamma", w.ln2Gamma(), h), host(at + "ln2Beta", w.ln2Beta(), h)};
    }

    /** a: wq, wk, wv, bq, bk, bv, wo, bo, ln1 gamma, ln1 beta, w1, b1, w2, b2, ln2 gamma, ln2 beta (PyTorch layout, f32). */
    private DeviceLayer upload(int l, float[][] a) {
        int h = cfg.hidden(), nh = cfg.heads(), d = cfg.headDim(), dp = paddedHeadDim, inter = cfg.intermediate();
        float[][] qkv = {a[0], a[1], a[2]};
        float[][] qkvb = {a[3], a[4], a[5]};
        // fused, padded QKV: rows [which][head][dp], the last dp - d rows of each head zero
        float[] wqkv = new float[3 * nh * dp * h];
        float[] bqkv = new float[3 * nh * dp];
        for (int which = 0; which < 3; which++) {
            for (int head = 0; head < nh; head++) {
                for (int i = 0; i < d; i++) {
                    int src = head * d + i, dst = (which * nh + head) * dp + i;
                    System.arraycopy(qkv[which], src * h, wqkv, dst * h, h);
                    bqkv[dst] = qkvb[which][src];
                }
            }
        }
        // output projection [h, nh * dp]: zero columns for the padded v dims
        float[] wo = a[6];
        float[] wop = new float[h * nh * dp];
        for (int r = 0; r < h; r++) {
            for (int head = 0; head < nh; head++) System.arraycopy(wo, r * h + head * d, wop, r * nh * dp + head * dp, d);
        }
        // biases in the activations' dtype: an f32 bias with a bf16/f16 output costs cuBLASLt a
        // conversion launch per call
        return new DeviceLayer(
                dev(wqkv, dtype, 3L * nh * dp, h), dev(bqkv, dtype, 3L * nh * dp),
                dev(wop, dtype, h, (long) nh * dp), dev(a[7], dtype, h),
                dev(a[8], DType.F32, h), dev(a[9], DType.F32, h),
                dev(a[10], dtype, inter, h), dev(a[11], dtype, inter),
                dev(a[12], dtype, h, inter), dev(a[13], dtype, h),
                dev(a[14], DType.F32, h), dev(a[15], DType.F32, h));
    }

    private static float[] host(String what, Tensor t, long... shape) {
        Objects.requireNonNull(t, what);
        if (!java.util.Arrays.equals(t.shape(), shape) || !t.dtype().isFloat()) {
            throw new IllegalArgumentException(what + ": expected a float tensor " + java.util.Arrays.toString(shape) + ", got " + t);
        }
        return t.toFloatArray();
    }

    private DeviceTensor dev(float[] v, DType dt, long... shape) {
        try (Tensor t = Tensor.of(dt, v, shape)) {
            DeviceTensor d = ctx.upload(t);
            owned.add(d);
            return d;
        }
    }

    /**
     * Runs every layer over packed sequences.
     *
     * @param x          [T, hidden] of the encoder's dtype: the embeddings (after the embedding
     *                   LayerNorm); not modified
     * @param cuSeqlens  device [batch + 1] i32 prefix sums of the sequence lengths (0 .. T)
     * @param maxSeqlen  the longest sequence
     * @return a new [T, hidden] tensor of this context (close it)
     * @throws IllegalArgumentException on a shape, dtype or context mismatch
     */
    public DeviceTensor forward(DeviceTensor x, DeviceTensor cuSeqlens, int maxSeqlen) {
        return forward(x, cuSeqlens, maxSeqlen, null);
    }

    /** The op names of {@link #profile}, in layer order. */
    static final String[] OPS = {"qkv_gemm", "attention", "out_proj_gemm+residual", "layernorm1", "ffn1_gemm+gelu", "ffn2_gemm+residual", "layernorm2"};

    /**
     * GPU milliseconds of each op kind ({@link #OPS}) summed over the layers, for one forward
     * (CUDA events between the ops; for benchmarks).
     */
    double[] profile(DeviceTensor x, DeviceTensor cuSeqlens, int maxSeqlen) {
        List<CudaEvent> marks = new ArrayList<>();
        try {
            forward(x, cuSeqlens, maxSeqlen, marks).close();
            double[] ms = new double[OPS.length];
            for (int i = 0; i + 1 < marks.size(); i++) ms[i % OPS.length] += marks.get(i).elapsedMs(marks.get(i + 1));
            return ms;
        } finally {
            for (CudaEvent e : marks) e.close();
        }
    }

    private void mark(List<CudaEvent> marks) {
        if (marks == null) return;
        CudaEvent e = ctx.newEvent();
        marks.add(e);
        e.record();
    }

    private DeviceTensor forward(DeviceTensor x, DeviceTensor cuSeqlens, int maxSeqlen, List<CudaEvent> marks) {
        Objects.requireNonNull(x, "x");
        if (closed) throw new IllegalStateException("encoder is closed");
        if (x.context() != ctx) throw new IllegalArgumentException("forward: x " + x + " belongs to another CUDA context");
        if (x.ndim() != 2 || x.dim(1) != cfg.hidden() || x.dtype() != dtype) {
            throw new IllegalArgumentException("forward: x must be [T, " + cfg.hidden() + "] " + dtype + ", got " + x);
        }
        long t = x.dim(0);
        int nh = cfg.heads(), dp = paddedHeadDim;
        float scale = (float) (1 / Math.sqrt(cfg.headDim()));
        DeviceTensor h = ctx.allocate(dtype, t, cfg.hidden());
        try (DeviceTensor qkv = ctx.allocate(dtype, t, 3L * nh * dp); DeviceTensor attn = ctx.allocate(dtype, t, nh, dp);
             DeviceTensor inter = ctx.allocate(dtype, t, cfg.intermediate())) {
            h.copyFrom(x);
            DeviceTensor qkv4 = qkv.reshape(t, 3, nh, dp);
            DeviceTensor q = qkv4.select(1, 0), k = qkv4.select(1, 1), v = qkv4.select(1, 2);
            DeviceTensor attn2 = attn.reshape(t, (long) nh * dp);
            MatmulOptions residual = new MatmulOptions(true, Activation.NONE, 1f, 1f);
            mark(marks);
            for (DeviceLayer l : layers) {
                ctx.matmul(h, l.wqkv(), l.bqkv(), qkv, MatmulOptions.LINEAR);
                mark(marks);
                ctx.flashAttentionVarlen(q, k, v, attn, null, cuSeqlens, cuSeqlens, maxSeqlen, maxSeqlen, false, scale);
                mark(marks);
                ctx.matmul(attn2, l.wo(), l.bo(), h, residual);            // h += attn @ Wo^T + bo
                mark(marks);
                ctx.layerNorm(h, l.ln1g(), l.ln1b(), cfg.eps(), h);
                mark(marks);
                ctx.matmul(h, l.w1(), l.b1(), inter, MatmulOptions.LINEAR.withActivation(Activation.GELU_ERF));
                mark(marks);
                ctx.matmul(inter, l.w2(), l.b2(), h, residual);            // h += gelu(..) @ W2^T + b2
                mark(marks);
                ctx.layerNorm(h, l.ln2g(), l.ln2b(), cfg.eps(), h);
                mark(marks);
            }
            return h;
        } catch (RuntimeException e) {
            h.close();
            throw e;
        }
    }

    /** Returns the weights' device memory to the context. Idempotent. */
    @Override
    public void close() {
        closed = true;
        for (DeviceTensor d : owned) d.close();
        owned.clear();
        layers.clear();
    }
}
