package dev.panatron;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A KV cache in the layout decode streams: keys {@code [B, Hkv, S_max, D]} and values
 * {@code [B, Hkv, S_max, Dv]}, plus the current length of each sequence (kept both in Java and
 * in an i32 [B] tensor handed to the kernels). It owns its memory: {@link #close()} frees it
 * (twice is harmless); a closed cache throws {@link IllegalStateException}.
 *
 * <p>Typical decoder step: {@link #append} the new tokens' K/V (RoPE applied to K on the way
 * in), then {@link #attend} with the new queries. Neither allocates on the Java heap beyond the
 * call's parameter block.
 */
public final class KvCache implements AutoCloseable {
    /** Rotary embedding applied to K on append ({@code pt_rope_params}). */
    public record Rope(Mode mode, int rotaryDim, float theta, float freqScale, float[] invFreq) {
        /** Which elements form the rotated pairs. */
        public enum Mode {
            /** (x[i], x[i + d/2]): Llama, GPT-NeoX, the HF default */
            NEOX,
            /** (x[2i], x[2i+1]): GPT-J */
            GPTJ
        }

        /**
         * @throws IllegalArgumentException for a negative or odd rotaryDim, a theta that is not
         *                                  > 0 without invFreq, or a non-finite freqScale
         */
        public Rope {
            Objects.requireNonNull(mode, "mode");
            if (rotaryDim < 0 || rotaryDim % 2 != 0) {
                throw new IllegalArgumentException("rotaryDim " + rotaryDim + " must be even and >= 0 (0 = the head dim)");
            }
            if (invFreq == null && !(theta > 0f)) throw new IllegalArgumentException("theta " + theta + " must be > 0");
            if (!Float.isFinite(freqScale)) throw new IllegalArgumentException("freqScale " + freqScale + " is not finite");
            if (invFreq != null) invFreq = invFreq.clone();
        }

        /** The usual Llama rotation: NEOX pairs over the whole head, base {@code theta}. */
        public static Rope neox(float theta) { return new Rope(Mode.NEOX, 0, theta, 0f, null); }
    }

    private final Tensor keys;
    private final Tensor values;
    private final Tensor lengthsTensor;
    private final int[] lengths;
    private volatile boolean closed;

    private KvCache(Tensor keys, Tensor values, Tensor lengthsTensor) {
        this.keys = keys;
        this.values = values;
        this.lengthsTensor = lengthsTensor;
        this.lengths = new int[Math.toIntExact(keys.dim(0))];
    }

    /**
     * Allocates a zeroed cache.
     *
     * @throws IllegalArgumentException for a dtype other than f32/bf16, non-positive sizes or a
     *                                  head dim outside 1..256
     */
    public static KvCache allocate(DType dtype, int batch, int kvHeads, int maxSeq, int headDim, int valueDim) {
        Objects.requireNonNull(dtype, "dtype");
        if (dtype != DType.F32 && dtype != DType.BF16) throw new IllegalArgumentException("KV cache dtype " + dtype + " must be F32 or BF16");
        if (batch < 1 || kvHeads < 1 || maxSeq < 1) {
            throw new IllegalArgumentException("batch " + batch + ", kvHeads " + kvHeads + ", maxSeq " + maxSeq + " must all be >= 1");
        }
        if (headDim < 1 || headDim > 256 || valueDim < 1 || valueDim > 256) {
            throw new IllegalArgumentException("head dims " + headDim + "/" + valueDim + " must be in 1..256");
        }
        Tensor k = Tensor.allocate(dtype, batch, kvHeads, maxSeq, headDim);
        Tensor v = null;
        try {
            v = Tensor.allocate(dtype, batch, kvHeads, maxSeq, valueDim);
            return new KvCache(k, v, Tensor.allocate(DType.I32, batch));
        } catch (RuntimeException | Error e) {
            k.close();
            if (v != null) v.close();
            throw e;
        }
    }

    /** {@link #allocate(DType, int, int, int, int, int)} with Dv = D. */
    public static KvCache allocate(DType dtype, int batch, int kvHeads, int maxSeq, int headDim) {
        return allocate(dtype, batch, kvHeads, maxSeq, headDim, headDim);
    }

    /** Keys [B, Hkv, S_max, D]. */
    public Tensor keys() { checkOpen(); return keys; }

    /** Values [B, Hkv, S_max, Dv]. */
    public Tensor values() { checkOpen(); return values; }

    /** The lengths as the i32 [B] tensor the kernels read. */
    public Tensor lengthsTensor() { checkOpen(); return lengthsTensor; }

    /** Valid rows of sequence {@code b}. */
    public int length(int b) { checkOpen(); return lengths[b]; }

    public int batch() { return lengths.length; }

    public int maxSeq() { return Math.toIntExact(keys.dim(2)); }

    /** Forgets every row (lengths back to 0; the memory is kept). */
    public void reset() {
        checkOpen();
        Arrays.fill(lengths, 0);
        lengthsTensor.segment().fill((byte) 0);
    }

    /**
     * Appends T tokens to every sequence at its current length: {@code kNew [B, T, Hkv, D]},
     * {@code vNew [B, T, Hkv, Dv]} (f32 or bf16), then advances the lengths by T.
     *
     * @param rope applied to K at positions length(b) .. length(b)+T-1, or null
     * @throws IllegalArgumentException when the shapes do not fit or a sequence would pass S_max
     * @throws IllegalStateException    when the cache, a tensor or the context is closed
     */
    public void append(Context ctx, Tensor kNew, Tensor vNew, Rope rope) {
        checkOpen();
        Kernels.kvCacheAppend(ctx, kNew, vNew, lengthsTensor, keys, values, rope);
        long t = kNew.dim(1);
        for (int b = 0; b < lengths.length; b++) lengths[b] += (int) t;
        MemorySegment seg = lengthsTensor.segment();
        for (int b = 0; b < lengths.length; b++) seg.setAtIndex(ValueLayout.JAVA_INT, b, lengths[b]); // no heap-segment wrapper
    }

    /**
     * Decode attention of {@code q [B, Tq, H, D]} against the cache: {@code out [B, Tq, H, Dv]}.
     * The new tokens must already be appended (query t sits at position length - Tq + t).
     *
     * @throws IllegalArgumentException when the shapes do not fit (see {@link Kernels#flashAttentionDecode})
     * @throws IllegalStateException    when the cache, a tensor or the context is closed
     */
    public void attend(Context ctx, Tensor q, Tensor out, AttentionOptions opts) {
        checkOpen();
        Kernels.flashAttentionDecode(ctx, q, keys, values, lengthsTensor, out, opts);
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("KV cache is closed");
    }

    @Override
    public void close() {
        if (closed) return;
        synchronized (this) {
            if (closed) return;
            closed = true;
            keys.close();
            values.close();
            lengthsTensor.close();
        }
    }
}
