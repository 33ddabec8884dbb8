package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.QuantKernels;
import dev.panatron.Tensor;
import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_cuda_attn_params;
import dev.panatron.ffm.pt_cuda_ctx_params;
import dev.panatron.ffm.pt_cuda_sparse24_params;
import dev.panatron.ffm.pt_fp4_matmul_params;
import dev.panatron.ffm.pt_int8_matmul_params;
import dev.panatron.ffm.pt_matmul_params;
import dev.panatron.ffm.pt_tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A CUDA context ({@code pt_cuda_ctx}): one device, one stream, a caching allocator that owns
 * every {@link DeviceTensor} made here, the cuBLASLt handle and plan cache, pinned staging buffers,
 * and the sparse weights ({@link Sparse24Weight}, {@link BlockSparseWeight}) made here.
 *
 * <p>Everything is enqueued on the context's stream in call order and returns before the GPU has
 * finished; {@link #synchronize()} and copies to the host wait. Use one context per stream for
 * concurrent streams. Calls from several threads are serialized on the stream. {@link #close()}
 * waits for the stream and frees every block the context handed out (twice is harmless).
 *
 * <p>All kernels validate shapes, dtypes, contexts and open state in Java first (throwing
 * {@link IllegalArgumentException} naming the argument and its shape), then call the native
 * library, which checks again; its failures are {@link dev.panatron.PanatronException}s.
 */
public final class CudaContext implements AutoCloseable {
    private static final long[] HEAD_DIMS = {64, 80, 96, 128, 256};

    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final int device;
    private final boolean allowTf32;
    private volatile boolean closed;
    /** Sparse weights made here (native memory outside the allocator): closed with the context. */
    private final Set<AutoCloseable> owned = ConcurrentHashMap.newKeySet();

    private CudaContext(int device, boolean allowTf32, long workspaceBytes) {
        Cuda.requireLoaded();
        int n = Cuda.deviceCount();
        if (device < 0 || device >= n) {
            arena.close();
            throw new IllegalArgumentException("device ordinal " + device + " out of range: " + n + " CUDA device(s)"
                    + (n == 0 ? " (" + Cuda.status() + ")" : ""));
        }
        if (workspaceBytes < 0) {
            arena.close();
            throw new IllegalArgumentException("workspaceBytes must be >= 0 (0: 32 MiB), got " + workspaceBytes);
        }
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_cuda_ctx_params.allocate(tmp);
            pt_cuda_ctx_params.device(p, device);
            pt_cuda_ctx_params.allow_tf32(p, allowTf32 ? 1 : 0);
            pt_cuda_ctx_params.workspace_bytes(p, workspaceBytes);
            pt_cuda_ctx_params.stream(p, MemorySegment.NULL);
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            CudaLibrary.check(panatron_h.pt_cuda_ctx_create(p, out));
            MemorySegment raw = out.get(ValueLayout.ADDRESS, 0);
            this.handle = raw.reinterpret(arena, h -> panatron_h.pt_cuda_ctx_destroy(h));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
        this.device = device;
        this.allowTf32 = allowTf32;
    }

    /**
     * A context on device 0 with exact f32 matmuls.
     *
     * @throws IllegalStateException    when CUDA is unavailable (the message says why)
     * @throws IllegalArgumentException when there is no CUDA device
     */
    public static CudaContext create() { return new CudaContext(0, false, 0); }

    /**
     * A context on {@code device}.
     *
     * @param device         device ordinal
     * @param allowTf32      f32 matmuls may round their inputs to tf32 on tensor cores
     * @param workspaceBytes cuBLASLt workspace (0: 32 MiB)
     * @throws IllegalStateException    when CUDA is unavailable
     * @throws IllegalArgumentException for a bad ordinal or a negative workspace
     */
    public static CudaContext create(int device, boolean allowTf32, long workspaceBytes) {
        return new CudaContext(device, allowTf32, workspaceBytes);
    }

    /** The device ordinal. */
    public int deviceOrdinal() { return device; }

    /** The device's properties (free memory read now). */
    public CudaDevice device() { return Cuda.device(device); }

    /** True when f32 matmuls may use tf32. */
    public boolean allowsTf32() { return allowTf32; }

    /** True until {@link #close()}. */
    public boolean isOpen() { return !closed; }

    MemorySegment handle() {
        if (closed) throw new IllegalStateException("CUDA context is closed");
        return handle;
    }

    // ---------------------------------------------------------------- memory

    /**
     * A new contiguous device tensor from the context's caching allocator. Its contents are
     * undefined (a reused block keeps old data): write it, or {@link DeviceTensor#fillBytes}.
     *
     * @throws IllegalArgumentException for a bad shape or U4
     * @throws dev.panatron.PanatronException when the device is out of memory
     */
    public DeviceTensor allocate(DType dtype, long... shape) {
        long[] s = DeviceTensor.checkShape(dtype, shape);
        long bytes = dtype.bytesFor(DeviceTensor.numel(s));
        long addr = 0;
        if (bytes > 0) {
            try (Arena tmp = Arena.ofConfined()) {
                MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
                CudaLibrary.check(panatron_h.pt_cuda_malloc(handle(), bytes, out));
                addr = out.get(ValueLayout.ADDRESS, 0).address();
            }
        }
        return new DeviceTensor(this, dtype, s, DeviceTensor.contiguousStrides(dtype, s), addr, null);
    }

    /** A new device tensor holding a copy of a contiguous host tensor (same dtype and shape). */
    public DeviceTensor upload(Tensor host) {
        Objects.requireNonNull(host, "host");
        host.checkOpen();
        DeviceTensor d = allocate(host.dtype(), host.shape());
        try {
            d.copyFrom(host);
            return d;
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
    }

    void free(long address) {
        if (closed) return; // the context freed every block already
        CudaLibrary.check(panatron_h.pt_cuda_free(handle, MemorySegment.ofAddress(address)));
    }

    /** Bytes of device memory handed out to live tensors. */
    public long memoryInUse() { return stats()[0]; }

    /** Bytes held in the cache for reuse. */
    public long memoryCached() { return stats()[1]; }

    private long[] stats() {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment a = tmp.allocate(ValueLayout.JAVA_LONG), b = tmp.allocate(ValueLayout.JAVA_LONG);
            CudaLibrary.check(panatron_h.pt_cuda_memory_stats(handle(), a, b));
            return new long[] {a.get(ValueLayout.JAVA_LONG, 0), b.get(ValueLayout.JAVA_LONG, 0)};
        }
    }

    /** Returns cached (unused) blocks to the driver, after waiting for the stream. */
    public void emptyCache() { CudaLibrary.check(panatron_h.pt_cuda_empty_cache(handle())); }

    // ---------------------------------------------------------------- stream and events

    /**
     * Waits for all work enqueued on the stream.
     *
     * @throws dev.panatron.PanatronException when that work faulted
     */
    public void synchronize() { CudaLibrary.check(panatron_h.pt_cuda_synchronize(handle())); }

    /** The address of the {@code cudaStream_t} this context enqueues on (for interop). */
    public long streamAddress() {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            CudaLibrary.check(panatron_h.pt_cuda_ctx_stream(handle(), out));
            return out.get(ValueLayout.ADDRESS, 0).address();
        }
    }

    /** A new timing event of this context (close it, or it is freed with the context). */
    public CudaEvent newEvent() {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            CudaLibrary.check(panatron_h.pt_cuda_event_create(handle(), out));
            return new CudaEvent(this, out.get(ValueLayout.ADDRESS, 0));
        }
    }

    // ---------------------------------------------------------------- GEMM (cuBLASLt)

    /**
     * {@code c = act(alpha * a @ op(b) + bias + beta * c)} through cuBLASLt, accumulated in f32
     * (f16/bf16 on tensor cores; f32 exact unless the context allows tf32). Bias, ReLU and
     * GELU(tanh) are fused epilogues; GELU(erf) and SiLU run as a second pass.
     *
     * @param a    [M, K] or [B, M, K]; f32, f16 or bf16; innermost contiguous
     * @param b    [K, N] ([N, K] when {@code opts.transB()}), optionally with a leading [B]; a's dtype
     * @param bias [N] f32 or c's dtype, or null
     * @param c    [M, N] or [B, M, N]; f32, or a's dtype for f16/bf16 inputs
     * @param opts transpose, activation, alpha, beta
     * @throws IllegalArgumentException on a dtype or shape mismatch, strides that are not whole
     *         elements, tensors of another context, or K == 0
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws dev.panatron.PanatronException when cuBLASLt fails or is not found
     */
    public void matmul(DeviceTensor a, DeviceTensor b, DeviceTensor bias, DeviceTensor c, MatmulOptions opts) {
        Objects.requireNonNull(opts, "opts");
        requireMine("matmul a", a);
        requireMine("matmul b", b);
        requireMine("matmul c", c);
        if (bias != null) requireMine("matmul bias", bias);
        requireDtype("matmul a", a, DType.F32, DType.F16, DType.BF16);
        requireDtype("matmul b", b, a.dtype());
        if (a.dtype() == DType.F32) requireDtype("matmul c", c, DType.F32);
        else requireDtype("matmul c", c, a.dtype(), DType.F32);
        if (a.ndim() < 2 || a.ndim() > 3) throw shape("matmul: a must be 2-D or 3-D, got " + a);
        if (b.ndim() < 2 || b.ndim() > 3) throw shape("matmul: b must be 2-D or 3-D, got " + b);
        if (c.ndim() != a.ndim()) throw shape("matmul: c " + c + " must have the rank of a " + a);
        if (b.ndim() == 3 && (a.ndim() != 3 || b.dim(0) != a.dim(0))) {
            throw shape("matmul: batched b " + b + " needs a with the same batch, got " + a);
        }
        long m = a.dim(-2), k = a.dim(-1);
        long bk = opts.transB() ? b.dim(-1) : b.dim(-2), n = opts.transB() ? b.dim(-2) : b.dim(-1);
        if (bk != k) throw shape("matmul: inner dims differ: a " + a + " has K=" + k + ", b " + b + (opts.transB() ? " (transB)" : "") + " has K=" + bk);
        if (c.dim(-2) != m || c.dim(-1) != n || (a.ndim() == 3 && c.dim(0) != a.dim(0))) {
            throw shape("matmul: c " + c + " must be [" + (a.ndim() == 3 ? a.dim(0) + ", " : "") + m + ", " + n + "] for a " + a + " and b " + b);
        }
        if (bias != null) {
            requireDtype("matmul bias", bias, DType.F32, c.dtype());
            if (bias.ndim() != 1 || bias.dim(0) != n) throw shape("matmul: bias must be [" + n + "], got " + bias);
        }
        requireInnermostContiguous("matmul a", a);
        requireInnermostContiguous("matmul b", b);
        requireInnermostContiguous("matmul c", c);
        requireWholeElementStrides("matmul a", a);
        requireWholeElementStrides("matmul b", b);
        requireWholeElementStrides("matmul c", c);
        if (m == 0 || n == 0 || (a.ndim() == 3 && a.dim(0) == 0)) return;
        if (k == 0) throw shape("matmul: K = 0 is not supported (a " + a + ")");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_matmul_params.allocate(tmp);
            pt_matmul_params.trans_b(p, opts.transB() ? 1 : 0);
            pt_matmul_params.activation(p, opts.activation().ordinal());
            pt_matmul_params.alpha(p, opts.alpha());
            pt_matmul_params.beta(p, opts.beta());
            CudaLibrary.check(panatron_h.pt_cuda_matmul(handle(), a.descriptor(), b.descriptor(),
                    bias == null ? MemorySegment.NULL : bias.descriptor(), c.descriptor(), p));
        }
    }

    /** {@code c = a @ b}. See {@link #matmul(DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, MatmulOptions)}. */
    public void matmul(DeviceTensor a, DeviceTensor b, DeviceTensor c) {
        matmul(a, b, null, c, MatmulOptions.DEFAULT);
    }

    /** {@code c = act(a @ w^T + bias)}: a Linear layer, w in PyTorch layout [N, K]. */
    public void linear(DeviceTensor a, DeviceTensor w, DeviceTensor bias, DeviceTensor c, Activation act) {
        matmul(a, w, bias, c, MatmulOptions.LINEAR.withActivation(Objects.requireNonNull(act, "act")));
    }

    // ---------------------------------------------------------------- LayerNorm

    /**
     * LayerNorm over the last dim: {@code out = (x - mean) / sqrt(var + eps) * gamma + beta},
     * statistics in f32 (biased variance).
     *
     * @param x     [..., cols] f32, f16 or bf16, contiguous
     * @param gamma [cols] f32
     * @param beta  [cols] f32, or null
     * @param eps   finite, >= 0 (BERT: 1e-12)
     * @param out   x's shape and dtype, contiguous; may be x itself
     * @throws IllegalArgumentException on a shape, dtype, contiguity or context mismatch, or a bad eps
     */
    public void layerNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, float eps, DeviceTensor out) {
        requireMine("layerNorm x", x);
        requireMine("layerNorm gamma", gamma);
        if (beta != null) requireMine("layerNorm beta", beta);
        requireMine("layerNorm out", out);
        requireDtype("layerNorm x", x, DType.F32, DType.F16, DType.BF16);
        requireDtype("layerNorm out", out, x.dtype());
        requireDtype("layerNorm gamma", gamma, DType.F32);
        if (beta != null) requireDtype("layerNorm beta", beta, DType.F32);
        if (!Arrays.equals(x.shape(), out.shape())) throw shape("layerNorm: out " + out + " must have the shape of x " + x);
        if (!x.isContiguous() || !out.isContiguous()) throw shape("layerNorm: x " + x + " and out " + out + " must be contiguous");
        long cols = x.dim(-1);
        if (gamma.ndim() != 1 || gamma.dim(0) != cols || (beta != null && (beta.ndim() != 1 || beta.dim(0) != cols))) {
            throw shape("layerNorm: gamma " + gamma + (beta != null ? " and beta " + beta : "") + " must be [" + cols + "] for x " + x);
        }
        if (!(eps >= 0) || Float.isInfinite(eps)) throw new IllegalArgumentException("layerNorm: eps " + eps + " must be finite and >= 0");
        CudaLibrary.check(panatron_h.pt_cuda_layer_norm(handle(), x.descriptor(), gamma.descriptor(),
                beta == null ? MemorySegment.NULL : beta.descriptor(), eps, out.descriptor()));
    }

    // ---------------------------------------------------------------- flash attention

    /**
     * Flash attention forward (prefill): {@code out = softmax(scale * q k^T [causal]) v}, never
     * materializing the score matrix; wgmma + TMA kernels on sm_90a, mma.sync on sm_80+.
     *
     * @param q      [B, Sq, Hq, D] bf16 or f16; any outer strides (16-byte multiples), innermost
     *               contiguous (a [B, H, S, D] tensor passes as {@code transpose(1, 2)})
     * @param k      [B, Sk, Hkv, D], q's dtype; Hq % Hkv == 0 (GQA/MQA)
     * @param v      like k
     * @param out    [B, Sq, Hq, D], q's dtype
     * @param lse    [B, Hq, Sq] f32 contiguous (log-sum-exp per row, natural log), or null
     * @param causal query i sees keys j <= i + (Sk - Sq) (bottom-right aligned)
     * @param scale  softmax scale; 0 means 1/sqrt(D)
     * @throws IllegalArgumentException on a dtype, shape, head-dim (64, 80, 96, 128, 256),
     *         alignment or context mismatch, or a negative/NaN scale
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public void flashAttention(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor out, DeviceTensor lse,
                               boolean causal, float scale) {
        checkAttnCommon("flashAttention", q, k, v, out, 4);
        long b = q.dim(0), sq = q.dim(1), hq = q.dim(2), d = q.dim(3), sk = k.dim(1), hkv = k.dim(2);
        if (k.dim(0) != b || v.dim(0) != b || out.dim(0) != b || v.dim(1) != sk || v.dim(2) != hkv || out.dim(1) != sq
                || out.dim(2) != hq || k.dim(3) != d || v.dim(3) != d || out.dim(3) != d) {
            throw shape("flashAttention: expected q/out [B, Sq, Hq, D] and k/v [B, Sk, Hkv, D], got q " + q + ", k " + k
                    + ", v " + v + ", out " + out);
        }
        checkHeads("flashAttention", hq, hkv, q, k);
        if (lse != null) {
            requireMine("flashAttention lse", lse);
            requireDtype("flashAttention lse", lse, DType.F32);
            if (lse.ndim() != 3 || lse.dim(0) != b || lse.dim(1) != hq || lse.dim(2) != sq || !lse.isContiguous()) {
                throw shape("flashAttention: lse must be contiguous [" + b + ", " + hq + ", " + sq + "] f32, got " + lse);
            }
        }
        checkScale("flashAttention", scale);
        if (b > 65535 || hq > 65535 || sq > Integer.MAX_VALUE / 2 || sk > Integer.MAX_VALUE / 2) {
            throw shape("flashAttention: sizes too large (q " + q + ", k " + k + ")");
        }
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_cuda_attn_params.allocate(tmp);
            pt_cuda_attn_params.scale(p, scale);
            pt_cuda_attn_params.causal(p, causal ? 1 : 0);
            CudaLibrary.check(panatron_h.pt_cuda_flash_attn_fwd(handle(), q.descriptor(), k.descriptor(), v.descriptor(),
                    out.descriptor(), lse == null ? MemorySegment.NULL : lse.descriptor(), p));
        }
    }

    /**
     * Flash attention forward over packed sequences of different lengths (varlen): sequence
     * {@code i < batch} owns rows {@code cuSeqlensQ[i] .. cuSeqlensQ[i+1]-1} of q/out and
     * {@code cuSeqlensK[i] .. cuSeqlensK[i+1]-1} of k/v.
     *
     * @param q           [Tq, Hq, D] bf16 or f16
     * @param k           [Tk, Hkv, D]
     * @param v           like k
     * @param out         [Tq, Hq, D]
     * @param lse         [Hq, Tq] f32 contiguous, or null
     * @param cuSeqlensQ  device [batch + 1] i32, non-decreasing prefix sums starting at 0
     * @param cuSeqlensK  device [batch + 1] i32
     * @param maxSeqlenQ  the longest query sequence (host value; a smaller bound than the truth is
     *                    undefined behaviour the kernel cannot report)
     * @param maxSeqlenK  the longest key sequence
     * @param causal      bottom-right aligned per sequence
     * @param scale       0: 1/sqrt(D)
     * @throws IllegalArgumentException on any shape, dtype, alignment or context mismatch
     */
    public void flashAttentionVarlen(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor out, DeviceTensor lse,
                                     DeviceTensor cuSeqlensQ, DeviceTensor cuSeqlensK, int maxSeqlenQ, int maxSeqlenK,
                                     boolean causal, float scale) {
        checkAttnCommon("flashAttentionVarlen", q, k, v, out, 3);
        long tq = q.dim(0), hq = q.dim(1), d = q.dim(2), tk = k.dim(0), hkv = k.dim(1);
        if (v.dim(0) != tk || v.dim(1) != hkv || out.dim(0) != tq || out.dim(1) != hq || k.dim(2) != d || v.dim(2) != d || out.dim(2) != d) {
            throw shape("flashAttentionVarlen: expected q/out [Tq, Hq, D] and k/v [Tk, Hkv, D], got q " + q + ", k " + k
                    + ", v " + v + ", out " + out);
        }
        checkHeads("flashAttentionVarlen", hq, hkv, q, k);
        requireMine("flashAttentionVarlen cuSeqlensQ", cuSeqlensQ);
        requireMine("flashAttentionVarlen cuSeqlensK", cuSeqlensK);
        requireDtype("flashAttentionVarlen cuSeqlensQ", cuSeqlensQ, DType.I32);
        requireDtype("flashAttentionVarlen cuSeqlensK", cuSeqlensK, DType.I32);
        if (cuSeqlensQ.ndim() != 1 || cuSeqlensQ.dim(0) < 2 || !cuSeqlensQ.isContiguous()
                || cuSeqlensK.ndim() != 1 || cuSeqlensK.dim(0) != cuSeqlensQ.dim(0) || !cuSeqlensK.isContiguous()) {
            throw shape("flashAttentionVarlen: cuSeqlensQ and cuSeqlensK must be contiguous [batch + 1] i32 of one length >= 2, got "
                    + cuSeqlensQ + " and " + cuSeqlensK);
        }
        long batch = cuSeqlensQ.dim(0) - 1;
        if (batch > 65535) throw shape("flashAttentionVarlen: batch " + batch + " > 65535");
        if (maxSeqlenQ < 0 || maxSeqlenK < 0 || maxSeqlenQ > tq || maxSeqlenK > tk) {
            throw new IllegalArgumentException("flashAttentionVarlen: maxSeqlenQ " + maxSeqlenQ + " / maxSeqlenK " + maxSeqlenK
                    + " must be in 0.." + tq + " / 0.." + tk + " (the packed lengths of q " + q + " and k " + k + ")");
        }
        if (lse != null) {
            requireMine("flashAttentionVarlen lse", lse);
            requireDtype("flashAttentionVarlen lse", lse, DType.F32);
            if (lse.ndim() != 2 || lse.dim(0) != hq || lse.dim(1) != tq || !lse.isContiguous()) {
                throw shape("flashAttentionVarlen: lse must be contiguous [" + hq + ", " + tq + "] f32, got " + lse);
            }
        }
        checkScale("flashAttentionVarlen", scale);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_cuda_attn_params.allocate(tmp);
            pt_cuda_attn_params.scale(p, scale);
            pt_cuda_attn_params.causal(p, causal ? 1 : 0);
            pt_cuda_attn_params.cu_seqlens_q(p, MemorySegment.ofAddress(cuSeqlensQ.address()));
            pt_cuda_attn_params.cu_seqlens_k(p, MemorySegment.ofAddress(cuSeqlensK.address()));
            pt_cuda_attn_params.batch(p, (int) batch);
            pt_cuda_attn_params.max_seqlen_q(p, maxSeqlenQ);
            pt_cuda_attn_params.max_seqlen_k(p, maxSeqlenK);
            cuSeqlensQ.checkOpen();
            CudaLibrary.check(panatron_h.pt_cuda_flash_attn_fwd(handle(), q.descriptor(), k.descriptor(), v.descriptor(),
                    out.descriptor(), lse == null ? MemorySegment.NULL : lse.descriptor(), p));
        }
    }

    /**
     * Decode attention against a KV cache (flash-decoding, split-KV): one new query token per
     * sequence attends to the first {@code seqlensK[b]} keys of its cache.
     *
     * @param q          [B, Hq, D] bf16 or f16
     * @param kCache     [B, Hkv, S_max, D] q's dtype, innermost contiguous, outer strides 16-byte multiples
     * @param vCache     like kCache
     * @param seqlensK   device [B] i32, each in 1..S_max (values are not checked on the host)
     * @param out        [B, Hq, D] q's dtype
     * @param scale      0: 1/sqrt(D)
     * @param maxSeqlenK a host bound of the seqlens used to size the split (0: S_max)
     * @throws IllegalArgumentException on any shape, dtype, alignment or context mismatch
     */
    public void flashDecode(DeviceTensor q, DeviceTensor kCache, DeviceTensor vCache, DeviceTensor seqlensK, DeviceTensor out,
                            float scale, int maxSeqlenK) {
        requireMine("flashDecode q", q);
        requireMine("flashDecode kCache", kCache);
        requireMine("flashDecode vCache", vCache);
        requireMine("flashDecode seqlensK", seqlensK);
        requireMine("flashDecode out", out);
        requireDtype("flashDecode q", q, DType.BF16, DType.F16);
        requireDtype("flashDecode kCache", kCache, q.dtype());
        requireDtype("flashDecode vCache", vCache, q.dtype());
        requireDtype("flashDecode out", out, q.dtype());
        requireDtype("flashDecode seqlensK", seqlensK, DType.I32);
        if (q.ndim() != 3 || out.ndim() != 3 || kCache.ndim() != 4 || vCache.ndim() != 4 || seqlensK.ndim() != 1) {
            throw shape("flashDecode: expected q/out [B, Hq, D], k/vCache [B, Hkv, S_max, D], seqlensK [B]; got q " + q
                    + ", kCache " + kCache + ", vCache " + vCache + ", out " + out + ", seqlensK " + seqlensK);
        }
        long b = q.dim(0), hq = q.dim(1), d = q.dim(2), hkv = kCache.dim(1), smax = kCache.dim(2);
        if (kCache.dim(0) != b || kCache.dim(3) != d || !Arrays.equals(vCache.shape(), kCache.shape())
                || !Arrays.equals(out.shape(), q.shape()) || seqlensK.dim(0) != b) {
            throw shape("flashDecode: expected q/out [B, Hq, D], k/vCache [B, Hkv, S_max, D], seqlensK [B]; got q " + q
                    + ", kCache " + kCache + ", vCache " + vCache + ", out " + out + ", seqlensK " + seqlensK);
        }
        checkHeadDim("flashDecode", d, q);
        checkHeads("flashDecode", hq, hkv, q, kCache);
        requireInnermostContiguous("flashDecode q", q);
        requireInnermostContiguous("flashDecode kCache", kCache);
        requireInnermostContiguous("flashDecode vCache", vCache);
        requireInnermostContiguous("flashDecode out", out);
        requireAligned16("flashDecode q", q);
        requireAligned16("flashDecode kCache", kCache);
        requireAligned16("flashDecode vCache", vCache);
        if ((out.address() & 3) != 0) throw new IllegalArgumentException("flashDecode: out " + out + " is not 4-byte aligned");
        if (maxSeqlenK < 0) throw new IllegalArgumentException("flashDecode: maxSeqlenK " + maxSeqlenK + " must be >= 0 (0: S_max)");
        checkScale("flashDecode", scale);
        if (b > 65535 || hq > 65535 || smax > Integer.MAX_VALUE / 2) throw shape("flashDecode: sizes too large (q " + q + ", kCache " + kCache + ")");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_cuda_attn_params.allocate(tmp);
            pt_cuda_attn_params.scale(p, scale);
            pt_cuda_attn_params.max_seqlen_k(p, maxSeqlenK);
            CudaLibrary.check(panatron_h.pt_cuda_flash_attn_decode(handle(), q.descriptor(), kCache.descriptor(),
                    vCache.descriptor(), seqlensK.descriptor(), out.descriptor(), p));
        }
    }

    /**
     * Decode attention against a paged KV cache (vLLM / FlashInfer style): key {@code j} of sequence
     * {@code b} is row {@code j % blockSize} of block {@code blockTable[b, j / blockSize]} of the
     * pools; blocks may repeat across sequences (shared prefixes) and need not be in order. The
     * same kernels as {@link #flashDecode}.
     *
     * @param q          [B, Hq, D] bf16 or f16
     * @param kPool      [numBlocks, Hkv, blockSize, D] q's dtype, innermost contiguous, outer strides
     *                   16-byte multiples (the vLLM layout [numBlocks, blockSize, Hkv, D] as its
     *                   {@code transpose(1, 2)} view); blockSize a power of two in 1..4096
     * @param vPool      like kPool (same shape)
     * @param blockTable [B, maxBlocks] i32, innermost contiguous; the ids are not checked on the host
     *                   (an id outside the pool makes that sequence's output rows NaN)
     * @param seqlensK   [B] i32, keys per sequence (clamped to maxBlocks * blockSize)
     * @param out        [B, Hq, D] q's dtype
     * @param scale      0: 1/sqrt(D)
     * @param maxSeqlenK a host bound of the seqlens used to size the split (0: the capacity
     *                   maxBlocks * blockSize; larger is refused)
     * @throws IllegalArgumentException on any shape, dtype, block size, capacity, alignment or context mismatch
     */
    public void flashDecodePaged(DeviceTensor q, DeviceTensor kPool, DeviceTensor vPool, DeviceTensor blockTable, DeviceTensor seqlensK,
                                 DeviceTensor out, float scale, int maxSeqlenK) {
        String fn = "flashDecodePaged";
        requireMine(fn + " q", q);
        requireMine(fn + " kPool", kPool);
        requireMine(fn + " vPool", vPool);
        requireMine(fn + " blockTable", blockTable);
        requireMine(fn + " seqlensK", seqlensK);
        requireMine(fn + " out", out);
        requireDtype(fn + " q", q, DType.BF16, DType.F16);
        requireDtype(fn + " kPool", kPool, q.dtype());
        requireDtype(fn + " vPool", vPool, q.dtype());
        requireDtype(fn + " out", out, q.dtype());
        requireDtype(fn + " blockTable", blockTable, DType.I32);
        requireDtype(fn + " seqlensK", seqlensK, DType.I32);
        String expected = fn + ": expected q/out [B, Hq, D], k/vPool [numBlocks, Hkv, blockSize, D], blockTable [B, maxBlocks], seqlensK [B]; got q "
                + q + ", kPool " + kPool + ", vPool " + vPool + ", blockTable " + blockTable + ", out " + out + ", seqlensK " + seqlensK;
        if (q.ndim() != 3 || out.ndim() != 3 || kPool.ndim() != 4 || vPool.ndim() != 4 || blockTable.ndim() != 2 || seqlensK.ndim() != 1) {
            throw shape(expected);
        }
        long b = q.dim(0), hq = q.dim(1), d = q.dim(2), hkv = kPool.dim(1), bs = kPool.dim(2), maxBlocks = blockTable.dim(1);
        if (kPool.dim(3) != d || !Arrays.equals(vPool.shape(), kPool.shape()) || !Arrays.equals(out.shape(), q.shape())
                || blockTable.dim(0) != b || seqlensK.dim(0) != b) {
            throw shape(expected);
        }
        checkHeadDim(fn, d, q);
        checkHeads(fn, hq, hkv, q, kPool);
        if (bs < 1 || bs > 4096 || Long.bitCount(bs) != 1) {
            throw shape(fn + ": block size " + bs + " (dim 2 of kPool " + kPool + ") must be a power of two in 1..4096");
        }
        if (kPool.dim(0) < 1 || kPool.dim(0) > Integer.MAX_VALUE) throw shape(fn + ": kPool " + kPool + " must hold 1 .. 2^31-1 blocks");
        if (maxBlocks < 1 || maxBlocks * bs > Integer.MAX_VALUE / 2) {
            throw shape(fn + ": blockTable " + blockTable + ": maxBlocks x blockSize " + bs + " must be in 1 .. 2^30 keys");
        }
        if (maxSeqlenK < 0) throw new IllegalArgumentException(fn + ": maxSeqlenK " + maxSeqlenK + " must be >= 0 (0: the capacity)");
        if (maxSeqlenK > maxBlocks * bs) {
            throw new IllegalArgumentException(fn + ": maxSeqlenK " + maxSeqlenK + " exceeds the capacity maxBlocks x blockSize = " + maxBlocks + " x " + bs
                    + " of blockTable " + blockTable);
        }
        requireInnermostContiguous(fn + " q", q);
        requireInnermostContiguous(fn + " kPool", kPool);
        requireInnermostContiguous(fn + " vPool", vPool);
        requireInnermostContiguous(fn + " blockTable", blockTable);
        requireInnermostContiguous(fn + " out", out);
        requireAligned16(fn + " q", q);
        requireAligned16(fn + " kPool", kPool);
        requireAligned16(fn + " vPool", vPool);
        if ((out.address() & 3) != 0) throw new IllegalArgumentException(fn + ": out " + out + " is not 4-byte aligned");
        checkScale(fn, scale);
        if (b > 65535 || hq > 65535) throw shape(fn + ": sizes too large (q " + q + ")");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_cuda_attn_params.allocate(tmp);
            pt_cuda_attn_params.scale(p, scale);
            pt_cuda_attn_params.max_seqlen_k(p, maxSeqlenK);
            CudaLibrary.check(panatron_h.pt_cuda_flash_attn_decode_paged(handle(), q.descriptor(), kPool.descriptor(), vPool.descriptor(),
                    blockTable.descriptor(), seqlensK.descriptor(), out.descriptor(), p));
        }
    }

    // ---------------------------------------------------------------- validation helpers

    private void checkAttnCommon(String fn, DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor out, int rank) {
        requireMine(fn + " q", q);
        requireMine(fn + " k", k);
        requireMine(fn + " v", v);
        requireMine(fn + " out", out);
        requireDtype(fn + " q", q, DType.BF16, DType.F16);
        requireDtype(fn + " k", k, q.dtype());
        requireDtype(fn + " v", v, q.dtype());
        requireDtype(fn + " out", out, q.dtype());
        String dims = rank == 4 ? "[B, S, H, D]" : "[T, H, D]";
        for (DeviceTensor t : new DeviceTensor[] {q, k, v, out}) {
            if (t.ndim() != rank) {
                throw shape(fn + ": q, k, v and out must be " + rank + "-D " + dims + ", got q " + q + ", k " + k + ", v " + v + ", out " + out);
            }
        }
        checkHeadDim(fn, q.dim(-1), q);
        requireInnermostContiguous(fn + " q", q);
        requireInnermostContiguous(fn + " k", k);
        requireInnermostContiguous(fn + " v", v);
        requireInnermostContiguous(fn + " out", out);
        requireAligned16(fn + " q", q);
        requireAligned16(fn + " k", k);
        requireAligned16(fn + " v", v);
        requireAligned16(fn + " out", out);
    }

    private static void checkHeadDim(String fn, long d, DeviceTensor q) {
        for (long h : HEAD_DIMS) if (h == d) return;
        throw new IllegalArgumentException(fn + ": head dim " + d + " of q " + q + " is not supported (64, 80, 96, 128, 256)");
    }

    private static void checkHeads(String fn, long hq, long hkv, DeviceTensor q, DeviceTensor k) {
        if (hkv <= 0 || hq % hkv != 0) {
            throw shape(fn + ": query heads " + hq + " (q " + q + ") must be a multiple of key/value heads " + hkv + " (k " + k + ")");
        }
    }

    // ---------------------------------------------------------------- quantized matmul (issue 7)

    /**
     * Row quantization (the activation side of LLM.int8 / W8A8, also a per-channel weight
     * quantizer): {@code scale[m] = absmax_m / 127} over the row's non-outlier columns (NaN for a
     * row holding a non-finite value), {@code xq[m, j] = rne(x[m, j] * 127 / absmax_m)} clamped to
     * [-127, 127]; the CPU quantizer's values bit for bit.
     *
     * @param x         [M, K] f32, f16 or bf16, innermost contiguous
     * @param xq        [M, K] i8 (out), innermost contiguous
     * @param scale     [M] f32 (out)
     * @param outliers  [K] i32 (out) or null: with it, column j is an outlier when some
     *                  |x[m, j]| >= threshold ({@code outliers[j] = 1}, its xq column 0, left out
     *                  of the row scales); null: no decomposition
     * @param threshold outlier threshold, > 0 and finite when outliers is given (ignored otherwise)
     * @throws IllegalArgumentException on a dtype, shape, stride or context mismatch or a bad threshold
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public void quantizeRows(DeviceTensor x, DeviceTensor xq, DeviceTensor scale, DeviceTensor outliers, float threshold) {
        requireMine("quantizeRows x", x);
        requireMine("quantizeRows xq", xq);
        requireMine("quantizeRows scale", scale);
        if (outliers != null) requireMine("quantizeRows outliers", outliers);
        requireDtype("quantizeRows x", x, DType.F32, DType.F16, DType.BF16);
        requireDtype("quantizeRows xq", xq, DType.I8);
        requireDtype("quantizeRows scale", scale, DType.F32);
        require2d("quantizeRows x", x);
        if (xq.ndim() != 2 || xq.dim(0) != x.dim(0) || xq.dim(1) != x.dim(1)) throw shape("quantizeRows: xq " + xq + " must have x's shape " + x);
        requireVector("quantizeRows scale", scale, x.dim(0));
        if (outliers != null) {
            requireDtype("quantizeRows outliers", outliers, DType.I32);
            requireVector("quantizeRows outliers", outliers, x.dim(1));
            if (!(threshold > 0) || Float.isInfinite(threshold)) {
                throw new IllegalArgumentException("quantizeRows: threshold must be a positive finite number, got " + threshold);
            }
        }
        requireRows("quantizeRows x", x);
        requireRows("quantizeRows xq", xq);
        CudaLibrary.check(panatron_h.pt_cuda_quantize_rows(handle(), x.descriptor(), threshold, xq.descriptor(), scale.descriptor(),
                outliers == null ? MemorySegment.NULL : outliers.descriptor()));
    }

    /**
     * s8 x s8 GEMM on the int8 tensor cores (cuBLASLt IMMA; a portable kernel where cuBLASLt has no
     * algorithm): {@code c = a @ b^T}. An i32 c takes the exact sums (no scales, bias or
     * activation); an f32/f16/bf16 c gets {@code act(sum * aScale[m] * bScale[n] + bias[n])}.
     *
     * @param a      [M, K] i8, innermost contiguous
     * @param b      [N, K] i8 (Linear weight layout), innermost contiguous
     * @param aScale [M] f32 or null (1)
     * @param bScale [N] f32 or null (1)
     * @param bias   [N] f32 or null
     * @param c      [M, N] i32, f32, f16 or bf16, innermost contiguous
     * @param act    activation after the bias (NONE for an i32 c)
     * @throws IllegalArgumentException on a dtype, shape, stride or context mismatch, or scales,
     *         bias or an activation with an i32 c
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public void matmulS8(DeviceTensor a, DeviceTensor b, DeviceTensor aScale, DeviceTensor bScale, DeviceTensor bias, DeviceTensor c,
                         Activation act) {
        Objects.requireNonNull(act, "act");
        requireMine("matmulS8 a", a);
        requireMine("matmulS8 b", b);
        requireMine("matmulS8 c", c);
        requireDtype("matmulS8 a", a, DType.I8);
        requireDtype("matmulS8 b", b, DType.I8);
        requireDtype("matmulS8 c", c, DType.I32, DType.F32, DType.F16, DType.BF16);
        require2d("matmulS8 a", a);
        require2d("matmulS8 b", b);
        require2d("matmulS8 c", c);
        long m = a.dim(0), k = a.dim(1), n = b.dim(0);
        if (b.dim(1) != k) throw shape("matmulS8: a " + a + " and b " + b + " disagree on K (b is [N, K])");
        if (c.dim(0) != m || c.dim(1) != n) throw shape("matmulS8: c " + c + " must be [" + m + ", " + n + "] for a " + a + " and b " + b);
        if (c.dtype() == DType.I32 && (aScale != null || bScale != null || bias != null || act != Activation.NONE)) {
            throw new IllegalArgumentException("matmulS8: an I32 c takes the raw sums: aScale, bScale and bias must be null and act NONE");
        }
        if (aScale != null) { requireMine("matmulS8 aScale", aScale); requireDtype("matmulS8 aScale", aScale, DType.F32); requireVector("matmulS8 aScale", aScale, m); }
        if (bScale != null) { requireMine("matmulS8 bScale", bScale); requireDtype("matmulS8 bScale", bScale, DType.F32); requireVector("matmulS8 bScale", bScale, n); }
        if (bias != null) { requireMine("matmulS8 bias", bias); requireDtype("matmulS8 bias", bias, DType.F32); requireVector("matmulS8 bias", bias, n); }
        requireRows("matmulS8 a", a);
        requireRows("matmulS8 b", b);
        requireRows("matmulS8 c", c);
        CudaLibrary.check(panatron_h.pt_cuda_matmul_s8(handle(), a.descriptor(), b.descriptor(),
                aScale == null ? MemorySegment.NULL : aScale.descriptor(), bScale == null ? MemorySegment.NULL : bScale.descriptor(),
                bias == null ? MemorySegment.NULL : bias.descriptor(), c.descriptor(), act.ordinal()));
    }

    /**
     * LLM.int8 / W8A8 linear on the GPU, {@link dev.panatron.QuantKernels#matmulInt8}'s semantics:
     * {@code y = act(s_m * wScale[n] * sum_j xq[m,j] wq[n,j] + sum_{j in O} x[m,j] Wo[n,j] + bias[n])}
     * with O the outlier columns of this call (LLM mode) and Wo = wOutlier or the dequantized wq.
     * A row with a non-finite x value comes out NaN. The LLM mode synchronizes the stream once (the
     * outlier count sizes the f32 outlier GEMM).
     *
     * @param x        [M, K] f32, f16 or bf16, innermost contiguous
     * @param wq       [N, K] i8 (per-channel quantized weight)
     * @param wScale   [N] f32
     * @param wOutlier [N, K] f32 or bf16, or null
     * @param bias     [N] f32 or null
     * @param y        [M, N] f32, f16 or bf16, innermost contiguous
     * @param opts     mode LLM or W8A8 (WEIGHT_ONLY is CPU-only), activation, threshold
     * @throws IllegalArgumentException on a dtype, shape, stride or context mismatch, or mode WEIGHT_ONLY
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public void matmulInt8(DeviceTensor x, DeviceTensor wq, DeviceTensor wScale, DeviceTensor wOutlier, DeviceTensor bias, DeviceTensor y,
                           QuantKernels.Int8Options opts) {
        Objects.requireNonNull(opts, "opts");
        if (opts.mode() == QuantKernels.Int8Mode.WEIGHT_ONLY) {
            throw new IllegalArgumentException("matmulInt8: mode WEIGHT_ONLY is CPU-only; on the GPU use LLM or W8A8");
        }
        requireMine("matmulInt8 x", x);
        requireMine("matmulInt8 wq", wq);
        requireMine("matmulInt8 wScale", wScale);
        requireMine("matmulInt8 y", y);
        requireDtype("matmulInt8 x", x, DType.F32, DType.F16, DType.BF16);
        requireDtype("matmulInt8 wq", wq, DType.I8);
        requireDtype("matmulInt8 wScale", wScale, DType.F32);
        requireDtype("matmulInt8 y", y, DType.F32, DType.F16, DType.BF16);
        require2d("matmulInt8 x", x);
        require2d("matmulInt8 wq", wq);
        require2d("matmulInt8 y", y);
        long m = x.dim(0), k = x.dim(1), n = wq.dim(0);
        if (wq.dim(1) != k) throw shape("matmulInt8: x " + x + " and wq " + wq + " disagree on K (wq is [N, K])");
        if (y.dim(0) != m || y.dim(1) != n) throw shape("matmulInt8: y " + y + " must be [" + m + ", " + n + "] for x " + x + " and wq " + wq);
        requireVector("matmulInt8 wScale", wScale, n);
        if (wOutlier != null) {
            requireMine("matmulInt8 wOutlier", wOutlier);
            requireDtype("matmulInt8 wOutlier", wOutlier, DType.F32, DType.BF16);
            if (wOutlier.ndim() != 2 || wOutlier.dim(0) != n || wOutlier.dim(1) != k) {
                throw shape("matmulInt8: wOutlier " + wOutlier + " must be [" + n + ", " + k + "] like wq " + wq);
            }
            requireRows("matmulInt8 wOutlier", wOutlier);
        }
        if (bias != null) { requireMine("matmulInt8 bias", bias); requireDtype("matmulInt8 bias", bias, DType.F32); requireVector("matmulInt8 bias", bias, n); }
        requireRows("matmulInt8 x", x);
        requireRows("matmulInt8 wq", wq);
        requireRows("matmulInt8 y", y);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_int8_matmul_params.allocate(tmp);
            pt_int8_matmul_params.mode(p, opts.mode().ordinal());
            pt_int8_matmul_params.activation(p, opts.activation().ordinal());
            pt_int8_matmul_params.threshold(p, opts.threshold());
            pt_int8_matmul_params.w_packed(p, MemorySegment.NULL);
            CudaLibrary.check(panatron_h.pt_cuda_matmul_int8(handle(), x.descriptor(), wq.descriptor(), wScale.descriptor(),
                    wOutlier == null ? MemorySegment.NULL : wOutlier.descriptor(), bias == null ? MemorySegment.NULL : bias.descriptor(),
                    y.descriptor(), p));
        }
    }

    /**
     * FP4 weight-only matmul on the GPU (W4A16 / W4A32), {@link dev.panatron.Fp4#matmul}'s
     * semantics: {@code y[m, n] = bias[n] + sum_k x[m, k] * level[code(n, k)] * scale(n, k)}. M <= 4
     * runs a GEMV that reads each code byte once and decodes in registers; larger M dequantizes to
     * x's dtype and runs cuBLASLt.
     *
     * @param x      [M, K] f32, f16 or bf16, innermost contiguous; K even
     * @param codes  [N, K/2] U8: the packed 4-bit codes (code 2i in the low nibble of byte i of
     *               a row, the layout of a U4 [N, K] host tensor), innermost contiguous
     * @param scales [N, K/group] f32 or bf16 (group 32, 64 or 128), or [N, 1] for group 0
     * @param format the code format
     * @param group  0 (per channel), 32, 64 or 128; divides K
     * @param bias   [N] f32 or null
     * @param y      [M, N] f32 or x's dtype, innermost contiguous
     * @throws IllegalArgumentException on a dtype, shape, group, stride or context mismatch
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public void fp4Matmul(DeviceTensor x, DeviceTensor codes, DeviceTensor scales, Fp4.Format format, int group, DeviceTensor bias,
                          DeviceTensor y) {
        Objects.requireNonNull(format, "format");
        requireMine("fp4Matmul x", x);
        requireMine("fp4Matmul codes", codes);
        requireMine("fp4Matmul scales", scales);
        requireMine("fp4Matmul y", y);
        requireDtype("fp4Matmul x", x, DType.F32, DType.F16, DType.BF16);
        requireDtype("fp4Matmul codes", codes, DType.U8);
        requireDtype("fp4Matmul scales", scales, DType.F32, DType.BF16);
        requireDtype("fp4Matmul y", y, x.dtype(), DType.F32);
        require2d("fp4Matmul x", x);
        require2d("fp4Matmul codes", codes);
        require2d("fp4Matmul scales", scales);
        require2d("fp4Matmul y", y);
        if (group != 0 && group != 32 && group != 64 && group != 128) {
            throw new IllegalArgumentException("fp4Matmul: group " + group + " must be 0 (per channel), 32, 64 or 128");
        }
        long m = x.dim(0), k = x.dim(1), n = codes.dim(0);
        if (k % 2 != 0 || codes.dim(1) != k / 2) throw shape("fp4Matmul: codes " + codes + " must be [N, K/2] for x " + x + " (K even)");
        if (group != 0 && k % group != 0) throw shape("fp4Matmul: K = " + k + " of x " + x + " is not a multiple of the group " + group);
        long ng = group == 0 ? 1 : k / group;
        if (scales.dim(0) != n || scales.dim(1) != ng) throw shape("fp4Matmul: scales " + scales + " must be [" + n + ", " + ng + "] for group " + group);
        if (y.dim(0) != m || y.dim(1) != n) throw shape("fp4Matmul: y " + y + " must be [" + m + ", " + n + "] for x " + x + " and codes " + codes);
        if (bias != null) { requireMine("fp4Matmul bias", bias); requireDtype("fp4Matmul bias", bias, DType.F32); requireVector("fp4Matmul bias", bias, n); }
        requireRows("fp4Matmul x", x);
        requireRows("fp4Matmul codes", codes);
        requireRows("fp4Matmul scales", scales);
        requireRows("fp4Matmul y", y);
        if (m == 0 || n == 0) return;
        if (k == 0) throw shape("fp4Matmul: K = 0 is not supported (x " + x + ")");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment cd = pt_tensor.allocate(tmp); // the same bytes as a U4 [N, K] tensor
            pt_tensor.data(cd, MemorySegment.ofAddress(codes.address()));
            pt_tensor.dtype(cd, DType.U4.code());
            pt_tensor.device(cd, panatron_h.PT_DEVICE_CUDA());
            pt_tensor.ndim(cd, 2);
            pt_tensor.shape(cd, 0, n);
            pt_tensor.shape(cd, 1, k);
            pt_tensor.stride(cd, 0, codes.strides()[0]);
            pt_tensor.stride(cd, 1, 1);
            MemorySegment p = pt_fp4_matmul_params.allocate(tmp);
            pt_fp4_matmul_params.format(p, format.ordinal());
            pt_fp4_matmul_params.group(p, group);
            pt_fp4_matmul_params.w4a4(p, 0);
            pt_fp4_matmul_params.act_shift(p, MemorySegment.NULL);
            CudaLibrary.check(panatron_h.pt_cuda_fp4_matmul(handle(), x.descriptor(), cd, scales.descriptor(),
                    bias == null ? MemorySegment.NULL : bias.descriptor(), y.descriptor(), p));
        }
    }

    // ---------------------------------------------------------------- sparse matmul (issue 7 item 6)

    /**
     * Prunes a Linear weight to 2:4 structured sparsity (or checks it is 2:4) and compresses it for
     * cuSPARSELt, with the default dense-fallback rule and the algorithm search on. See
     * {@link #sparse24(DeviceTensor, boolean, int, boolean)}.
     *
     * @param w     [N, K] bf16 or f16, innermost contiguous
     * @param prune true: keep the 2 largest |w| of each group of 4 along K; false: w must be 2:4 already
     * @return the weight, to be closed by the caller
     * @throws IllegalArgumentException on a dtype, shape or context mismatch
     * @throws IllegalStateException    when w or the context is closed
     * @throws dev.panatron.PanatronException with status UNSUPPORTED when cuSPARSELt cannot be
     *         loaded (set PANATRON_CUSPARSELT to libcusparseLt.so.0), INVALID_ARGUMENT when
     *         {@code prune} is false and w is not 2:4
     */
    public Sparse24Weight sparse24(DeviceTensor w, boolean prune) {
        return sparse24(w, prune, -1, true);
    }

    /**
     * Prunes a Linear weight to 2:4 structured sparsity (or checks it is 2:4) and compresses it for
     * cuSPARSELt ({@code pt_cuda_sparse24_create}). Pruning: each group of 4 consecutive elements of
     * a row keeps its 2 largest magnitudes (ties: the lower index), the others become 0.
     *
     * @param w         [N, K] bf16 or f16, innermost contiguous
     * @param prune     true: prune; false: w must be 2:4 already
     * @param denseMaxM calls with at most this many rows run the dense fallback in
     *                  {@link Sparse24Weight.Path#AUTO}; -1: the measured default (128)
     * @param search    true: for bf16 weights with N and K >= 1024, cusparseLtMatmulSearch picks
     *                  the algorithm on the first call of each new row count (synchronizes once;
     *                  f16 always uses the default algorithm); false: cuSPARSELt's default
     *                  algorithm (2.2x slower at 8192^3 on an H100)
     * @return the weight, to be closed by the caller (closing the context closes it)
     * @throws IllegalArgumentException on a dtype, shape or context mismatch or denseMaxM < -1
     * @throws IllegalStateException    when w or the context is closed
     * @throws dev.panatron.PanatronException with status UNSUPPORTED when cuSPARSELt cannot be loaded,
     *         INVALID_ARGUMENT when {@code prune} is false and w is not 2:4
     */
    public Sparse24Weight sparse24(DeviceTensor w, boolean prune, int denseMaxM, boolean search) {
        requireMine("sparse24 w", w);
        requireDtype("sparse24 w", w, DType.BF16, DType.F16);
        require2d("sparse24 w", w);
        requireRows("sparse24 w", w);
        if (w.dim(0) == 0 || w.dim(1) == 0) throw shape("sparse24: w " + w + " is empty");
        if (denseMaxM < -1) throw new IllegalArgumentException("sparse24: denseMaxM must be >= -1 (-1: default), got " + denseMaxM);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_cuda_sparse24_params.allocate(tmp);
            pt_cuda_sparse24_params.prune(p, prune ? 1 : 0);
            pt_cuda_sparse24_params.dense_max_m(p, denseMaxM);
            pt_cuda_sparse24_params.no_search(p, search ? 0 : 1);
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            synchronized (this) {
                CudaLibrary.check(panatron_h.pt_cuda_sparse24_create(handle(), w.descriptor(), p, out));
                MemorySegment h = out.get(ValueLayout.ADDRESS, 0);
                Sparse24Weight sw = new Sparse24Weight(this, h, w.dtype(), w.dim(0), w.dim(1),
                        denseMaxM < 0 ? panatron_h.PT_CUDA_SPARSE24_DENSE_MAX_M() : denseMaxM);
                owned.add(sw);
                return sw;
            }
        }
    }

    /**
     * {@code y = x @ w^T (+ bias)} with a 2:4 weight, f32 accumulation, the automatic path.
     *
     * @see #sparse24Matmul(Sparse24Weight, DeviceTensor, DeviceTensor, DeviceTensor, Sparse24Weight.Path)
     */
    public void sparse24Matmul(Sparse24Weight w, DeviceTensor x, DeviceTensor bias, DeviceTensor y) {
        sparse24Matmul(w, x, bias, y, Sparse24Weight.Path.AUTO);
    }

    /**
     * {@code y = x @ w^T (+ bias)} with a 2:4 weight ({@code pt_cuda_sparse24_matmul}), f32
     * accumulation; the bias is added in f32 after the product.
     *
     * @param w    a weight of this context
     * @param x    [M, K] of w's dtype, innermost contiguous
     * @param bias [N] f32 or w's dtype, or null
     * @param y    [M, N] of w's dtype, innermost contiguous
     * @param path AUTO (dense fallback for small M), SPARSE or DENSE
     * @throws IllegalArgumentException on a dtype, shape, stride or context mismatch
     * @throws IllegalStateException    when a tensor, the weight or the context is closed
     * @throws dev.panatron.PanatronException with status UNSUPPORTED when path is SPARSE and
     *         cuSPARSELt has no kernel for the shape
     */
    public void sparse24Matmul(Sparse24Weight w, DeviceTensor x, DeviceTensor bias, DeviceTensor y, Sparse24Weight.Path path) {
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(path, "path");
        if (w.context() != this) throw new IllegalArgumentException("sparse24Matmul: " + w + " belongs to another CUDA context");
        requireSparseOperands("sparse24Matmul", w.dtype(), w.rows(), w.cols(), x, bias, y, false);
        int mode = path == Sparse24Weight.Path.AUTO ? 0 : path == Sparse24Weight.Path.SPARSE ? 1 : 2;
        CudaLibrary.check(panatron_h.pt_cuda_sparse24_matmul(handle(), w.handle(), x.descriptor(),
                bias == null ? MemorySegment.NULL : bias.descriptor(), y.descriptor(), mode));
    }

    /**
     * Stores the non-zero 64 x 64 blocks of a Linear weight for {@link #blockSparseMatmul}
     * ({@code pt_cuda_bsr_create}; copies the block map to the host once, one synchronization).
     *
     * @param w [N, K] bf16 or f16, innermost contiguous
     * @return the weight, to be closed by the caller (closing the context closes it)
     * @throws IllegalArgumentException on a dtype, shape or context mismatch
     * @throws IllegalStateException    when w or the context is closed
     */
    public BlockSparseWeight blockSparse(DeviceTensor w) {
        requireMine("blockSparse w", w);
        requireDtype("blockSparse w", w, DType.BF16, DType.F16);
        require2d("blockSparse w", w);
        requireRows("blockSparse w", w);
        if (w.dim(0) == 0 || w.dim(1) == 0) throw shape("blockSparse: w " + w + " is empty");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            MemorySegment nnz = tmp.allocate(ValueLayout.JAVA_LONG), tot = tmp.allocate(ValueLayout.JAVA_LONG);
            synchronized (this) {
                CudaLibrary.check(panatron_h.pt_cuda_bsr_create(handle(), w.descriptor(), out));
                MemorySegment h = out.get(ValueLayout.ADDRESS, 0);
                CudaLibrary.check(panatron_h.pt_cuda_bsr_info(h, nnz, tot));
                BlockSparseWeight bw = new BlockSparseWeight(this, h, w.dtype(), w.dim(0), w.dim(1), nnz.get(ValueLayout.JAVA_LONG, 0),
                        tot.get(ValueLayout.JAVA_LONG, 0));
                owned.add(bw);
                return bw;
            }
        }
    }

    /**
     * {@code y = x @ w^T (+ bias)} with a block-sparse weight ({@code pt_cuda_bsr_matmul}): our
     * mma.sync kernel, all-zero blocks skipped, f32 accumulation, bias in the epilogue.
     *
     * @param w    a weight of this context
     * @param x    [M, K] of w's dtype, innermost contiguous
     * @param bias [N] f32 or w's dtype, or null
     * @param y    [M, N] of w's dtype or f32, innermost contiguous
     * @throws IllegalArgumentException on a dtype, shape, stride or context mismatch
     * @throws IllegalStateException    when a tensor, the weight or the context is closed
     */
    public void blockSparseMatmul(BlockSparseWeight w, DeviceTensor x, DeviceTensor bias, DeviceTensor y) {
        Objects.requireNonNull(w, "w");
        if (w.context() != this) throw new IllegalArgumentException("blockSparseMatmul: " + w + " belongs to another CUDA context");
        requireSparseOperands("blockSparseMatmul", w.dtype(), w.rows(), w.cols(), x, bias, y, true);
        CudaLibrary.check(panatron_h.pt_cuda_bsr_matmul(handle(), w.handle(), x.descriptor(),
                bias == null ? MemorySegment.NULL : bias.descriptor(), y.descriptor()));
    }

    private void requireSparseOperands(String fn, DType dt, long n, long k, DeviceTensor x, DeviceTensor bias, DeviceTensor y,
                                       boolean f32Out) {
        requireMine(fn + " x", x);
        requireMine(fn + " y", y);
        requireDtype(fn + " x", x, dt);
        if (f32Out) requireDtype(fn + " y", y, dt, DType.F32);
        else requireDtype(fn + " y", y, dt);
        require2d(fn + " x", x);
        require2d(fn + " y", y);
        if (x.dim(1) != k) throw shape(fn + ": x " + x + " must have K = " + k + " columns (the weight is [" + n + ", " + k + "])");
        if (y.dim(0) != x.dim(0) || y.dim(1) != n) throw shape(fn + ": y " + y + " must be [" + x.dim(0) + ", " + n + "] for x " + x);
        if (bias != null) {
            requireMine(fn + " bias", bias);
            requireDtype(fn + " bias", bias, DType.F32, dt);
            requireVector(fn + " bias", bias, n);
        }
        requireRows(fn + " x", x);
        requireRows(fn + " y", y);
    }

    /** The native handle without the open check (children's destroy calls). */
    MemorySegment rawHandle() { return handle; }

    /** Runs a child's native destroy unless the context is already closed (then it ran at close). */
    synchronized void release(AutoCloseable child, Runnable destroy) {
        if (closed) return;
        if (owned.remove(child)) destroy.run();
    }

    private static void require2d(String what, DeviceTensor t) {
        if (t.ndim() != 2) throw shape(what + ": must be 2-D, got " + t);
    }

    private static void requireVector(String what, DeviceTensor t, long len) {
        if (t.ndim() != 1 || t.dim(0) != len) throw shape(what + ": must be [" + len + "], got " + t);
    }

    /** 2-D operand of the quantized kernels: innermost contiguous, whole-element row stride >= the row. */
    private static void requireRows(String what, DeviceTensor t) {
        requireInnermostContiguous(what, t);
        requireWholeElementStrides(what, t);
        if (t.dim(0) > 1 && t.strides()[0] < t.dim(1) * t.dtype().byteSize()) {
            throw shape(what + ": row stride " + t.strides()[0] + " bytes of " + t + " is shorter than a row");
        }
    }

    private static void checkScale(String fn, float scale) {
        if (!(scale >= 0) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException(fn + ": scale " + scale + " must be a finite value >= 0 (0: 1/sqrt(D))");
        }
    }

    private void requireMine(String what, DeviceTensor t) {
        Objects.requireNonNull(t, what);
        t.checkOpen();
        handle();
        if (t.context() != this) throw new IllegalArgumentException(what + ": " + t + " belongs to another CUDA context");
    }

    private static void requireDtype(String what, DeviceTensor t, DType... allowed) {
        for (DType d : allowed) if (t.dtype() == d) return;
        throw new IllegalArgumentException(what + ": dtype " + t.dtype() + " of " + t + " not supported here (expected "
                + Arrays.toString(allowed) + ")");
    }

    private static void requireInnermostContiguous(String what, DeviceTensor t) {
        if (t.dim(-1) > 1 && t.strides()[t.ndim() - 1] != t.dtype().byteSize()) {
            throw shape(what + ": the innermost dim of " + t + " must be contiguous");
        }
    }

    private static void requireWholeElementStrides(String what, DeviceTensor t) {
        long es = t.dtype().byteSize();
        for (long s : t.strides()) {
            if (s % es != 0) throw shape(what + ": strides of " + t + " must be whole elements");
        }
        if ((t.address() % es) != 0) throw new IllegalArgumentException(what + ": " + t + " is not aligned to its element size");
    }

    /** The attention kernels move 16-byte chunks: base address and outer strides 16-byte multiples. */
    private static void requireAligned16(String what, DeviceTensor t) {
        if ((t.address() & 15) != 0) throw new IllegalArgumentException(what + ": " + t + " does not start on a 16-byte boundary");
        long[] st = t.strides();
        for (int i = 0; i < t.ndim() - 1; i++) {
            if (t.dim(i) > 1 && st[i] % 16 != 0) {
                throw shape(what + ": stride " + st[i] + " bytes of dim " + i + " of " + t + " is not a multiple of 16");
            }
        }
    }

    private static IllegalArgumentException shape(String msg) { return new IllegalArgumentException(msg); }

    /** Waits for the stream and frees everything this context owns. Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        for (AutoCloseable c : List.copyOf(owned)) {
            try {
                c.close();
            } catch (Exception e) {
                // close() of the sparse weights throws nothing checked; keep closing the rest
            }
        }
        synchronized (this) {
            if (closed) return;
            closed = true;
            arena.close();
        }
    }

    @Override
    public String toString() { return "CudaContext[cuda:" + device + (closed ? " closed" : "") + "]"; }
}
