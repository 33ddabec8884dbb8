package dev.panatron.tokenize;

import java.util.Arrays;
import java.util.Objects;

/**
 * One encoded text (or text pair): what a BERT-family model takes as input, plus where each token
 * came from. Immutable: the arrays are copied in and out.
 *
 * @param ids           token ids, special tokens and padding included, length {@code n}
 * @param attentionMask 1 for real tokens, 0 for padding, length {@code n}
 * @param typeIds       segment (token type) ids: 0 for the first text, 1 for the second of a pair
 *                      (as the tokenizer's post-processor says), length {@code n}
 * @param offsets       {@code 2 * n} values: for token {@code i}, {@code offsets[2i]} and
 *                      {@code offsets[2i + 1]} are its [start, end) in UTF-16 chars of the text it
 *                      came from (the first or the second of a pair); (0, 0) for special tokens and
 *                      padding
 */
public record Encoding(int[] ids, int[] attentionMask, int[] typeIds, int[] offsets) {

    /**
     * Checks the lengths and copies the arrays.
     *
     * @throws NullPointerException     if an array is null
     * @throws IllegalArgumentException if the arrays do not have lengths n, n, n and 2n
     */
    public Encoding {
        Objects.requireNonNull(ids, "ids");
        Objects.requireNonNull(attentionMask, "attentionMask");
        Objects.requireNonNull(typeIds, "typeIds");
        Objects.requireNonNull(offsets, "offsets");
        int n = ids.length;
        if (attentionMask.length != n || typeIds.length != n || offsets.length != 2 * n) {
            throw new IllegalArgumentException("Encoding: ids has " + n + " tokens but attentionMask has "
                    + attentionMask.length + ", typeIds " + typeIds.length + " and offsets " + offsets.length
                    + " values (expected " + n + ", " + n + ", " + (2 * n) + ")");
        }
        ids = ids.clone();
        attentionMask = attentionMask.clone();
        typeIds = typeIds.clone();
        offsets = offsets.clone();
    }

    /** The number of tokens, padding included. */
    public int length() { return ids.length; }

    /** The number of real (unpadded) tokens: the sum of the attention mask. */
    public int realLength() {
        int n = 0;
        for (int m : attentionMask) n += m;
        return n;
    }

    /** A copy of the token ids. */
    @Override public int[] ids() { return ids.clone(); }

    /** A copy of the attention mask. */
    @Override public int[] attentionMask() { return attentionMask.clone(); }

    /** A copy of the token type ids. */
    @Override public int[] typeIds() { return typeIds.clone(); }

    /** A copy of the offsets, 2 values per token. */
    @Override public int[] offsets() { return offsets.clone(); }

    /**
     * The id of token {@code i}.
     *
     * @throws IndexOutOfBoundsException if {@code i} is not in [0, length())
     */
    public int id(int i) { return ids[i]; }

    /**
     * The start offset of token {@code i} (UTF-16 index into its text).
     *
     * @throws IndexOutOfBoundsException if {@code i} is not in [0, length())
     */
    public int offsetStart(int i) { Objects.checkIndex(i, ids.length); return offsets[2 * i]; }

    /**
     * The end offset (exclusive) of token {@code i}.
     *
     * @throws IndexOutOfBoundsException if {@code i} is not in [0, length())
     */
    public int offsetEnd(int i) { Objects.checkIndex(i, ids.length); return offsets[2 * i + 1]; }

    // package-private, no copy: for the batch builder
    int[] idsRaw() { return ids; }
    int[] maskRaw() { return attentionMask; }
    int[] typesRaw() { return typeIds; }

    @Override
    public boolean equals(Object o) {
        return o instanceof Encoding e && Arrays.equals(ids, e.ids) && Arrays.equals(attentionMask, e.attentionMask)
                && Arrays.equals(typeIds, e.typeIds) && Arrays.equals(offsets, e.offsets);
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(ids), Arrays.hashCode(attentionMask), Arrays.hashCode(typeIds),
                Arrays.hashCode(offsets));
    }

    @Override
    public String toString() {
        return "Encoding[ids=" + Arrays.toString(ids) + ", attentionMask=" + Arrays.toString(attentionMask)
                + ", typeIds=" + Arrays.toString(typeIds) + ", offsets=" + Arrays.toString(offsets) + "]";
    }
}
