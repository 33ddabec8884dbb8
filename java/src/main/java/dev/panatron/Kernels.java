package dev.panatron;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_matmul_params;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * The typed kernel façade: one static method per native op. Every method validates shapes,
 * dtypes and tensor state in Java before the downcall, so bad input is an
 * {@link IllegalArgumentException} (or {@link IllegalStateException} for a closed tensor or
 * context) naming what was wrong; a native failure is a {@link PanatronException}.
 * Outputs are written in place; unless a method says otherwise, an output may be the same
 * tensor as its input.
 */
public final class Kernels {
    private Kernels() {}

    // ================================================================ dense GEMM

    /** Options of {@link #matmul}: transpose of b, fused activation, alpha, beta. */
    public record MatmulOptions(boolean transB, Activation activation, float alpha, float beta) {
        public static final MatmulOptions DEFAULT = new MatmulOptions(false, Activation.NONE, 1f, 0f);
        /** b in PyTorch Linear layout [N, K]. */
        public static final MatmulOptions LINEAR = new MatmulOptions(true, Activation.NONE, 1f, 0f);

        public MatmulOptions {
            Objects.requireNonNull(activation, "activation");
        }

        public MatmulOptions withActivation(Activation a) { return new MatmulOptions(transB, a, alpha, beta); }
    }

    /** Activations fusable into matmul epilogues ({@code pt_activation}). */
    public enum Activation { NONE, RELU, GELU_ERF, GELU_TANH, SILU }

    /**
     * {@code c = act(alpha * a @ op(b) + bias + beta * c)}.
     *
     * @param a    [M, K] or [B, M, K], f32 or bf16
     * @param b    [K, N] ([N, K] when {@code transB}), or with a leading [B]; same dtype as a
     * @param bias [N] f32, or null
     * @param c    [M, N] or [B, M, N]; f32 (bf16 allowed when a is bf16)
     * @throws IllegalArgumentException on a shape or dtype mismatch, or a read-only c
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void matmul(Context ctx, Tensor a, Tensor b, Tensor bias, Tensor c, MatmulOptions opts) {
        Objects.requireNonNull(opts, "opts");
        requireOpen(ctx, a, b, c);
        if (bias != null) bias.checkOpen();
        requireDtype("matmul a", a, DType.F32, DType.BF16);
        requireDtype("matmul b", b, a.dtype());
        requireDtype("matmul c", c, a.dtype() == DType.F32 ? new DType[] {DType.F32} : new DType[] {DType.F32, DType.BF16});
        if (a.ndim() < 2 || a.ndim() > 3) throw shape("matmul: a must be 2-D or 3-D, got " + a);
        if (b.ndim() < 2 || b.ndim() > 3) throw shape("matmul: b must be 2-D or 3-D, got " + b);
        if (c.ndim() != a.ndim()) throw shape("matmul: c " + c + " must have the rank of a " + a);
        if (b.ndim() == 3 && (a.ndim() != 3 || b.dim(0) != a.dim(0))) throw shape("matmul: batched b " + b + " needs a with the same batch, got " + a);
        long m = a.dim(-2), k = a.dim(-1);
        long bk = opts.transB() ? b.dim(-1) : b.dim(-2), n = opts.transB() ? b.dim(-2) : b.dim(-1);
        if (bk != k) throw shape("matmul: inner dims differ: a " + a + " has K=" + k + ", b " + b + (opts.transB() ? " (transB)" : "") + " has K=" + bk);
        if (c.dim(-2) != m || c.dim(-1) != n || (a.ndim() == 3 && c.dim(0) != a.dim(0))) {
            throw shape("matmul: c " + c + " must be [" + (a.ndim() == 3 ? a.dim(0) + ", " : "") + m + ", " + n + "] for a " + a + " and b " + b);
        }
        if (bias != null) {
            requireDtype("matmul bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != n) throw shape("matmul: bias must be [" + n + "], got " + bias);
        }
        requireWritable("matmul c", c);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_matmul_params.allocate(tmp);
            pt_matmul_params.trans_b(p, opts.transB() ? 1 : 0);
            pt_matmul_params.activation(p, opts.activation().ordinal());
            pt_matmul_params.alpha(p, opts.alpha());
            pt_matmul_params.beta(p, opts.beta());
            Native.check(panatron_h.pt_matmul(ctx.handle(), a.descriptor(), b.descriptor(),
                    bias == null ? MemorySegment.NULL : bias.descriptor(), c.descriptor(), p));
        }
    }

    /** {@code c = a @ b}. */
    public static void matmul(Context ctx, Tensor a, Tensor b, Tensor c) {
        matmul(ctx, a, b, null, c, MatmulOptions.DEFAULT);
    }

