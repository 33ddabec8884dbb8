package dev.panatron.cli;

import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.QuantKernels;
import dev.panatron.Tensor;
import dev.panatron.cuda.CudaContext;
import dev.panatron.cuda.CudaDecoderOps;
import dev.panatron.cuda.DeviceTensor;

import java.io.PrintStream;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The GPU rows of {@code panatron bench kernels --device cuda} (issue 7's shapes), each kernel
 * timed with CUDA events next to a baseline run on the same device in the same process
 * ({@link BenchKernels.Timer}, samples interleaved):
 * <ul>
 *   <li>{@code flash_attn}: flash attention forward, bf16, [B, S, H, D] = 4x2048x32x128 causal and
 *       not, 1x8192x32x128 causal; baseline: attention materialized with cuBLASLt (batched
 *       {@code Q K^T} into a bf16 [B*H, S, S] score tensor, batched {@code P V}): once the two
 *       GEMMs alone (a lower bound of any materialized attention), once with a row pass over the
 *       scores between them. There is no GPU softmax kernel in the library: the row pass is the
 *       row LayerNorm kernel (a warp per row, scalar bf16 loads; it reads and writes the scores
 *       with two row reductions as a softmax does, probably slower than a tuned softmax, so that
 *       row overstates the baseline; its values are not a softmax's).
 *       GOPS = 4 B H Sq Sk D (halved when causal; the baseline computes the full square).</li>
 *   <li>{@code flash_decode}: split-KV decode attention against a 32k-token KV cache (B1 H32 and
 *       B8 Hq32 Hkv8, D 128); GB/s = K and V bytes read / t; baseline: a device-to-device copy
 *       moving the same bytes (read + write), so the ratio is the fraction of the copy bandwidth.</li>
 *   <li>{@code s8_gemm}: s8 x s8 -> s32 (cuBLASLt IMMA), 4096^3 and 8192^3, vs cuBLASLt bf16.</li>
 *   <li>{@code w8a8}: the W8A8 linear (bf16 activations quantized per row inside the call,
 *       bf16 out) at the same shapes, vs cuBLASLt bf16.</li>
 *   <li>{@code fp4_gemv}: W4A16 (E2M1 codes, bf16 group-64 scales) GEMV 1x8192x8192 vs cuBLASLt
 *       bf16 at M = 1 and vs the library's bf16 GEMV kernel; and as GB/s of weight bytes (codes +
 *       scales) against the device copy of the same bytes.</li>
 * </ul>
 * Inputs are random (a 1 Mi-element random block repeated), so the timings do not depend on
 * zero-filled memory; the results are not checked here (the tests do that).
 */
final class BenchKernelsCuda {
    private BenchKernelsCuda() {}

    /** Kernel names, in output order. */
    static final List<String> KERNELS = List.of("flash_attn", "flash_decode", "s8_gemm", "w8a8", "fp4_gemv");

    private static final int BLOCK = 1 << 20;

    static List<BenchKernels.Row> rows(CudaContext ctx, Set<String> want, boolean quick, BenchKernels.Timer timer, PrintStream err) {
        List<BenchKernels.Row> rows = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(42);
        if (want.contains("flash_attn")) {
            long[][] shapes = quick ? new long[][] {{1, 256, 4, 128, 0}, {1, 256, 4, 128, 1}}
                    : new long[][] {{4, 2048, 32, 128, 0}, {4, 2048, 32, 128, 1}, {1, 8192, 32, 128, 1}};
            for (long[] sh : shapes) guard(err, "flash_attn", () -> rows.addAll(attention(ctx, timer, rnd, sh[0], sh[1], sh[2], sh[3], sh[4] != 0)));
        }
        if (want.contains("flash_decode")) {
            long[][] shapes = quick ? new long[][] {{1, 4, 4, 1024, 128}} : new long[][] {{1, 32, 32, 32768, 128}, {8, 32, 8, 32768, 128}};
            for (long[] sh : shapes) guard(err, "flash_decode", () -> rows.add(decode(ctx, timer, rnd, sh[0], sh[1], sh[2], sh[3], sh[4])));
        }
        long[] gemm = quick ? new long[] {256} : new long[] {4096, 8192};
        if (want.contains("s8_gemm") || want.contains("w8a8")) {
            for (long n : gemm) guard(err, "s8_gemm/w8a8", () -> {
                List<DeviceTensor> own = new ArrayList<>();
                try {
                    DeviceTensor a8 = fill(ctx, own, rnd, DType.I8, n, n), b8 = fill(ctx, own, rnd, DType.I8, n, n);
                    DeviceTensor c32 = own(own, ctx.allocate(DType.I32, n, n));
                    DeviceTensor a = fill(ctx, own, rnd, DType.BF16, n, n), b = fill(ctx, own, rnd, DType.BF16, n, n);
                    DeviceTensor c = own(own, ctx.allocate(DType.BF16, n, n)), c2 = own(own, ctx.allocate(DType.BF16, n, n));
                    DeviceTensor ws = fill(ctx, own, rnd, DType.F32, n);
                    Runnable base = () -> ctx.linear(a, b, null, c, Activation.NONE);
                    if (want.contains("s8_gemm")) {
                        rows.add(timer.row("s8_gemm", "s8 -> s32", n, n, n, 0, 0, "cublaslt_bf16",
                                () -> ctx.matmulS8(a8, b8, null, null, null, c32, Activation.NONE), base));
                    }
                    if (want.contains("w8a8")) {
                        rows.add(timer.row("w8a8", "bf16 x s8 w", n, n, n, 0, 0, "cublaslt_bf16",
                                () -> ctx.matmulInt8(a, b8, ws, null, null, c2, QuantKernels.Int8Options.W8A8), base));
                    }
                } finally {
                    close(own);
                }
            });
        }
        if (want.contains("fp4_gemv")) guard(err, "fp4_gemv", () -> {
            long n = quick ? 1024 : 8192, k = n;
            int group = 64;
            List<DeviceTensor> own = new ArrayList<>();
            try {
                DeviceTensor x = fill(ctx, own, rnd, DType.BF16, 1, k), w = fill(ctx, own, rnd, DType.BF16, n, k);
                DeviceTensor codes = fill(ctx, own, rnd, DType.U8, n, k / 2), sc = fill(ctx, own, rnd, DType.BF16, n, k / group);
                DeviceTensor y = own(own, ctx.allocate(DType.BF16, 1, n)), yb = own(own, ctx.allocate(DType.BF16, 1, n));
                Runnable ours = () -> ctx.fp4Matmul(x, codes, sc, Fp4.Format.E2M1, group, null, y);
                String dt = "fp4 e2m1 g64";
                rows.add(timer.row("fp4_gemv", dt, 1, k, n, 0, 0, "cublaslt_bf16", ours, () -> ctx.linear(x, w, null, yb, Activation.NONE)));
                rows.add(timer.row("fp4_gemv", dt, 1, k, n, 0, 0, "own_bf16_gemv", ours,
                        () -> CudaDecoderOps.gemv(ctx, x, w, null, yb, Activation.NONE)));
                long bytes = n * k / 2 + n * (k / group) * 2;
                DeviceTensor src = own(own, ctx.allocate(DType.U8, bytes / 2)), dst = own(own, ctx.allocate(DType.U8, bytes / 2));
                src.fillBytes(1);
                rows.add(timer.row("fp4_gemv", dt, "1x" + k + "x" + n, bytes, "GB/s", "device_copy(r+w)", ours, () -> dst.copyFrom(src)));
            } finally {
                close(own);
            }
        });
        return rows;
    }

    /** Runs one group of rows; a failure is reported on stderr and the other groups still run. */
    private static void guard(PrintStream err, String what, Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            err.println("panatron bench kernels: " + what + " failed: " + Main.oneLine(e));
        }
    }

    private static List<BenchKernels.Row> attention(CudaContext ctx, BenchKernels.Timer timer, SplittableRandom rnd, long b, long s, long h, long d,
                                              boolean causal) {
        List<DeviceTensor> own = new ArrayList<>();
        try {
            DeviceTensor q = fill(ctx, own, rnd, DType.BF16, b, s, h, d), k = fill(ctx, own, rnd, DType.BF16, b, s, h, d);
            DeviceTensor v = fill(ctx, own, rnd, DType.BF16, b, s, h, d), o = own(own, ctx.allocate(DType.BF16, b, s, h, d));
            // the baseline's operands in [B*H, S, D] (what a materialized path multiplies)
            DeviceTensor qh = fill(ctx, own, rnd, DType.BF16, b * h, s, d), kh = fill(ctx, own, rnd, DType.BF16, b * h, s, d);
            DeviceTensor vh = fill(ctx, own, rnd, DType.BF16, b * h, s, d), oh = own(own, ctx.allocate(DType.BF16, b * h, s, d));
            DeviceTensor scores = own(own, ctx.allocate(DType.BF16, b * h, s, s));
            DeviceTensor rows2d = scores.reshape(b * h * s, s);
            DeviceTensor gamma = fill(ctx, own, rnd, DType.F32, s);
            float scale = (float) (1 / Math.sqrt(d));
            MatmulOptions qk = new MatmulOptions(true, Activation.NONE, scale, 0f);
            Runnable gemms = () -> {
                ctx.matmul(qh, kh, null, scores, qk);
                ctx.matmul(scores, vh, oh);
            };
            Runnable withRowPass = () -> {
                ctx.matmul(qh, kh, null, scores, qk);
                ctx.layerNorm(rows2d, gamma, null, 0f, rows2d);
                ctx.matmul(scores, vh, oh);
            };
            double ops = 4.0 * b * h * s * s * d * (causal ? 0.5 : 1);
            Runnable ours = () -> ctx.flashAttention(q, k, v, o, null, causal, 0f);
            String dt = "bf16" + (causal ? " causal" : ""), shape = "B" + b + " S" + s + " H" + h + " D" + d;
            return List.of(timer.row("flash_attn", dt, shape, ops, "GOPS", "cublaslt_qk+pv", ours, gemms),
                    timer.row("flash_attn", dt, shape, ops, "GOPS", "cublaslt_qk+rowpass+pv", ours, withRowPass));
        } finally {
            close(own);
        }
    }

    private static BenchKernels.Row decode(CudaContext ctx, BenchKernels.Timer timer, SplittableRandom rnd, long b, long hq, long hkv, long kv,
                                           long d) {
        List<DeviceTensor> own = new ArrayList<>();
        try {
            DeviceTensor q = fill(ctx, own, rnd, DType.BF16, b, hq, d), o = own(own, ctx.allocate(DType.BF16, b, hq, d));
            DeviceTensor kc = fill(ctx, own, rnd, DType.BF16, b, hkv, kv, d), vc = fill(ctx, own, rnd, DType.BF16, b, hkv, kv, d);
            int[] lens = new int[(int) b];
            java.util.Arrays.fill(lens, (int) kv);
            DeviceTensor seq;
            try (Tensor t = Tensor.ofInts(lens, b)) {
                seq = own(own, ctx.upload(t));
            }
            long bytes = 2 * b * hkv * kv * d * 2;
            DeviceTensor src = own(own, ctx.allocate(DType.U8, bytes / 2)), dst = own(own, ctx.allocate(DType.U8, bytes / 2));
            src.fillBytes(1);
            return timer.row("flash_decode", "bf16", "B" + b + " Hq" + hq + " Hkv" + hkv + " KV" + kv + " D" + d, bytes, "GB/s",
                    "device_copy(r+w)", () -> ctx.flashDecode(q, kc, vc, seq, o, 0f, 0), () -> dst.copyFrom(src));
        } finally {
            close(own);
        }
    }

    private static DeviceTensor own(List<DeviceTensor> own, DeviceTensor t) {
        own.add(t);
        return t;
    }

    private static void close(List<DeviceTensor> own) {
        for (DeviceTensor t : own) t.close();
    }

    /** A new device tensor filled with random values ([-1, 1) for floats, any byte for I8/U8), a 1 Mi-element block repeated. */
    private static DeviceTensor fill(CudaContext ctx, List<DeviceTensor> own, SplittableRandom rnd, DType dt, long... shape) {
        DeviceTensor t = own(own, ctx.allocate(dt, shape));
        long n = t.numel();
        DeviceTensor flat = t.reshape(n);
        Tensor block = null;
        try {
            for (long off = 0; off < n; off += BLOCK) {
                long len = Math.min(BLOCK, n - off);
                if (block == null || block.numel() != len) {
                    if (block != null) block.close();
                    block = random(rnd, dt, len);
                }
                flat.slice(0, off, len).copyFrom(block);
            }
            ctx.synchronize();
        } finally {
            if (block != null) block.close();
        }
        return t;
    }

    private static Tensor random(SplittableRandom rnd, DType dt, long len) {
        if (dt == DType.I8 || dt == DType.U8) {
            Tensor t = Tensor.allocate(dt, len);
            for (long i = 0; i < len; i++) t.segment().set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt(256));
            return t;
        }
        float[] v = new float[(int) len];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextDouble() * 2 - 1);
        return Tensor.of(dt, v, len);
    }
}
