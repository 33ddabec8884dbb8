package dev.panatron.lm;

/**
 * How to pick tokens.
 *
 * @param maxNewTokens      tokens to generate per prompt (fewer when a stop token comes)
 * @param temperature       0 = greedy (argmax), else logits / temperature before sampling
 * @param topK              keep the k most likely tokens (0 = all)
 * @param topP              keep the smallest set of tokens whose probability reaches p (1 = all)
 * @param repetitionPenalty HF's CTRL penalty on tokens already in the sequence (1 = none)
 * @param seed              the sampling RNG's seed: same seed, same tokens
 * @param stopTokens        ids that end a sequence (the stop token is kept in the output)
 */
public record GenerationConfig(int maxNewTokens, float temperature, int topK, float topP, float repetitionPenalty, long seed,
                               int[] stopTokens) {
    /**
     * @throws IllegalArgumentException for maxNewTokens < 1, a negative or non-finite
     *                                  temperature, topK < 0, topP outside (0, 1], a penalty <= 0
     */
    public GenerationConfig {
        if (maxNewTokens < 1) throw new IllegalArgumentException("maxNewTokens " + maxNewTokens + " must be >= 1");
        if (!(temperature >= 0) || !Float.isFinite(temperature)) throw new IllegalArgumentException("temperature " + temperature + " must be >= 0 (0 = greedy)");
        if (topK < 0) throw new IllegalArgumentException("topK " + topK + " must be >= 0 (0 = off)");
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("topP " + topP + " must be in (0, 1]");
        if (!(repetitionPenalty > 0) || !Float.isFinite(repetitionPenalty)) throw new IllegalArgumentException("repetitionPenalty " + repetitionPenalty + " must be > 0");
        stopTokens = stopTokens == null ? new int[0] : stopTokens.clone();
    }

    /** Greedy decoding of up to {@code n} tokens, no stop tokens. */
    public static GenerationConfig greedy(int n) { return new GenerationConfig(n, 0f, 0, 1f, 1f, 0L, null); }

    /** Sampling at {@code temperature} with top-k/top-p and a seed. */
    public static GenerationConfig sample(int n, float temperature, int topK, float topP, long seed) {
        return new GenerationConfig(n, temperature, topK, topP, 1f, seed, null);
    }

    public GenerationConfig withStopTokens(int... ids) { return new GenerationConfig(maxNewTokens, temperature, topK, topP, repetitionPenalty, seed, ids); }

    public GenerationConfig withRepetitionPenalty(float p) { return new GenerationConfig(maxNewTokens, temperature, topK, topP, p, seed, stopTokens); }

    public boolean greedy() { return temperature == 0f; }

    @Override public int[] stopTokens() { return stopTokens.clone(); }
}
