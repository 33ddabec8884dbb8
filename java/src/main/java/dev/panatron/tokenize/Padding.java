package dev.panatron.tokenize;

import java.util.Objects;

/**
 * How encodings are padded, as the "padding" section of a tokenizer.json says.
 *
 * @param strategy        {@link Strategy#LONGEST} (to the longest in the batch) or {@link Strategy#FIXED}
 * @param length          the fixed length for {@link Strategy#FIXED} (ignored for LONGEST); longer
 *                        encodings are not cut (that is truncation's job)
 * @param direction       where the padding goes
 * @param padToMultipleOf if &gt; 0, the padded length is rounded up to a multiple of it
 * @param padId           the id of the padding token
 * @param padTypeId       the token type id of padding
 * @param padToken        the padding token's text (for display)
 */
public record Padding(Strategy strategy, int length, Direction direction, int padToMultipleOf, int padId,
                      int padTypeId, String padToken) {

    /** Pad to the longest encoding of the batch, or to a fixed length. */
    public enum Strategy { LONGEST, FIXED }

    /** Where padding tokens go. */
    public enum Direction { LEFT, RIGHT }

    /**
     * Validates the parameters.
     *
     * @throws NullPointerException     if strategy, direction or padToken is null
     * @throws IllegalArgumentException if a length or id is negative
     */
    public Padding {
        Objects.requireNonNull(strategy, "strategy");
        Objects.requireNonNull(direction, "direction");
        Objects.requireNonNull(padToken, "padToken");
        if (strategy == Strategy.FIXED && length < 1) {
            throw new IllegalArgumentException("Padding: fixed length must be >= 1, got " + length);
        }
        if (padToMultipleOf < 0) throw new IllegalArgumentException("Padding: padToMultipleOf must be >= 0, got " + padToMultipleOf);
        if (padId < 0) throw new IllegalArgumentException("Padding: padId must be >= 0, got " + padId);
        if (padTypeId < 0) throw new IllegalArgumentException("Padding: padTypeId must be >= 0, got " + padTypeId);
    }

    /** The length a batch whose longest encoding has {@code longest} tokens is padded to. */
    public int targetLength(int longest) {
        int n = strategy == Strategy.FIXED ? length : longest;
        if (padToMultipleOf > 0 && n % padToMultipleOf != 0) n += padToMultipleOf - n % padToMultipleOf;
        return n;
    }
}
