package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * The CUDA kernels timed through the Java API (what a Java caller gets, FFM downcalls and
 * validation included), on the shapes of native/src/cuda/bench/bench_java_torch.py, which times
 * PyTorch on the same GPU. GPU time by CUDA events around {@code reps} back-to-back calls; host
 * time per call for the small decode-shaped Linear (launch/host bound). Median of 7 repeats, with
 * min and max. Prints {@code name<TAB>median<TAB>min<TAB>max<TAB>unit} lines.
 *
 * <pre>java -cp ... dev.panatron.cuda.CudaBench [quick]</pre>
 */
public final class CudaBench {
    private static final Random RND = new Random(1);

    public static void main(String[] args) {
        boolean quick = args.length > 0 && args[0].equals("quick");
        boolean onlyMiniLm = args.length > 0 && args[0].equals("minilm");
        if (!Cuda.isAvailable()) {
            System.out.println("no CUDA device: " + Cuda.status());
            return;
        }
        System.out.println("# " + Cuda.device(0));
        try (CudaContext ctx = CudaContext.create()) {
            if (onlyMiniLm) {
                minilm(ctx, 32, 128, false);
                minilm(ctx, 128, 128, false);
                minilm(ctx, 32, 128, true);
                return;
            }
            for (int n : quick ? new int[] {4096} : new int[] {4096, 8192}) gemm(ctx, n);
            for (int m : new int[] {1, 16, 4096}) linear(ctx, m, 4096, 4096);
            attention(ctx, 4, 32, 2048, 128, false);
            attention(ctx, 4, 32, 2048, 128, true);
            if (!quick) attention(ctx, 1, 32, 8192, 128, true);
            decode(ctx, 1, 32, 32, 32768, 128);
            decode(ctx, 1, 32, 8, 32768, 128);
            minilm(ctx, 32, 128, false);
        }
    }

    /** bf16 GEMM [n, n] x [n, n]^T -> bf16 (Linear layout). */
    static void gemm(CudaContext ctx, int n) {
        try (DeviceTensor a = rand(ctx, DType.BF16, n, n); DeviceTensor b = rand(ctx, DType.BF16, n, n);
             DeviceTensor c = ctx.allocate(DType.BF16, n, n)) {
            double flops = 2.0 * n * n * n;
            double[] ms = gpuTime(ctx, 10, () -> ctx.matmul(a, b, null, c, MatmulOptions.LINEAR));
            report("gemm_bf16_" + n, flops, ms, "TFLOP/s");
        }
    }

    /** A Linear layer with bias, bf16: host microseconds per call back to back (m = 1, 16), or TFLOP/s. */
    static void linear(CudaContext ctx, int m, int k, int n) {
        try (DeviceTensor x = rand(ctx, DType.BF16, m, k); DeviceTensor w = rand(ctx, DType.BF16, n, k);
             DeviceTensor bias = rand(ctx, DType.BF16, n); DeviceTensor y = ctx.allocate(DType.BF16, m, n)) {
            if (m >= 1024) {
                double[] ms = gpuTime(ctx, 10, () -> ctx.linear(x, w, bias, y, Activation.GELU_TANH));
                report("linear_gelu_bf16_m" + m + "_" + k + "x" + n, 2.0 * m * k * n, ms, "TFLOP/s");
                return;
            }
            int calls = 2000;
            double[] us = new double[7];
            for (int w0 = 0; w0 < 200; w0++) ctx.linear(x, w, bias, y, Activation.NONE);
            ctx.synchronize();
            for (int r = 0; r < us.length; r++) {
                long t0 = System.nanoTime();
                for (int i = 0; i < calls; i++) ctx.linear(x, w, bias, y, Activation.NONE);
                ctx.synchronize();
                us[r] = (System.nanoTime() - t0) / 1e3 / calls;
            }
            Arrays.sort(us);
            line("linear_bf16_m" + m + "_" + k + "x" + n + "_us_per_call", us[3], us[0], us[6], "us");
        }
    }

