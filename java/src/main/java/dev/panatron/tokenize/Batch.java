package dev.panatron.tokenize;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A padded batch ready for a BERT-family model: row-major {@code [size, length]} int arrays.
 * Immutable: the arrays are copied in and out.
 *
 * @param size          the number of texts B
 * @param length        the padded sequence length L (the same for every row)
 * @param ids           input ids, {@code [B, L]} row-major ({@code ids[b * L + t]})
 * @param attentionMask 1 for real tokens, 0 for padding, {@code [B, L]}
 * @param typeIds       token type ids, {@code [B, L]}
 * @param lengths       the real (unpadded) token count of each row, {@code [B]} (for packed,
 *                      variable-length execution)
 * @param encodings     the per-text encodings (padded, with offsets), {@code B} of them
 */
public record Batch(int size, int length, int[] ids, int[] attentionMask, int[] typeIds, int[] lengths,
                    List<Encoding> encodings) {

    /**
     * Checks the shapes and copies the arrays.
     *
     * @throws NullPointerException     if an argument is null
     * @throws IllegalArgumentException if a shape does not match {@code [size, length]}
     */
    public Batch {
        Objects.requireNonNull(ids, "ids");
        Objects.requireNonNull(attentionMask, "attentionMask");
        Objects.requireNonNull(typeIds, "typeIds");
        Objects.requireNonNull(lengths, "lengths");
        Objects.requireNonNull(encodings, "encodings");
        if (size < 0 || length < 0) throw new IllegalArgumentException("Batch: size " + size + " and length " + length + " must be >= 0");
        long n = (long) size * length;
        if (ids.length != n || attentionMask.length != n || typeIds.length != n || lengths.length != size
                || encodings.size() != size) {
            throw new IllegalArgumentException("Batch [" + size + ", " + length + "]: ids has " + ids.length
                    + " values, attentionMask " + attentionMask.length + ", typeIds " + typeIds.length
                    + " (expected " + n + " each), lengths " + lengths.length + " and encodings "
                    + encodings.size() + " (expected " + size + ")");
        }
        ids = ids.clone();
        attentionMask = attentionMask.clone();
        typeIds = typeIds.clone();
        lengths = lengths.clone();
        encodings = List.copyOf(encodings);
    }

    /** A copy of the ids, {@code [B, L]} row-major. */
    @Override public int[] ids() { return ids.clone(); }

    /** A copy of the attention mask, {@code [B, L]} row-major. */
    @Override public int[] attentionMask() { return attentionMask.clone(); }

    /** A copy of the token type ids, {@code [B, L]} row-major. */
    @Override public int[] typeIds() { return typeIds.clone(); }

    /** A copy of the per-row real lengths, {@code [B]}. */
    @Override public int[] lengths() { return lengths.clone(); }

    /** The ids widened to int64 (what ONNX BERT graphs take), {@code [B, L]} row-major. */
    public long[] idsAsLong() { return widen(ids); }

    /** The attention mask widened to int64, {@code [B, L]} row-major. */
    public long[] attentionMaskAsLong() { return widen(attentionMask); }

    /** The token type ids widened to int64, {@code [B, L]} row-major. */
    public long[] typeIdsAsLong() { return widen(typeIds); }

    /** The total number of real tokens in the batch. */
    public int realTokens() {
        int n = 0;
        for (int l : lengths) n += l;
        return n;
    }

    private static long[] widen(int[] a) {
        long[] r = new long[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[i];
        return r;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Batch b && size == b.size && length == b.length && Arrays.equals(ids, b.ids)
                && Arrays.equals(attentionMask, b.attentionMask) && Arrays.equals(typeIds, b.typeIds)
                && Arrays.equals(lengths, b.lengths) && encodings.equals(b.encodings);
    }

    @Override
    public int hashCode() { return Objects.hash(size, length, Arrays.hashCode(ids), Arrays.hashCode(attentionMask)); }

    @Override
    public String toString() {
        return "Batch[size=" + size + ", length=" + length + ", lengths=" + Arrays.toString(lengths) + "]";
    }
}
