package dev.panatron;

/**
 * Options of {@link Kernels#flashAttention} and {@link Kernels#flashAttentionDecode}
 * ({@code pt_flash_attn_params} / {@code pt_flash_decode_params}). Immutable; start from
 * {@link #DEFAULT} or {@link #CAUSAL} and use the {@code with...} methods.
 *
 * <p>Query row {@code i} of a sequence with {@code sq} queries and {@code sk} keys sits at
 * position {@code p(i) = i + sk - sq} (the queries are the last tokens of the sequence), and
 * key {@code j} is visible to it when {@code j <= p(i)} (causal), {@code j >= p(i) - windowLeft}
 * (when {@code windowLeft >= 0}), {@code j <= p(i) + windowRight} (when {@code windowRight >= 0})
 * and the key-padding mask (if any) is nonzero at {@code j}. A row that sees no key gets zeros
 * (and {@code -inf} in {@code lse}).
 *
 * @param causal         key j visible to row i only when j <= p(i)
 * @param scale          softmax scale; 0 means {@code 1/sqrt(D)}; otherwise any finite value
 * @param windowLeft     {@link #UNBOUNDED} or >= 0
 * @param windowRight    {@link #UNBOUNDED} or >= 0
 * @param keyPaddingMask [B, Sk] u8, i32 or i64, nonzero = attend (the HF attention_mask);
 *                       prefill with the padded layout only; may be null
 * @param cuSeqlensQ     [B+1] i32 cumulative query offsets of a packed batch (prefill only);
 *                       null: padded layout
 * @param cuSeqlensK     [B+1] i32 cumulative key offsets; null: same as {@code cuSeqlensQ}
 * @param lse            optional f32 output of the per-row natural-log sum of exp:
 *                       [B, H, Sq] (padded or decode [B, H, Tq]) or [H, T] (packed); may be null
 * @param numSplits      decode only: 0 = automatic, n > 0 = split each head's KV length into
 *                       n chunks
 */
public record AttentionOptions(boolean causal, float scale, int windowLeft, int windowRight, Tensor keyPaddingMask,
                               Tensor cuSeqlensQ, Tensor cuSeqlensK, Tensor lse, int numSplits) {
    /** A window side without a bound. */
    public static final int UNBOUNDED = -1;

    /** Full (bidirectional) attention, default scale, no window, mask or packing. */
    public static final AttentionOptions DEFAULT = new AttentionOptions(false, 0f, UNBOUNDED, UNBOUNDED, null, null, null, null, 0);

    /** Causal attention (decoders). */
    public static final AttentionOptions CAUSAL = DEFAULT.withCausal(true);

    /**
     * @throws IllegalArgumentException for a window side below -1, a non-finite scale, or a
     *                                  negative {@code numSplits}
     */
    public AttentionOptions {
        if (windowLeft < UNBOUNDED) {
            throw new IllegalArgumentException("windowLeft " + windowLeft + " must be >= 0, or UNBOUNDED (-1)");
        }
        if (windowRight < UNBOUNDED) {
            throw new IllegalArgumentException("windowRight " + windowRight + " must be >= 0, or UNBOUNDED (-1)");
        }
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale " + scale + " is not finite");
        if (numSplits < 0) throw new IllegalArgumentException("numSplits " + numSplits + " must be >= 0 (0 = automatic)");
    }

    public AttentionOptions withCausal(boolean c) {
        return new AttentionOptions(c, scale, windowLeft, windowRight, keyPaddingMask, cuSeqlensQ, cuSeqlensK, lse, numSplits);
    }

    /** @param s the softmax scale; 0 restores {@code 1/sqrt(D)} */
    public AttentionOptions withScale(float s) {
        return new AttentionOptions(causal, s, windowLeft, windowRight, keyPaddingMask, cuSeqlensQ, cuSeqlensK, lse, numSplits);
    }

    /** Keys j with p(i) - left <= j <= p(i) + right; either side may be {@link #UNBOUNDED}. */
    public AttentionOptions withWindow(int left, int right) {
        return new AttentionOptions(causal, scale, left, right, keyPaddingMask, cuSeqlensQ, cuSeqlensK, lse, numSplits);
    }

    /**
     * A Mistral-style sliding window: causal, each query sees itself and the {@code w - 1}
     * tokens before it.
     *
     * @throws IllegalArgumentException when {@code w < 1}
     */
    public AttentionOptions withSlidingWindow(int w) {
        if (w < 1) throw new IllegalArgumentException("sliding window " + w + " must be >= 1 token");
        return withCausal(true).withWindow(w - 1, UNBOUNDED);
    }

    public AttentionOptions withKeyPaddingMask(Tensor mask) {
        return new AttentionOptions(causal, scale, windowLeft, windowRight, mask, cuSeqlensQ, cuSeqlensK, lse, numSplits);
    }

    /** A packed variable-length batch; {@code k} may be null (self-attention: same offsets). */
    public AttentionOptions withCuSeqlens(Tensor q, Tensor k) {
        return new AttentionOptions(causal, scale, windowLeft, windowRight, keyPaddingMask, q, k, lse, numSplits);
    }

    public AttentionOptions withLse(Tensor l) {
        return new AttentionOptions(causal, scale, windowLeft, windowRight, keyPaddingMask, cuSeqlensQ, cuSeqlensK, l, numSplits);
    }

    public AttentionOptions withNumSplits(int n) {
        return new AttentionOptions(causal, scale, windowLeft, windowRight, keyPaddingMask, cuSeqlensQ, cuSeqlensK, lse, n);
    }
}
