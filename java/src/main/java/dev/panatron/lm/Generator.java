package dev.panatron.lm;

import dev.panatron.Tensor;

import java.util.Arrays;

/**
 * Generates continuations of one or several prompts at once: each prompt is prefilled into its
 * own slot of one {@link Session}, then every decode step advances all sequences together
 * (one batched forward pass per token). Sequences that stopped keep being fed (their output is
 * ignored) until all stop or reach maxNewTokens.
 */
public final class Generator {
    private final DecoderModel model;

    public Generator(DecoderModel model) { this.model = model; }

    /**
     * @param prompts  token ids per sequence (at least one id each)
     * @param listener streaming callback, or null
     * @return the generated ids per sequence (prompt excluded; ends with the stop token if one came)
     * @throws IllegalArgumentException for an empty prompt, an id outside the vocabulary, or a
     *                                  prompt plus maxNewTokens longer than the context window
     */
    public int[][] generate(int[][] prompts, GenerationConfig cfg, TokenListener listener) {
        int n = prompts.length;
        if (n < 1) throw new IllegalArgumentException("no prompts");
        int window = model.config().maxPositions();
        int longest = 0;
        for (int[] p : prompts) {
            if (p.length == 0) throw new IllegalArgumentException("empty prompt: at least one token id is needed");
            if (p.length > window) throw new IllegalArgumentException("prompt of " + p.length + " tokens is longer than the context window of " + window + " tokens");
            longest = Math.max(longest, p.length);
        }
        if (longest + cfg.maxNewTokens() - 1 > window) {
            throw new IllegalArgumentException("prompt of " + longest + " tokens + " + cfg.maxNewTokens() + " new tokens exceeds the context window of " + window + " tokens");
        }
        int v = model.config().vocab();
        int[] stops = cfg.stopTokens();
        Sampler sampler = new Sampler(cfg, v, n);
        int[][] out = new int[n][cfg.maxNewTokens()];
        int[] count = new int[n];
        boolean[] done = new boolean[n];
        int[] step = new int[n];
        try (Session s = model.newSession(n, Math.max(1, Math.min(window, longest + cfg.maxNewTokens() - 1)))) {
            for (int b = 0; b < n; b++) {
                for (int id : prompts[b]) if (id >= 0 && id < v) sampler.observe(b, id);
                Tensor logits = s.prefill(b, prompts[b]);
                int t = sampler.next(b, logits.segment(), 0);
                emit(b, t, out, count, done, stops, cfg, sampler, listener);
                step[b] = t;
            }
            long rowBytes = 4L * v;
            while (true) {
                boolean all = true;
                for (int b = 0; b < n; b++) all &= done[b];
                if (all) break;
                Tensor logits = s.decode(step);
                for (int b = 0; b < n; b++) {
                    if (done[b]) continue;
                    int t = sampler.next(b, logits.segment(), b * rowBytes);
                    emit(b, t, out, count, done, stops, cfg, sampler, listener);
                    step[b] = t;
                }
            }
        }
        int[][] r = new int[n][];
        for (int b = 0; b < n; b++) r[b] = Arrays.copyOf(out[b], count[b]);
        return r;
    }

    /** Records token t of sequence b, observes it for the sampler, marks a stop, tells the listener (shared with {@link CudaDecoder}). */
    static void emit(int b, int t, int[][] out, int[] count, boolean[] done, int[] stops, GenerationConfig cfg, Sampler sampler,
                             TokenListener listener) {
        out[b][count[b]++] = t;
        sampler.observe(b, t);
        boolean stop = count[b] >= cfg.maxNewTokens();
        for (int st : stops) stop |= st == t;
        done[b] = stop;
        if (listener != null) listener.onToken(b, t, stop);
    }
}