    /** A Linear layer: {@code out = x @ weightᵀ + bias}, weight in PyTorch layout [N, K]. */
    public static void linear(Context ctx, Tensor x, Tensor weight, Tensor bias, Tensor out) {
        matmul(ctx, x, weight, bias, out, MatmulOptions.LINEAR);
    }

    // ================================================================ elementwise and norms
    // (see the section markers: each op family keeps its methods together)

    // ---- end elementwise ----

    // ================================================================ attention
    // (generated struct classes are spelled out in full here so that this section adds no
    // imports: other sections own the import list)

    /**
     * Flash attention for prefill and encoders: {@code out = softmax(scale * q kᵀ + mask) v}
     * per batch element and query head, tiled with an online softmax so the [Sq, Sk] score
     * matrix never exists (workspace bounded by the tile sizes).
     *
     * <p>Padded layout: {@code q [B, Sq, H, D]}, {@code k [B, Sk, Hkv, D]},
     * {@code v [B, Sk, Hkv, Dv]}, {@code out [B, Sq, H, Dv]} (what a QKV projection produces;
     * strided views are fine, the innermost dim must be contiguous). Packed variable-length
     * batch ({@link AttentionOptions#withCuSeqlens}): {@code q [Tq, H, D]}, {@code k [Tk, Hkv, D]},
     * {@code v [Tk, Hkv, Dv]}, {@code out [Tq, H, Dv]}, sequence b being rows cu[b] .. cu[b+1]-1.
     * q, k, v, out: f32 or bf16 (k and v share one dtype); computation in f32. GQA/MQA: Hkv
     * divides H. Head dims 1..256. Masks and positions: see {@link AttentionOptions}.
     *
     * @throws IllegalArgumentException on a shape, dtype or option mismatch (named in the
     *         message), cu_seqlens that are not 0-based, monotone and ending at the token count,
     *         a read-only or overlapping output
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void flashAttention(Context ctx, Tensor q, Tensor k, Tensor v, Tensor out, AttentionOptions opts) {
        final String op = "flashAttention";
        Objects.requireNonNull(opts, "opts");
        requireOpen(ctx, q, k, v, out);
        requireDtype(op + " q", q, DType.F32, DType.BF16);
        requireDtype(op + " k", k, DType.F32, DType.BF16);
        requireDtype(op + " v", v, k.dtype());
        requireDtype(op + " out", out, DType.F32, DType.BF16);
        boolean packed = opts.cuSeqlensQ() != null;
        if (!packed && opts.cuSeqlensK() != null) {
            throw new IllegalArgumentException(op + ": cuSeqlensK given without cuSeqlensQ (packed batches need cuSeqlensQ)");
        }
        if (opts.numSplits() != 0) throw new IllegalArgumentException(op + ": numSplits applies to flashAttentionDecode only");
        int nd = packed ? 3 : 4, s = packed ? 0 : 1;
        if (q.ndim() != nd || k.ndim() != nd || v.ndim() != nd || out.ndim() != nd) {
            throw shape(op + ": the " + (packed ? "packed (cuSeqlens) layout needs q [T, H, D], k [T, Hkv, D], v [T, Hkv, Dv], out [T, H, Dv]"
                    : "padded layout needs q [B, Sq, H, D], k [B, Sk, Hkv, D], v [B, Sk, Hkv, Dv], out [B, Sq, H, Dv]")
                    + "; got q " + q + ", k " + k + ", v " + v + ", out " + out);
        }
        long sq = q.dim(s), sk = k.dim(s), h = q.dim(s + 1), d = q.dim(s + 2), hkv = k.dim(s + 1), dv = v.dim(s + 2);
        if (k.dim(s + 2) != d) throw shape(op + ": q " + q + " and k " + k + " have different head dims (" + d + " vs " + k.dim(s + 2) + ")");
        if (v.dim(s) != sk || v.dim(s + 1) != hkv) throw shape(op + ": v " + v + " must match k " + k + " in " + (packed ? "tokens" : "sequence length") + " and kv heads");
        if (out.dim(s) != sq || out.dim(s + 1) != h || out.dim(s + 2) != dv) {
            throw shape(op + ": out " + out + " must be [" + (packed ? "" : "B, ") + sq + ", " + h + ", " + dv + "] for q " + q + " and v " + v);
        }
        long batch;
        if (packed) {
            Tensor cq = opts.cuSeqlensQ();
            cq.checkOpen();
            requireDtype(op + " cuSeqlensQ", cq, DType.I32);
            if (cq.ndim() != 1 || cq.dim(0) < 1) throw shape(op + ": cuSeqlensQ must be i32 [B+1], got " + cq);
            batch = cq.dim(0) - 1;
            checkCuSeqlens(op, "cuSeqlensQ", cq, batch, sq);
            Tensor ck = opts.cuSeqlensK() != null ? opts.cuSeqlensK() : cq;
            ck.checkOpen();
            requireDtype(op + " cuSeqlensK", ck, DType.I32);
            checkCuSeqlens(op, "cuSeqlensK", ck, batch, sk);
            if (opts.keyPaddingMask() != null) {
                throw new IllegalArgumentException(op + ": keyPaddingMask cannot be combined with cuSeqlens (packed batches have no padding)");
            }
        } else {
            batch = q.dim(0);
            if (k.dim(0) != batch || v.dim(0) != batch || out.dim(0) != batch) {
                throw shape(op + ": batch sizes differ: q " + q + ", k " + k + ", v " + v + ", out " + out);
            }
        }
        checkHeads(op, d, dv, h, hkv);
        Tensor mask = opts.keyPaddingMask();
        if (mask != null) {
            mask.checkOpen();
            requireDtype(op + " keyPaddingMask", mask, DType.U8, DType.I32, DType.I64);
            if (mask.ndim() != 2 || mask.dim(0) != batch || mask.dim(1) != sk) {
                throw shape(op + ": keyPaddingMask " + mask + " must be [B, Sk] = [" + batch + ", " + sk + "]");
            }
        }
        Tensor lse = opts.lse();
        if (lse != null) {
            lse.checkOpen();
            requireDtype(op + " lse", lse, DType.F32);
            boolean ok = packed ? lse.ndim() == 2 && lse.dim(0) == h && lse.dim(1) == sq
                    : lse.ndim() == 3 && lse.dim(0) == batch && lse.dim(1) == h && lse.dim(2) == sq;
            if (!ok) throw shape(op + ": lse " + lse + " must be " + (packed ? "[H, T] = [" + h + ", " + sq + "]" : "[B, H, Sq] = [" + batch + ", " + h + ", " + sq + "]"));
            requireWritable(op + " lse", lse);
            requireDisjoint(op, "lse", lse, q, k, v, out);
        }
        requireWritable(op + " out", out);
        requireDisjoint(op, "out", out, q, k, v);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = dev.panatron.ffm.pt_flash_attn_params.allocate(tmp);
            dev.panatron.ffm.pt_flash_attn_params.q(p, q.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.k(p, k.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.v(p, v.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.out(p, out.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.key_padding_mask(p, mask == null ? MemorySegment.NULL : mask.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.cu_seqlens_q(p, packed ? opts.cuSeqlensQ().descriptor() : MemorySegment.NULL);
            dev.panatron.ffm.pt_flash_attn_params.cu_seqlens_k(p, packed && opts.cuSeqlensK() != null ? opts.cuSeqlensK().descriptor() : MemorySegment.NULL);
            dev.panatron.ffm.pt_flash_attn_params.lse(p, lse == null ? MemorySegment.NULL : lse.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.scale(p, opts.scale());
            dev.panatron.ffm.pt_flash_attn_params.causal(p, opts.causal() ? 1 : 0);
            dev.panatron.ffm.pt_flash_attn_params.window_left(p, opts.windowLeft());
            dev.panatron.ffm.pt_flash_attn_params.window_right(p, opts.windowRight());
            Native.check(panatron_h.pt_flash_attn_fwd(ctx.handle(), p));
        }
    }

    /** Full (non-causal) attention with the default scale. */
    public static void flashAttention(Context ctx, Tensor q, Tensor k, Tensor v, Tensor out) {
        flashAttention(ctx, q, k, v, out, AttentionOptions.DEFAULT);
    }

