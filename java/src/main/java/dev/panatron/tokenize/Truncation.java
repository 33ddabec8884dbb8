package dev.panatron.tokenize;

import java.util.Objects;

/**
 * How encodings are truncated, as the "truncation" section of a tokenizer.json says. The special
 * tokens the post-processor adds ([CLS], [SEP]) count toward {@code maxLength} and are never cut.
 *
 * @param maxLength the maximum number of tokens, special tokens included (e.g. 128, 256, 512)
 * @param strategy  which text of a pair loses tokens first
 * @param direction {@link Direction#RIGHT} keeps the beginning, {@link Direction#LEFT} the end
 * @param stride    kept for round-tripping the file; overflowing windows are not produced
 */
public record Truncation(int maxLength, Strategy strategy, Direction direction, int stride) {

    /** HF's truncation strategies. */
    public enum Strategy { LONGEST_FIRST, ONLY_FIRST, ONLY_SECOND }

    /** Which end of the sequence is cut. */
    public enum Direction { LEFT, RIGHT }

    /**
     * Validates the parameters.
     *
     * @throws NullPointerException     if strategy or direction is null
     * @throws IllegalArgumentException if maxLength &lt; 1 or stride &lt; 0
     */
    public Truncation {
        Objects.requireNonNull(strategy, "strategy");
        Objects.requireNonNull(direction, "direction");
        if (maxLength < 1) throw new IllegalArgumentException("Truncation: maxLength must be >= 1, got " + maxLength);
        if (stride < 0) throw new IllegalArgumentException("Truncation: stride must be >= 0, got " + stride);
    }

    /** Longest-first, cutting at the end, no stride: HF's default with this {@code maxLength}. */
    public static Truncation of(int maxLength) {
        return new Truncation(maxLength, Strategy.LONGEST_FIRST, Direction.RIGHT, 0);
    }
}