    static void attention(CudaContext ctx, int b, int h, int s, int d, boolean causal) {
        try (DeviceTensor q = rand(ctx, DType.BF16, b, s, h, d); DeviceTensor k = rand(ctx, DType.BF16, b, s, h, d);
             DeviceTensor v = rand(ctx, DType.BF16, b, s, h, d); DeviceTensor o = ctx.allocate(DType.BF16, b, s, h, d)) {
            double flops = 4.0 * b * h * (double) s * s * d * (causal ? 0.5 : 1);
            double[] ms = gpuTime(ctx, 5, () -> ctx.flashAttention(q, k, v, o, null, causal, 0f));
            report("attn_fwd_bf16_B" + b + "_H" + h + "_S" + s + "_D" + d + (causal ? "_causal" : ""), flops, ms, "TFLOP/s");
        }
    }

    static void decode(CudaContext ctx, int b, int hq, int hkv, int kv, int d) {
        try (DeviceTensor q = rand(ctx, DType.BF16, b, hq, d); DeviceTensor kc = rand(ctx, DType.BF16, b, hkv, kv, d);
             DeviceTensor vc = rand(ctx, DType.BF16, b, hkv, kv, d); DeviceTensor o = ctx.allocate(DType.BF16, b, hq, d);
             Tensor hl = Tensor.ofInts(filled(b, kv), b); DeviceTensor sl = ctx.upload(hl)) {
            double bytes = 2.0 * b * hkv * (double) kv * d * 2;
            double[] ms = gpuTime(ctx, 20, () -> ctx.flashDecode(q, kc, vc, sl, o, 0f, 0));
            double[] tbs = new double[ms.length];
            for (int i = 0; i < ms.length; i++) tbs[i] = bytes / (ms[i] * 1e-3) / 1e12;
            Arrays.sort(tbs);
            line("decode_bf16_B" + b + "_Hq" + hq + "_Hkv" + hkv + "_KV" + kv + "_D" + d, tbs[tbs.length / 2], tbs[0], tbs[tbs.length - 1], "TB/s");
            Arrays.sort(ms);
            line("decode_bf16_B" + b + "_Hq" + hq + "_Hkv" + hkv + "_KV" + kv + "_D" + d + "_us", ms[ms.length / 2] * 1e3, ms[0] * 1e3, ms[ms.length - 1] * 1e3, "us");
        }
    }