    /**
     * Decode attention: a few new query tokens against a KV cache, the KV length split across
     * threads and the partial softmaxes merged by log-sum-exp (flash-decoding).
     *
     * <p>{@code q [B, Tq, H, D]}, {@code kCache [B, Hkv, S_max, D]}, {@code vCache [B, Hkv, S_max, Dv]}
     * (f32 or bf16, the layout of {@link KvCache}), {@code kvLens} i32 [B] with each value in
     * [0, S_max] or null (all S_max), {@code out [B, Tq, H, Dv]}, optional {@code lse [B, H, Tq]}.
     * Query t of sequence b sits at position kvLens[b] - Tq + t; {@code causal},
     * {@code windowLeft/Right}, {@code scale}, {@code lse} and {@code numSplits} apply;
     * masks and cuSeqlens do not.
     *
     * @throws IllegalArgumentException on a shape, dtype or option mismatch, a kvLens value out
     *         of range, a read-only or overlapping output
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void flashAttentionDecode(Context ctx, Tensor q, Tensor kCache, Tensor vCache, Tensor kvLens, Tensor out,
                                            AttentionOptions opts) {
        final String op = "flashAttentionDecode";
        Objects.requireNonNull(opts, "opts");
        requireOpen(ctx, q, kCache, vCache, out);
        requireDtype(op + " q", q, DType.F32, DType.BF16);
        requireDtype(op + " kCache", kCache, DType.F32, DType.BF16);
        requireDtype(op + " vCache", vCache, kCache.dtype());
        requireDtype(op + " out", out, DType.F32, DType.BF16);
        if (opts.keyPaddingMask() != null || opts.cuSeqlensQ() != null || opts.cuSeqlensK() != null) {
            throw new IllegalArgumentException(op + ": keyPaddingMask and cuSeqlens are prefill options (decode uses kvLens)");
        }
        if (q.ndim() != 4 || kCache.ndim() != 4 || vCache.ndim() != 4 || out.ndim() != 4) {
            throw shape(op + ": needs q [B, Tq, H, D], kCache [B, Hkv, S_max, D], vCache [B, Hkv, S_max, Dv], out [B, Tq, H, Dv]; got q "
                    + q + ", kCache " + kCache + ", vCache " + vCache + ", out " + out);
        }
        long batch = q.dim(0), tq = q.dim(1), h = q.dim(2), d = q.dim(3), hkv = kCache.dim(1), smax = kCache.dim(2), dv = vCache.dim(3);
        if (kCache.dim(0) != batch || vCache.dim(0) != batch || out.dim(0) != batch) {
            throw shape(op + ": batch sizes differ: q " + q + ", kCache " + kCache + ", vCache " + vCache + ", out " + out);
        }
        if (kCache.dim(3) != d) throw shape(op + ": q " + q + " and kCache " + kCache + " have different head dims");
        if (vCache.dim(1) != hkv || vCache.dim(2) != smax) throw shape(op + ": vCache " + vCache + " must match kCache " + kCache + " in kv heads and S_max");
        if (out.dim(1) != tq || out.dim(2) != h || out.dim(3) != dv) {
            throw shape(op + ": out " + out + " must be [B, Tq, H, Dv] = [" + batch + ", " + tq + ", " + h + ", " + dv + "]");
        }
        checkHeads(op, d, dv, h, hkv);
        if (kvLens != null) {
            kvLens.checkOpen();
            requireDtype(op + " kvLens", kvLens, DType.I32);
            if (kvLens.ndim() != 1 || kvLens.dim(0) != batch) throw shape(op + ": kvLens " + kvLens + " must be i32 [B] = [" + batch + "]");
            int[] lens = kvLens.toIntArray();
            for (int b = 0; b < lens.length; b++) {
                if (lens[b] < 0 || lens[b] > smax) {
                    throw new IllegalArgumentException(op + ": kvLens[" + b + "] = " + lens[b] + " outside [0, S_max = " + smax + "]");
                }
            }
        }
        Tensor lse = opts.lse();
        if (lse != null) {
            lse.checkOpen();
            requireDtype(op + " lse", lse, DType.F32);
            if (lse.ndim() != 3 || lse.dim(0) != batch || lse.dim(1) != h || lse.dim(2) != tq) {
                throw shape(op + ": lse " + lse + " must be [B, H, Tq] = [" + batch + ", " + h + ", " + tq + "]");
            }
            requireWritable(op + " lse", lse);
            requireDisjoint(op, "lse", lse, q, kCache, vCache, out);
        }
        requireWritable(op + " out", out);
        requireDisjoint(op, "out", out, q, kCache, vCache);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = dev.panatron.ffm.pt_flash_decode_params.allocate(tmp);
            dev.panatron.ffm.pt_flash_decode_params.q(p, q.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.k_cache(p, kCache.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.v_cache(p, vCache.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.kv_lens(p, kvLens == null ? MemorySegment.NULL : kvLens.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.out(p, out.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.lse(p, lse == null ? MemorySegment.NULL : lse.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.scale(p, opts.scale());
            dev.panatron.ffm.pt_flash_decode_params.causal(p, opts.causal() ? 1 : 0);
            dev.panatron.ffm.pt_flash_decode_params.window_left(p, opts.windowLeft());
            dev.panatron.ffm.pt_flash_decode_params.window_right(p, opts.windowRight());
            dev.panatron.ffm.pt_flash_decode_params.num_splits(p, opts.numSplits());
            Native.check(panatron_h.pt_flash_attn_decode(ctx.handle(), p));
        }
    }

    /**
     * Appends T tokens per sequence to a KV cache: {@code kCache[b, g, start[b] + t] = rope(kNew[b, t, g])},
     * {@code vCache[b, g, start[b] + t] = vNew[b, t, g]}.
     *
     * @param kNew   [B, T, Hkv, D] f32 or bf16, or null (with kCache null) to append values only
     * @param vNew   [B, T, Hkv, Dv] f32 or bf16, or null (with vCache null)
     * @param start  i32 [B]: the first cache row written per sequence; start[b] + T <= S_max
     * @param kCache [B, Hkv, S_max, D] f32 or bf16 (converted on the way in)
     * @param vCache [B, Hkv, S_max, Dv]
     * @param rope   rotary embedding applied to K at position start[b] + t, or null
     * @throws IllegalArgumentException on a shape or dtype mismatch, a start out of range, a
     *         read-only cache
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void kvCacheAppend(Context ctx, Tensor kNew, Tensor vNew, Tensor start, Tensor kCache, Tensor vCache, KvCache.Rope rope) {
        final String op = "kvCacheAppend";
        requireOpen(ctx, start);
        if ((kNew == null) != (kCache == null)) throw new IllegalArgumentException(op + ": kNew and kCache must both be given or both be null");
        if ((vNew == null) != (vCache == null)) throw new IllegalArgumentException(op + ": vNew and vCache must both be given or both be null");
        if (kNew == null && vNew == null) throw new IllegalArgumentException(op + ": neither kNew nor vNew given");
        long batch = -1, t = -1, hkv = -1, smax = -1;
        for (int w = 0; w < 2; w++) {
            Tensor nw = w == 0 ? kNew : vNew, c = w == 0 ? kCache : vCache;
            String nn = w == 0 ? "kNew" : "vNew", cn = w == 0 ? "kCache" : "vCache";
            if (nw == null) continue;
            requireOpen(ctx, nw, c);
            requireDtype(op + " " + nn, nw, DType.F32, DType.BF16);
            requireDtype(op + " " + cn, c, DType.F32, DType.BF16);
            if (nw.ndim() != 4 || c.ndim() != 4) throw shape(op + ": " + nn + " " + nw + " must be [B, T, Hkv, D] and " + cn + " " + c + " [B, Hkv, S_max, D]");
            if (c.dim(0) != nw.dim(0) || c.dim(1) != nw.dim(2) || c.dim(3) != nw.dim(3)) {
                throw shape(op + ": " + cn + " " + c + " does not fit " + nn + " " + nw + " (expected [" + nw.dim(0) + ", " + nw.dim(2) + ", S_max, " + nw.dim(3) + "])");
            }
            if (batch >= 0 && (nw.dim(0) != batch || nw.dim(1) != t || nw.dim(2) != hkv)) {
                throw shape(op + ": kNew " + kNew + " and vNew " + vNew + " differ in B, T or Hkv");
            }
            if (smax >= 0 && c.dim(2) != smax) throw shape(op + ": kCache " + kCache + " and vCache " + vCache + " differ in S_max");
            batch = nw.dim(0); t = nw.dim(1); hkv = nw.dim(2); smax = c.dim(2);
            requireWritable(op + " " + cn, c);
            requireDisjoint(op, cn, c, nw);
        }
        requireDtype(op + " start", start, DType.I32);
        if (start.ndim() != 1 || start.dim(0) != batch) throw shape(op + ": start " + start + " must be i32 [B] = [" + batch + "]");
        int[] st = start.toIntArray();
        for (int b = 0; b < st.length; b++) {
            if (st[b] < 0 || st[b] + t > smax) {
                throw new IllegalArgumentException(op + ": start[" + b + "] = " + st[b] + " with T = " + t + " new tokens does not fit S_max = " + smax);
            }
        }
        if (rope != null && kNew != null) {
            long rd = rope.rotaryDim() == 0 ? kNew.dim(3) : rope.rotaryDim();
            if (rd > kNew.dim(3)) throw new IllegalArgumentException(op + ": rope rotaryDim " + rd + " exceeds the head dim " + kNew.dim(3));
            if (rope.invFreq() != null && rope.invFreq().length < rd / 2) {
                throw new IllegalArgumentException(op + ": rope invFreq has " + rope.invFreq().length + " entries, needs rotaryDim/2 = " + rd / 2);
            }
        }
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment rp = MemorySegment.NULL;
            if (rope != null) {
                rp = dev.panatron.ffm.pt_rope_params.allocate(tmp);
                dev.panatron.ffm.pt_rope_params.mode(rp, rope.mode().ordinal());
                dev.panatron.ffm.pt_rope_params.rotary_dim(rp, rope.rotaryDim());
                dev.panatron.ffm.pt_rope_params.theta(rp, rope.theta());
                dev.panatron.ffm.pt_rope_params.freq_scale(rp, rope.freqScale());
                dev.panatron.ffm.pt_rope_params.inv_freq(rp, rope.invFreq() == null ? MemorySegment.NULL : tmp.allocateFrom(java.lang.foreign.ValueLayout.JAVA_FLOAT, rope.invFreq()));
            }
            Native.check(panatron_h.pt_kv_cache_append(ctx.handle(), kNew == null ? MemorySegment.NULL : kNew.descriptor(),
                    vNew == null ? MemorySegment.NULL : vNew.descriptor(), start.descriptor(),
                    kCache == null ? MemorySegment.NULL : kCache.descriptor(), vCache == null ? MemorySegment.NULL : vCache.descriptor(), rp));
        }
    }

    private static void checkHeads(String op, long d, long dv, long h, long hkv) {
        if (d < 1 || d > 256) throw shape(op + ": head dim D = " + d + " outside 1..256");
        if (dv < 1 || dv > 256) throw shape(op + ": value head dim Dv = " + dv + " outside 1..256");
        if (hkv < 1 && h > 0) throw shape(op + ": " + h + " query heads but no kv heads");
        if (hkv > 0 && h % hkv != 0) {
            throw shape(op + ": query heads H = " + h + " not a multiple of kv heads Hkv = " + hkv + " (GQA/MQA need Hkv | H)");
        }
    }

    private static void checkCuSeqlens(String op, String name, Tensor cu, long batch, long tokens) {
        if (cu.ndim() != 1 || cu.dim(0) != batch + 1) throw shape(op + ": " + name + " " + cu + " must be i32 [B+1] = [" + (batch + 1) + "]");
        int[] c = cu.toIntArray();
        if (c[0] != 0) throw new IllegalArgumentException(op + ": " + name + "[0] = " + c[0] + ", must be 0");
        for (int b = 0; b < batch; b++) {
            if (c[b + 1] < c[b]) {
                throw new IllegalArgumentException(op + ": " + name + " is not monotone: [" + b + "] = " + c[b] + " > [" + (b + 1) + "] = " + c[b + 1]);
            }
        }
        if (c[(int) batch] != tokens) {
            throw new IllegalArgumentException(op + ": " + name + "[" + batch + "] = " + c[(int) batch] + " must equal the token count " + tokens);
        }
    }

    /** Throws when {@code out}'s memory overlaps any of {@code ins}. */
    private static void requireDisjoint(String op, String outName, Tensor out, Tensor... ins) {
        MemorySegment o = out.segment();
        if (o.byteSize() == 0) return;
        for (Tensor in : ins) {
            MemorySegment i = in.segment();
            if (i.byteSize() == 0) continue;
            if (o.address() < i.address() + i.byteSize() && i.address() < o.address() + o.byteSize()) {
                throw new IllegalArgumentException(op + ": " + outName + " " + out + " overlaps input " + in + " in memory (outputs must not alias inputs)");
            }
        }
    }

    // ---- end attention ----

    // ================================================================ validation helpers

    static void requireOpen(Context ctx, Tensor... ts) {
        Objects.requireNonNull(ctx, "context");
        ctx.handle();
        for (Tensor t : ts) {
            Objects.requireNonNull(t, "tensor");
            t.checkOpen();
        }
    }

    static void requireDtype(String what, Tensor t, DType... allowed) {
        for (DType d : allowed) if (t.dtype() == d) return;
        throw new IllegalArgumentException(what + ": dtype " + t.dtype() + " not supported (expected " + Arrays.toString(allowed) + ")");
    }

    static void requireSameShape(String what, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) throw shape(what + ": shapes differ: " + a + " vs " + b);
    }

    static void requireWritable(String what, Tensor t) {
        if (t.segment().isReadOnly()) throw new IllegalArgumentException(what + ": output tensor " + t + " is read-only");
    }

    static IllegalArgumentException shape(String msg) { return new IllegalArgumentException(msg); }
}
