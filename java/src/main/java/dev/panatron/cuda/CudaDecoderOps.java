package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.ffm.panatron_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * The decoder ops of the CUDA backend besides GEMMs and attention (native section "CUDA: decoder
 * ops" of panatron.h): embedding gather, residual add fused with LayerNorm/RMSNorm, RoPE + KV-cache
 * append, SwiGLU, greedy argmax, and {@link Graph CUDA graphs} of a decode step. Layout: residual
 * stream f32, GEMM inputs bf16, KV caches {@code [B, Hkv, S_max, D]} bf16. Every op validates in
 * Java first (dtype, rank, shapes, context) and is enqueued on the context's stream.
 */
public final class CudaDecoderOps {
    private CudaDecoderOps() {}

    /**
     * {@code out[t] = table[ids[t]] (+ posTable[pos[t]])} in f32; an id or position out of range
     * gives a NaN row (the GPU cannot throw).
     *
     * @param table    [V, H] bf16 or f32, contiguous
     * @param ids      [T] i32
     * @param posTable [P, H] table's dtype, or null (then pos is null)
     * @param pos      [T] i32, or null
     * @param out      [T, H] f32
     * @throws IllegalArgumentException on a dtype, shape or context mismatch
     */
    public static void embedding(CudaContext ctx, DeviceTensor table, DeviceTensor ids, DeviceTensor posTable, DeviceTensor pos,
                                 DeviceTensor out) {
        mine(ctx, "embedding table", table, 2, DType.BF16, DType.F32);
        mine(ctx, "embedding ids", ids, 1, DType.I32);
        mine(ctx, "embedding out", out, 2, DType.F32);
        if ((posTable == null) != (pos == null)) throw new IllegalArgumentException("embedding: posTable and pos must be given together");
        if (posTable != null) {
            mine(ctx, "embedding posTable", posTable, 2, table.dtype());
            mine(ctx, "embedding pos", pos, 1, DType.I32);
            if (posTable.dim(1) != table.dim(1) || pos.dim(0) != ids.dim(0)) {
                throw new IllegalArgumentException("embedding: posTable " + posTable + " must be [P, " + table.dim(1) + "] and pos " + pos + " [" + ids.dim(0) + "]");
            }
        }
        if (out.dim(0) != ids.dim(0) || out.dim(1) != table.dim(1)) {
            throw new IllegalArgumentException("embedding: out " + out + " must be [" + ids.dim(0) + ", " + table.dim(1) + "] for ids " + ids + " and table " + table);
        }
        CudaLibrary.check(panatron_h.pt_cuda_embedding(ctx.handle(), table.descriptor(), ids.descriptor(), desc(posTable), desc(pos), out.descriptor()));
    }

    /**
     * {@code x += delta} (when delta is given), then {@code out = norm(x) * gamma (+ beta)}.
     *
     * @param x     [R, H] f32, contiguous, updated in place
     * @param delta [R, H] bf16, or null
     * @param gamma [H] f32
     * @param beta  [H] f32 or null (LayerNorm only)
     * @param rms   RMSNorm instead of LayerNorm
     * @param eps   finite, >= 0
     * @param out   [R, H] bf16 or f32, not overlapping x
     * @throws IllegalArgumentException on a dtype, shape or context mismatch, or a bad eps
     */
    public static void addNorm(CudaContext ctx, DeviceTensor x, DeviceTensor delta, DeviceTensor gamma, DeviceTensor beta, boolean rms,
                               float eps, DeviceTensor out) {
        mine(ctx, "addNorm x", x, 2, DType.F32);
        mine(ctx, "addNorm gamma", gamma, 1, DType.F32);
        mine(ctx, "addNorm out", out, 2, DType.BF16, DType.F32);
        if (delta != null) {
            mine(ctx, "addNorm delta", delta, 2, DType.BF16);
            if (!Arrays.equals(delta.shape(), x.shape())) throw new IllegalArgumentException("addNorm: delta " + delta + " must have the shape of x " + x);
        }
        if (beta != null) {
            mine(ctx, "addNorm beta", beta, 1, DType.F32);
            if (rms) throw new IllegalArgumentException("addNorm: RMSNorm takes no beta");
            if (beta.dim(0) != x.dim(1)) throw new IllegalArgumentException("addNorm: beta " + beta + " must be [" + x.dim(1) + "]");
        }
        if (!Arrays.equals(out.shape(), x.shape()) || gamma.dim(0) != x.dim(1)) {
            throw new IllegalArgumentException("addNorm: out " + out + " must have the shape of x " + x + " and gamma " + gamma + " be [" + x.dim(1) + "]");
        }
        if (!(eps >= 0) || Float.isInfinite(eps)) throw new IllegalArgumentException("addNorm: eps " + eps + " must be finite and >= 0");
        CudaLibrary.check(panatron_h.pt_cuda_add_norm(ctx.handle(), x.descriptor(), desc(delta), gamma.descriptor(), desc(beta), rms ? 1 : 0, eps,
                out.descriptor()));
    }

    /**
     * RoPE (NeoX / HF rotate_half layout) and KV-cache append for T rows of a fused
     * {@code [q | k | v]} projection; row t belongs to sequence {@code t / (T / B)}. q is rotated
     * in place; k (rotated) and v are written at row {@code pos[t]} of the caches; {@code
     * seqlens[b] = max(seqlens[b], pos[t] + 1)}. Positions outside the cache are not written.
     *
     * @param qkv     [T, (qHeads + 2 Hkv) D] bf16, innermost contiguous
     * @param pos     [T] i32
     * @param invFreq [D/2] f32, or null (no rotation)
     * @param kCache  [B, Hkv, S_max, D] bf16
     * @param vCache  like kCache
     * @param seqlens [B] i32, or null
     * @throws IllegalArgumentException on a dtype, shape or context mismatch
     */
    public static void ropeKvAppend(CudaContext ctx, DeviceTensor qkv, DeviceTensor pos, DeviceTensor invFreq, int qHeads, DeviceTensor kCache,
                                    DeviceTensor vCache, DeviceTensor seqlens) {
        mine(ctx, "ropeKvAppend qkv", qkv, 2, DType.BF16);
        mine(ctx, "ropeKvAppend pos", pos, 1, DType.I32);
        mine(ctx, "ropeKvAppend kCache", kCache, 4, DType.BF16);
        mine(ctx, "ropeKvAppend vCache", vCache, 4, DType.BF16);
        long t = qkv.dim(0), b = kCache.dim(0), hkv = kCache.dim(1), d = kCache.dim(3);
        if (!Arrays.equals(vCache.shape(), kCache.shape())) throw new IllegalArgumentException("ropeKvAppend: vCache " + vCache + " must have the shape of kCache " + kCache);
        if (qHeads < 1 || qHeads % hkv != 0 || qkv.dim(1) != (qHeads + 2 * hkv) * d || pos.dim(0) != t || t % b != 0) {
            throw new IllegalArgumentException("ropeKvAppend: qkv " + qkv + " must be [T, (" + qHeads + " + 2*" + hkv + ")*" + d + "] with T a multiple of "
                    + b + ", pos " + pos + " [T], qHeads a multiple of Hkv (kCache " + kCache + ")");
        }
        if (invFreq != null) {
            mine(ctx, "ropeKvAppend invFreq", invFreq, 1, DType.F32);
            if (invFreq.dim(0) != d / 2) throw new IllegalArgumentException("ropeKvAppend: invFreq " + invFreq + " must be [" + d / 2 + "]");
        }
        if (seqlens != null) {
            mine(ctx, "ropeKvAppend seqlens", seqlens, 1, DType.I32);
            if (seqlens.dim(0) != b) throw new IllegalArgumentException("ropeKvAppend: seqlens " + seqlens + " must be [" + b + "]");
        }
        CudaLibrary.check(panatron_h.pt_cuda_rope_kv_append(ctx.handle(), qkv.descriptor(), pos.descriptor(), desc(invFreq), qHeads,
                kCache.descriptor(), vCache.descriptor(), desc(seqlens)));
    }

    /**
     * {@link #ropeKvAppend} into a paged cache (the layout {@link CudaContext#flashDecodePaged}
     * reads): row {@code pos[t]} of sequence b goes to row {@code pos[t] % blockSize} of block
     * {@code blockTable[b, pos[t] / blockSize]}. A position past the table's capacity, or whose
     * block id is outside the pool, is not written and does not raise seqlens.
     *
     * @param qkv        [T, (qHeads + 2 Hkv) D] bf16, innermost contiguous; T a multiple of B
     * @param pos        [T] i32
     * @param invFreq    [D/2] f32, or null (no rotation)
     * @param kPool      [numBlocks, Hkv, blockSize, D] bf16; blockSize a power of two in 1..4096
     * @param vPool      like kPool
     * @param blockTable [B, maxBlocks] i32, innermost contiguous
     * @param seqlens    [B] i32, or null
     * @throws IllegalArgumentException on a dtype, shape, block size or context mismatch
     */
    public static void ropeKvAppendPaged(CudaContext ctx, DeviceTensor qkv, DeviceTensor pos, DeviceTensor invFreq, int qHeads, DeviceTensor kPool,
                                         DeviceTensor vPool, DeviceTensor blockTable, DeviceTensor seqlens) {
        String fn = "ropeKvAppendPaged";
        mine(ctx, fn + " qkv", qkv, 2, DType.BF16);
        mine(ctx, fn + " pos", pos, 1, DType.I32);
        mine(ctx, fn + " kPool", kPool, 4, DType.BF16);
        mine(ctx, fn + " vPool", vPool, 4, DType.BF16);
        mine(ctx, fn + " blockTable", blockTable, 2, DType.I32);
        long t = qkv.dim(0), b = blockTable.dim(0), hkv = kPool.dim(1), bs = kPool.dim(2), d = kPool.dim(3);
        if (!Arrays.equals(vPool.shape(), kPool.shape())) throw new IllegalArgumentException(fn + ": vPool " + vPool + " must have the shape of kPool " + kPool);
        if (bs < 1 || bs > 4096 || Long.bitCount(bs) != 1) {
            throw new IllegalArgumentException(fn + ": block size " + bs + " (dim 2 of kPool " + kPool + ") must be a power of two in 1..4096");
        }
        if (blockTable.dim(1) < 1 || blockTable.dim(1) * bs > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException(fn + ": blockTable " + blockTable + ": maxBlocks x blockSize " + bs + " must be in 1 .. 2^30 positions");
        }
        if (qHeads < 1 || qHeads % hkv != 0 || qkv.dim(1) != (qHeads + 2 * hkv) * d || pos.dim(0) != t || b < 1 || t % b != 0) {
            throw new IllegalArgumentException(fn + ": qkv " + qkv + " must be [T, (" + qHeads + " + 2*" + hkv + ")*" + d + "] with T a multiple of the "
                    + b + " rows of blockTable " + blockTable + ", pos " + pos + " [T], qHeads a multiple of Hkv (kPool " + kPool + ")");
        }
        if (d < 2 || d % 2 != 0 || d > 1024) throw new IllegalArgumentException(fn + ": head dim " + d + " of kPool " + kPool + " must be even, 2..1024");
        if (blockTable.strides()[1] != 4 && blockTable.dim(1) > 1) {
            throw new IllegalArgumentException(fn + ": blockTable " + blockTable + " must be innermost contiguous");
        }
        if (invFreq != null) {
            mine(ctx, fn + " invFreq", invFreq, 1, DType.F32);
            if (invFreq.dim(0) != d / 2) throw new IllegalArgumentException(fn + ": invFreq " + invFreq + " must be [" + d / 2 + "]");
        }
        if (seqlens != null) {
            mine(ctx, fn + " seqlens", seqlens, 1, DType.I32);
            if (seqlens.dim(0) != b) throw new IllegalArgumentException(fn + ": seqlens " + seqlens + " must be [" + b + "], the rows of blockTable");
        }
        CudaLibrary.check(panatron_h.pt_cuda_rope_kv_append_paged(ctx.handle(), qkv.descriptor(), pos.descriptor(), desc(invFreq), qHeads,
                kPool.descriptor(), vPool.descriptor(), blockTable.descriptor(), desc(seqlens)));
    }

    /**
     * {@code out[t, j] = silu(gateUp[t, j]) * gateUp[t, I + j]}.
     *
     * @param gateUp [T, 2I] bf16
     * @param out    [T, I] bf16
     * @throws IllegalArgumentException on a dtype, shape or context mismatch
     */
    public static void swiglu(CudaContext ctx, DeviceTensor gateUp, DeviceTensor out) {
        mine(ctx, "swiglu gateUp", gateUp, 2, DType.BF16);
        mine(ctx, "swiglu out", out, 2, DType.BF16);
        if (out.dim(0) != gateUp.dim(0) || gateUp.dim(1) != 2 * out.dim(1)) {
            throw new IllegalArgumentException("swiglu: gateUp " + gateUp + " must be [T, 2I] for out " + out + " [T, I]");
        }
        CudaLibrary.check(panatron_h.pt_cuda_swiglu(ctx.handle(), gateUp.descriptor(), out.descriptor()));
    }

    /**
     * Greedy choice on the device: {@code ids[b]} = the first index of the largest logit of row b;
     * when pos is given, {@code pos[b] += 1}.
     *
     * @param logits [B, V] f32, innermost contiguous
     * @param ids    [B] i32
     * @param pos    [B] i32, or null
     * @throws IllegalArgumentException on a dtype, shape or context mismatch
     */
    public static void argmax(CudaContext ctx, DeviceTensor logits, DeviceTensor ids, DeviceTensor pos) {
        mine(ctx, "argmax logits", logits, 2, DType.F32);
        mine(ctx, "argmax ids", ids, 1, DType.I32);
        if (ids.dim(0) != logits.dim(0)) throw new IllegalArgumentException("argmax: ids " + ids + " must be [" + logits.dim(0) + "] for logits " + logits);
        if (pos != null) {
            mine(ctx, "argmax pos", pos, 1, DType.I32);
            if (pos.dim(0) != logits.dim(0)) throw new IllegalArgumentException("argmax: pos " + pos + " must be [" + logits.dim(0) + "]");
        }
        if (logits.dim(1) == 0) throw new IllegalArgumentException("argmax: logits " + logits + " have no columns");
        CudaLibrary.check(panatron_h.pt_cuda_argmax(ctx.handle(), logits.descriptor(), ids.descriptor(), desc(pos)));
    }

    /**
     * A Linear layer for 1..8 rows (decode): {@code out = act(x @ w^T + bias)}, a memory-bound
     * kernel (one warp per output channel, f32 sums); use {@link CudaContext#matmul} for more rows.
     *
     * @param x    [M, K] bf16, 1 <= M <= 8, rows 16-byte aligned
     * @param w    [N, K] bf16 contiguous, K a multiple of 8
     * @param bias [N] bf16 or f32, or null
     * @param out  [M, N] bf16 or f32
     * @param act  NONE or GELU_TANH
     * @throws IllegalArgumentException on a dtype, shape, alignment or context mismatch
     */
    public static void gemv(CudaContext ctx, DeviceTensor x, DeviceTensor w, DeviceTensor bias, DeviceTensor out, dev.panatron.Kernels.Activation act) {
        mine(ctx, "gemv x", x, 2, DType.BF16);
        mine(ctx, "gemv w", w, 2, DType.BF16);
        mine(ctx, "gemv out", out, 2, DType.BF16, DType.F32);
        Objects.requireNonNull(act, "act");
        long m = x.dim(0), k = x.dim(1), n = w.dim(0);
        if (w.dim(1) != k || out.dim(0) != m || out.dim(1) != n) {
            throw new IllegalArgumentException("gemv: expected x [M, K], w [N, K], out [M, N]; got x " + x + ", w " + w + ", out " + out);
        }
        if (m < 1 || m > 8) throw new IllegalArgumentException("gemv: x " + x + " must have 1..8 rows");
        if (k % 8 != 0 || !w.isContiguous() || (w.address() & 15) != 0 || (x.address() & 15) != 0 || (m > 1 && x.strides()[0] % 16 != 0)) {
            throw new IllegalArgumentException("gemv: w " + w + " must be contiguous with K a multiple of 8, w and x " + x + " 16-byte aligned");
        }
        if (bias != null) {
            mine(ctx, "gemv bias", bias, 1, DType.BF16, DType.F32);
            if (bias.dim(0) != n) throw new IllegalArgumentException("gemv: bias " + bias + " must be [" + n + "]");
        }
        if (act != dev.panatron.Kernels.Activation.NONE && act != dev.panatron.Kernels.Activation.GELU_TANH) {
            throw new IllegalArgumentException("gemv: activation " + act + " (NONE or GELU_TANH)");
        }
        CudaLibrary.check(panatron_h.pt_cuda_gemv(ctx.handle(), x.descriptor(), w.descriptor(), desc(bias), out.descriptor(), act.ordinal()));
    }

    /**
     * {@link #gemv} with a residual add: {@code resid += x @ w^T + bias}.
     *
     * @param resid [M, N] f32 (the residual stream)
     * @throws IllegalArgumentException on a dtype, shape, alignment or context mismatch
     */
    public static void gemvResidual(CudaContext ctx, DeviceTensor x, DeviceTensor w, DeviceTensor bias, DeviceTensor resid) {
        mine(ctx, "gemvResidual resid", resid, 2, DType.F32);
        checkGemv(ctx, "gemvResidual", x, DType.BF16, w, bias, resid);
        CudaLibrary.check(panatron_h.pt_cuda_gemv_residual(ctx.handle(), x.descriptor(), w.descriptor(), desc(bias), resid.descriptor()));
    }

    /**
     * The norm fused into the following Linear (decode): {@code out = act(norm(x) @ w^T + bias)},
     * LayerNorm ({@code rms} false, two-pass statistics, beta optional) or RMSNorm, all in f32.
     *
     * @param x     [M, K] f32, 1 <= M <= 8
     * @param gamma [K] f32; beta [K] f32 or null (LayerNorm only)
     * @throws IllegalArgumentException on a dtype, shape, alignment or context mismatch, or a bad eps
     */
    public static void normGemv(CudaContext ctx, DeviceTensor x, boolean rms, DeviceTensor gamma, DeviceTensor beta, float eps, DeviceTensor w,
                                DeviceTensor bias, DeviceTensor out, dev.panatron.Kernels.Activation act) {
        mine(ctx, "normGemv out", out, 2, DType.BF16, DType.F32);
        checkGemv(ctx, "normGemv", x, DType.F32, w, bias, out);
        mine(ctx, "normGemv gamma", gamma, 1, DType.F32);
        if (gamma.dim(0) != x.dim(1)) throw new IllegalArgumentException("normGemv: gamma " + gamma + " must be [" + x.dim(1) + "]");
        if (beta != null) {
            if (rms) throw new IllegalArgumentException("normGemv: RMSNorm takes no beta");
            mine(ctx, "normGemv beta", beta, 1, DType.F32);
            if (beta.dim(0) != x.dim(1)) throw new IllegalArgumentException("normGemv: beta " + beta + " must be [" + x.dim(1) + "]");
        }
        if (!(eps >= 0) || Float.isInfinite(eps)) throw new IllegalArgumentException("normGemv: eps " + eps + " must be finite and >= 0");
        Objects.requireNonNull(act, "act");
        if (act != dev.panatron.Kernels.Activation.NONE && act != dev.panatron.Kernels.Activation.GELU_TANH) {
            throw new IllegalArgumentException("normGemv: activation " + act + " (NONE or GELU_TANH)");
        }
        CudaLibrary.check(panatron_h.pt_cuda_norm_gemv(ctx.handle(), x.descriptor(), rms ? 1 : 0, gamma.descriptor(), desc(beta), eps,
                w.descriptor(), desc(bias), out.descriptor(), act.ordinal()));
    }

    private static void checkGemv(CudaContext ctx, String fn, DeviceTensor x, DType xType, DeviceTensor w, DeviceTensor bias, DeviceTensor out) {
        mine(ctx, fn + " x", x, 2, xType);
        mine(ctx, fn + " w", w, 2, DType.BF16);
        long m = x.dim(0), k = x.dim(1), n = w.dim(0);
        if (w.dim(1) != k || out.dim(0) != m || out.dim(1) != n) {
            throw new IllegalArgumentException(fn + ": expected x [M, K], w [N, K], out [M, N]; got x " + x + ", w " + w + ", out " + out);
        }
        if (m < 1 || m > 8) throw new IllegalArgumentException(fn + ": x " + x + " must have 1..8 rows");
        if (k % 8 != 0 || !w.isContiguous() || (w.address() & 15) != 0 || (x.address() & 15) != 0 || (m > 1 && x.strides()[0] % 16 != 0)) {
            throw new IllegalArgumentException(fn + ": w " + w + " must be contiguous with K a multiple of 8, w and x " + x + " 16-byte aligned");
        }
        if (bias != null) {
            mine(ctx, fn + " bias", bias, 1, DType.BF16, DType.F32);
            if (bias.dim(0) != n) throw new IllegalArgumentException(fn + ": bias " + bias + " must be [" + n + "]");
        }
    }

    /**
     * A CUDA graph of work enqueued on a context's stream, captured once and replayed with
     * {@link #launch()}. Kernels keep the pointers and host arguments of the capture and read
     * their inputs from device memory at each replay. Close it (or the context) to free it.
     */
    public static final class Graph implements AutoCloseable {
        private final CudaContext ctx;
        private MemorySegment handle;

        private Graph(CudaContext ctx, MemorySegment handle) {
            this.ctx = ctx;
            this.handle = handle;
        }

        /**
         * Captures what {@code body} enqueues on {@code ctx} (nothing runs during the capture).
         * The body must not copy to or from the host or synchronize.
         *
         * @throws IllegalStateException when the context is closed or already capturing
         * @throws dev.panatron.PanatronException when an op cannot be captured (the capture is ended)
         */
        public static Graph capture(CudaContext ctx, Runnable body) {
            Objects.requireNonNull(body, "body");
            CudaLibrary.check(panatron_h.pt_cuda_graph_begin(ctx.handle()));
            MemorySegment g;
            try (Arena tmp = Arena.ofConfined()) {
                MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
                try {
                    body.run();
                } catch (RuntimeException e) {
                    int st = panatron_h.pt_cuda_graph_end(ctx.handle(), out);
                    if (st == 0) panatron_h.pt_cuda_graph_destroy(ctx.handle(), out.get(ValueLayout.ADDRESS, 0));
                    throw e;
                }
                CudaLibrary.check(panatron_h.pt_cuda_graph_end(ctx.handle(), out));
                g = out.get(ValueLayout.ADDRESS, 0);
            }
            return new Graph(ctx, g);
        }

        /**
         * Replays the graph on the context's stream (asynchronous).
         *
         * @throws IllegalStateException when the graph or its context is closed
         */
        public void launch() {
            if (handle == null) throw new IllegalStateException("CUDA graph is closed");
            CudaLibrary.check(panatron_h.pt_cuda_graph_launch(ctx.handle(), handle));
        }

        /** Frees the graph after the stream's work (idempotent; a no-op once the context is closed). */
        @Override
        public void close() {
            if (handle == null) return;
            MemorySegment h = handle;
            handle = null;
            if (ctx.isOpen()) CudaLibrary.check(panatron_h.pt_cuda_graph_destroy(ctx.handle(), h));
        }
    }

    private static MemorySegment desc(DeviceTensor t) { return t == null ? MemorySegment.NULL : t.descriptor(); }

    private static void mine(CudaContext ctx, String what, DeviceTensor t, int rank, DType... dtypes) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(t, what);
        t.checkOpen();
        ctx.handle();
        if (t.context() != ctx) throw new IllegalArgumentException(what + ": " + t + " belongs to another CUDA context");
        if (t.ndim() != rank) throw new IllegalArgumentException(what + ": " + t + " must be " + rank + "-D");
        boolean ok = false;
        for (DType d : dtypes) ok |= t.dtype() == d;
        if (!ok) throw new IllegalArgumentException(what + ": dtype " + t.dtype() + " of " + t + " not supported here (expected " + Arrays.toString(dtypes) + ")");
        if (t.dim(-1) > 1 && t.strides()[rank - 1] != t.dtype().byteSize()) {
            throw new IllegalArgumentException(what + ": the innermost dim of " + t + " must be contiguous");
        }
    }
}