    /**
     * A MiniLM-L6-shaped encoder (384 wide, 12 heads of 32, FFN 1536, 6 layers), random weights:
     * batch sequences of seq tokens, or (mixed) of lengths 16 + (37 i mod 113), packed (varlen).
     */
    static void minilm(CudaContext ctx, int batch, int seq, boolean mixed) {
        CudaBertEncoder.Config cfg = new CudaBertEncoder.Config(384, 12, 1536, 1e-12f);
        List<CudaBertEncoder.LayerWeights> layers = new ArrayList<>();
        List<Tensor> host = new ArrayList<>();
        for (int l = 0; l < 6; l++) {
            Tensor[] t = new Tensor[16];
            long[][] shapes = {{384, 384}, {384}, {384, 384}, {384}, {384, 384}, {384}, {384, 384}, {384}, {384}, {384},
                {1536, 384}, {1536}, {384, 1536}, {384}, {384}, {384}};
            for (int i = 0; i < 16; i++) {
                long n = shapes[i].length == 2 ? shapes[i][0] * shapes[i][1] : shapes[i][0];
                float amp = shapes[i].length == 2 ? (float) Math.sqrt(3.0 / shapes[i][1]) : 0.1f;
                float[] v = new float[(int) n];
                for (int j = 0; j < n; j++) v[j] = (RND.nextFloat() * 2 - 1) * amp + (i == 8 || i == 14 ? 1 : 0);
                t[i] = Tensor.of(v, shapes[i]);
                host.add(t[i]);
            }
            layers.add(new CudaBertEncoder.LayerWeights(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11],
                    t[12], t[13], t[14], t[15]));
        }
        int[] cu = new int[batch + 1];
        for (int i = 0; i < batch; i++) cu[i + 1] = cu[i] + (mixed ? 16 + (37 * i) % 113 : seq);
        String name = "minilm_l6_bf16_B" + batch + "_S" + seq + (mixed ? "_mixed" : "");
        try (CudaBertEncoder enc = new CudaBertEncoder(ctx, cfg, layers, DType.BF16);
             DeviceTensor x = rand(ctx, DType.BF16, cu[batch], 384); Tensor hcu = Tensor.ofInts(cu, cu.length);
             DeviceTensor dcu = ctx.upload(hcu)) {
            double[] ms = gpuTime(ctx, 10, () -> enc.forward(x, dcu, seq).close());
            Arrays.sort(ms);
            line(name + "_ms", ms[3], ms[0], ms[6], "ms");
            line(name + "_seq_per_s", batch / (ms[3] * 1e-3), batch / (ms[6] * 1e-3), batch / (ms[0] * 1e-3), "seq/s");
            // where the GPU time goes (events between the ops of one forward; median of 5)
            double[][] prof = new double[5][];
            for (int r = 0; r < prof.length; r++) prof[r] = enc.profile(x, dcu, seq);
            StringBuilder sb = new StringBuilder("# " + name + " GPU ms per forward by op (all layers):");
            for (int o = 0; o < CudaBertEncoder.OPS.length; o++) {
                double[] v = new double[prof.length];
                for (int r = 0; r < prof.length; r++) v[r] = prof[r][o];
                Arrays.sort(v);
                sb.append(String.format(Locale.ROOT, " %s %.3f", CudaBertEncoder.OPS[o], v[2]));
            }
            System.out.println(sb);
        } finally {
            for (Tensor t : host) t.close();
        }
    }

    private static int[] filled(int n, int v) {
        int[] a = new int[n];
        Arrays.fill(a, v);
        return a;
    }

    /** 7 repeats of: events around {@code reps} back-to-back calls; ms per call (after 3 warm-up calls). */
    private static double[] gpuTime(CudaContext ctx, int reps, Runnable op) {
        for (int i = 0; i < 3; i++) op.run();
        ctx.synchronize();
        double[] out = new double[7];
        try (CudaEvent a = ctx.newEvent(); CudaEvent e = ctx.newEvent()) {
            for (int r = 0; r < out.length; r++) {
                a.record();
                for (int i = 0; i < reps; i++) op.run();
                e.record();
                out[r] = a.elapsedMs(e) / reps;
            }
        }
        return out;
    }

    private static void report(String name, double flops, double[] ms, String unit) {
        List<Double> t = new ArrayList<>();
        for (double m : ms) t.add(flops / (m * 1e-3) / 1e12);
        t.sort(null);
        line(name, t.get(t.size() / 2), t.get(0), t.get(t.size() - 1), unit);
    }

    private static void line(String name, double med, double min, double max, String unit) {
        System.out.println(String.format(Locale.ROOT, "%s\t%.2f\t%.2f\t%.2f\t%s", name, med, min, max, unit));
    }

    /** A device tensor of uniform [-1, 1) values, filled from a 4M-element random host block. */
    static DeviceTensor rand(CudaContext ctx, DType dt, long... shape) {
        DeviceTensor t = ctx.allocate(dt, shape);
        long n = t.numel();
        int chunk = (int) Math.min(n, 1 << 22);
        float[] v = new float[chunk];
        for (int i = 0; i < chunk; i++) v[i] = RND.nextFloat() * 2 - 1;
        try (Tensor h = Tensor.of(dt, v, chunk)) {
            DeviceTensor flat = t.reshape(n);
            for (long off = 0; off < n; off += chunk) {
                long len = Math.min(chunk, n - off);
                if (len == chunk) {
                    flat.slice(0, off, len).copyFrom(h);
                } else {
                    try (Tensor part = Tensor.of(dt, Arrays.copyOf(v, (int) len), len)) {
                        flat.slice(0, off, len).copyFrom(part);
                    }
                }
            }
        }
        return t;
    }
}
