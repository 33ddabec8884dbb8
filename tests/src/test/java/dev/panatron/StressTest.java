package dev.panatron;

import dev.panatron.Kernels.RopeOptions;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static dev.panatron.ElemTestSupport.*;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Several Java threads call several kernels at once on ONE shared Context (with 2 native
 * threads per call, so OpenMP teams nest under concurrent callers) and check every result
 * against a plain-Java reference. Failing native calls are mixed in to check that error
 * messages are per thread.
 */
class StressTest {
    static final long SEED = System.nanoTime();

    @Test
    void concurrentKernelsOnASharedContext() throws Exception {
        int threads = 6, iterations = 40;
        try (Context ctx = Context.create(2)) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                List<Future<Integer>> jobs = new ArrayList<>();
                for (int w = 0; w < threads; w++) {
                    final int worker = w;
                    jobs.add(pool.submit(() -> work(ctx, worker, iterations)));
                }
                int checks = 0;
                for (Future<Integer> f : jobs) checks += f.get(120, TimeUnit.SECONDS);
                assertTrue(checks == threads * iterations, "every iteration checked: " + checks);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    static int work(Context ctx, int worker, int iterations) {
        Random r = new Random(SEED + worker);
        int done = 0;
        for (int it = 0; it < iterations; it++) {
            int rows = 1 + r.nextInt(70), cols = SIZES[r.nextInt(SIZES.length)];
            String what = "worker " + worker + " iteration " + it;
            switch ((worker + it) % 5) {
                case 0 -> { // layerNorm, f32 -> bf16
                    float[] gv = rand(r, cols, 0.5, 1.5), bv = rand(r, cols, -1, 1);
                    try (Tensor x = Tensor.of(rand(r, rows * cols, -3, 3), rows, cols); Tensor g = Tensor.of(gv, cols);
                         Tensor b = Tensor.of(bv, cols); Tensor o = poisoned(DType.BF16, rows, cols)) {
                        Kernels.layerNorm(ctx, x, g, b, 1e-5f, o);
                        assertClose(o.toFloatArray(), NormTest.refNorm(x.toFloatArray(), rows, cols, gv, bv, 1e-5, false), 2e-5,
                                rtol(DType.BF16, 3e-6), SEED, what + " layerNorm");
                    }
                }
                case 1 -> { // gelu in place
                    try (Tensor x = Tensor.of(rand(r, rows * cols, -6, 6), rows, cols)) {
                        float[] xv = x.toFloatArray();
                        Kernels.gelu(ctx, x, x);
                        double[] want = new double[xv.length];
                        for (int i = 0; i < xv.length; i++) want[i] = gelu(xv[i]);
                        assertClose(x.toFloatArray(), want, 1e-7, 2e-6, SEED, what + " gelu");
                    }
                }
                case 2 -> { // softmax bf16 -> f32
                    try (Tensor x = tensor(DType.BF16, rand(r, rows * cols, -8, 8), rows, cols); Tensor o = poisoned(DType.F32, rows, cols)) {
                        Kernels.softmax(ctx, x, 0.5f, o);
                        assertClose(o.toFloatArray(), NormTest.refSoftmax(x.toFloatArray(), rows, cols, 0.5), 1e-9, 5e-6, SEED,
                                what + " softmax");
                    }
                }
                case 3 -> { // rope
                    int t = 1 + r.nextInt(20), h = 1 + r.nextInt(4), d = 64;
                    int[] pos = new int[t];
                    for (int i = 0; i < t; i++) pos[i] = r.nextInt(10000);
                    try (Tensor x = Tensor.of(rand(r, t * h * d, -1, 1), t, h, d); Tensor p = Tensor.ofInts(pos, t);
                         Tensor o = poisoned(DType.F32, t, h, d)) {
                        Kernels.rope(ctx, x, p, RopeOptions.DEFAULT, o);
                        assertClose(o.toFloatArray(), RopeTest.ref(x.toFloatArray(), pos, false, 1, t, h, d, RopeOptions.DEFAULT),
                                1.5e-6, 1e-6, SEED, what + " rope");
                    }
                }
                default -> { // embedding, with a rejected native call first (its message must stay on this thread)
                    int v = 50;
                    int[] idv = new int[rows];
                    for (int i = 0; i < rows; i++) idv[i] = r.nextInt(v);
                    try (Tensor table = Tensor.of(rand(r, v * cols, -1, 1), v, cols); Tensor ids = Tensor.ofInts(idv, rows);
                         Tensor o = poisoned(DType.F32, rows, cols)) {
                        // straight to native, past the Java checks: the message is per thread
                        int st = dev.panatron.ffm.panatron_h.pt_softmax(ctx.handle(), o.descriptor(), Float.NaN, o.descriptor());
                        String msg = Native.lastError();
                        if (st != Status.INVALID_ARGUMENT.code() || !msg.contains("scale")) {
                            throw new AssertionError(what + ": native NaN scale gave status " + st + " '" + msg + "'");
                        }
                        Kernels.embedding(ctx, table, ids, o);
                        if (!Native.lastError().isEmpty()) throw new AssertionError(what + ": stale message '" + Native.lastError() + "'");
                        float[] tv = table.toFloatArray();
                        double[] want = new double[rows * cols];
                        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) want[i * cols + j] = tv[idv[i] * cols + j];
                        assertClose(o.toFloatArray(), want, 0, 0, SEED, what + " embedding");
                    }
                }
            }
            done++;
        }
        return done;
    }
}
