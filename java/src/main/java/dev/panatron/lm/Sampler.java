package dev.panatron.lm;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from a logits row, HF's order: repetition penalty, temperature, top-k,
 * top-p, then a draw from the softmax (or argmax when greedy). All scratch is preallocated:
 * {@link #next} allocates nothing.
 */
public final class Sampler {
    private final GenerationConfig cfg;
    private final SplittableRandom rng;
    private final float[] work;
    private final long[] order;
    private final boolean[][] seen;

    /** A sampler for {@code batch} sequences over a vocabulary of {@code vocab}. */
    public Sampler(GenerationConfig cfg, int vocab, int batch) {
        this.cfg = cfg;
        this.rng = new SplittableRandom(cfg.seed());
        this.work = new float[vocab];
        this.order = new long[vocab];
        this.seen = new boolean[batch][vocab];
    }

    /** Marks {@code id} as present in sequence {@code b} (for the repetition penalty). */
    public void observe(int b, int id) { seen[b][id] = true; }

    /** The next token of sequence {@code b} given its logits (copied from {@code logits[off..off+V)}). */
    public int next(int b, java.lang.foreign.MemorySegment logits, long rowOffsetBytes) {
        int v = work.length;
        java.lang.foreign.MemorySegment.copy(logits, java.lang.foreign.ValueLayout.JAVA_FLOAT, rowOffsetBytes, work, 0, v);
        return next(b, work);
    }

    /** The next token of sequence {@code b}; {@code l} (length V) is modified. */
    public int next(int b, float[] l) {
        int v = l.length;
        float pen = cfg.repetitionPenalty();
        if (pen != 1f) {
            boolean[] s = seen[b];
            for (int i = 0; i < v; i++) if (s[i]) l[i] = l[i] > 0 ? l[i] / pen : l[i] * pen;
        }
        if (cfg.greedy()) {
            int best = 0;
            for (int i = 1; i < v; i++) if (l[i] > l[best]) best = i;
            return best;
        }
        float inv = 1f / cfg.temperature();
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            l[i] *= inv;
            max = Math.max(max, l[i]);
        }
        // sort descending by logit: key = order-preserving bits of -logit, index in the low bits
        for (int i = 0; i < v; i++) {
            int bits = Float.floatToIntBits(-l[i]);
            bits ^= (bits >> 31) & 0x7fffffff;
            order[i] = ((long) bits << 32) | i;
        }
        Arrays.sort(order, 0, v);
        int keep = v;
        if (cfg.topK() > 0 && cfg.topK() < v) {
            float kth = l[(int) order[cfg.topK() - 1]];
            keep = cfg.topK();
            while (keep < v && l[(int) order[keep]] == kth) keep++;  // ties with the k-th stay, like HF
        }
        double sum = 0;
        for (int i = 0; i < keep; i++) sum += Math.exp(l[(int) order[i]] - max);
        if (cfg.topP() < 1f) {
            double cum = 0;
            int n = 0;
            while (n < keep) {
                cum += Math.exp(l[(int) order[n]] - max) / sum;
                n++;
                if (cum >= cfg.topP()) break;
            }
            keep = n;
            sum = 0;
            for (int i = 0; i < keep; i++) sum += Math.exp(l[(int) order[i]] - max);
        }
        double r = rng.nextDouble() * sum, acc = 0;
        for (int i = 0; i < keep; i++) {
            acc += Math.exp(l[(int) order[i]] - max);
            if (r < acc) return (int) order[i];
        }
        return (int) order[keep - 1];
    }
}
