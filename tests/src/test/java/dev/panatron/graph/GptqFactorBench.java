package dev.panatron.graph;

import java.lang.management.ManagementFactory;
import java.util.Random;

/** CPU time of Gptq's Cholesky and inverse on a random [K, K] SPD matrix (not a test). */
public final class GptqFactorBench {
    public static void main(String[] args) {
        int k = args.length > 0 ? Integer.parseInt(args[0]) : 1536;
        var mx = ManagementFactory.getThreadMXBean();
        Random rnd = new Random(1);
        int m = k + 100;
        double[] x = new double[m * k];
        for (int i = 0; i < x.length; i++) x[i] = rnd.nextGaussian();
        double[] h = new double[k * k];
        for (int r = 0; r < m; r++) for (int i = 0; i < k; i++) { double xi = x[r * k + i]; for (int j = 0; j < k; j++) h[i * k + j] += xi * x[r * k + j]; }
        for (int rep = 0; rep < 4; rep++) {
            double[] a = h.clone();
            long c0 = mx.getCurrentThreadCpuTime(), w0 = System.nanoTime();
            double[] t = Gptq.cholesky(a, k);
            long c1 = mx.getCurrentThreadCpuTime(), w1 = System.nanoTime();
            double[] u = Gptq.reversedLowerInverse(t, k);
            long c2 = mx.getCurrentThreadCpuTime(), w2 = System.nanoTime();
            System.out.printf("k=%d cholesky cpu %.3f wall %.3f | inverse (parallel) caller cpu %.3f wall %.3f%n", k, (c1 - c0) / 1e9, (w1 - w0) / 1e9, (c2 - c1) / 1e9, (w2 - w1) / 1e9);
        }
    }
}
