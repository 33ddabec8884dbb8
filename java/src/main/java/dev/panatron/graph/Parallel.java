package dev.panatron.graph;

import dev.panatron.Context;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/** Splits loops of the Java kernels over the context's thread count (one pool per count). */
final class Parallel {
    private Parallel() {}

    interface Range {
        void run(long lo, long hi);
    }

    interface Chunk {
        void run(int chunk, long lo, long hi);
    }

    /** Number of chunks {@link #forChunks} splits n items into. */
    static int chunks(Context ctx, long n) {
        int t = ctx == null ? 1 : ctx.threads();
        return (int) Math.max(1, Math.min(t, n));
    }

    /** Runs body(chunk, lo, hi) over [0, n) split into {@link #chunks} chunks, one task each. */
    static void forChunks(Context ctx, long n, Chunk body) {
        int chunks = chunks(ctx, n);
        if (chunks == 1) {
            body.run(0, 0, n);
            return;
        }
        ForkJoinPool pool = POOLS.computeIfAbsent(ctx.threads(), ForkJoinPool::new);
        pool.invoke(new RecursiveAction() {
            @Override
            protected void compute() {
                RecursiveAction[] parts = new RecursiveAction[chunks];
                for (int c = 0; c < chunks; c++) {
                    int cc = c;
                    long lo = n * c / chunks, hi = n * (c + 1) / chunks;
                    parts[c] = new RecursiveAction() {
                        @Override
                        protected void compute() { body.run(cc, lo, hi); }
                    };
                }
                invokeAll(parts);
            }
        });
    }

    private static final ConcurrentHashMap<Integer, ForkJoinPool> POOLS = new ConcurrentHashMap<>();

    /** Below this much work (elements touched) a loop runs on the calling thread. */
    static final long MIN_WORK = 1 << 15;

    /**
     * Runs {@code body} over [0, n) in up to {@code ctx.threads()} chunks; sequentially when ctx is
     * null, single-threaded, or {@code n * workPerItem} is small.
     */
    static void forRange(Context ctx, long n, long workPerItem, Range body) {
        int t = ctx == null ? 1 : ctx.threads();
        if (t <= 1 || n < 2 || n * Math.max(1, workPerItem) < MIN_WORK) {
            body.run(0, n);
            return;
        }
        int chunks = (int) Math.min(t, n);
        ForkJoinPool pool = POOLS.computeIfAbsent(t, ForkJoinPool::new);
        pool.invoke(new RecursiveAction() {
            @Override
            protected void compute() {
                RecursiveAction[] parts = new RecursiveAction[chunks];
                for (int c = 0; c < chunks; c++) {
                    long lo = n * c / chunks, hi = n * (c + 1) / chunks;
                    parts[c] = new RecursiveAction() {
                        @Override
                        protected void compute() { body.run(lo, hi); }
                    };
                }
                invokeAll(parts);
            }
        });
    }
}
