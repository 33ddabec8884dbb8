package dev.panatron.tokenize;

import dev.panatron.tokenize.AddedTokens.IntList;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What every tokenizer does after its model: truncation (HF's {@code truncate_encodings}), the
 * post-processor template ([CLS] A [SEP], &lt;|begin_of_text|&gt; A, ...), padding, and the
 * rectangular batch. Shared by {@link WordPieceTokenizer} and {@link BpeTokenizer}.
 */
final class Assembly {
    private Assembly() {}

    /** The post-processor as a list of pieces (HF TemplateProcessing; Bert/RobertaProcessing map onto it). */
    record Template(List<Piece> pieces, int specialCount) {
        /** A special token run ({@code special}, its ids) or a sequence (0 = A, 1 = B), with its type id. */
        record Piece(boolean special, int[] ids, int sequence, int typeId) {}

        static Template of(List<Piece> pieces) {
            int n = 0;
            for (Piece p : pieces) if (p.special()) n += p.ids().length;
            return new Template(List.copyOf(pieces), n);
        }

        /** $A alone: no post-processor. */
        static final Template SINGLE_PLAIN = of(List.of(new Piece(false, null, 0, 0)));
        /** $A $B (type ids 0 and 1): no post-processor. */
        static final Template PAIR_PLAIN = of(List.of(new Piece(false, null, 0, 0), new Piece(false, null, 1, 1)));
    }

    /** Token ids and offsets (2 per token) of one text before post-processing. */
    record Seq(IntList ids, IntList offsets) {}

    /** An encoding under construction: plain arrays, already the final ones. */
    record Built(int[] ids, int[] mask, int[] types, int[] offsets, int real) {
        Built pad(int target, Padding p) {
            int n = ids.length;
            if (n >= target) return this;
            int[] i2 = new int[target], m2 = new int[target], t2 = new int[target], o2 = new int[2 * target];
            int at = p.direction() == Padding.Direction.LEFT ? target - n : 0;
            Arrays.fill(i2, p.padId());
            Arrays.fill(t2, p.padTypeId());
            System.arraycopy(ids, 0, i2, at, n);
            System.arraycopy(mask, 0, m2, at, n);
            System.arraycopy(types, 0, t2, at, n);
            System.arraycopy(offsets, 0, o2, 2 * at, 2 * n);
            return new Built(i2, m2, t2, o2, real);
        }

        Encoding toEncoding() { return new Encoding(ids, mask, types, offsets); }
    }

    /**
     * Truncates (if {@code truncation} is not null) and applies the template.
     *
     * @throws IllegalArgumentException if truncation cannot make the text(s) fit
     */
    static Built postProcess(Template single, Template pair, Truncation truncation, Seq a, Seq b, boolean addSpecialTokens) {
        Template t = b == null ? single : pair;
        int na = a.ids().size, nb = b == null ? 0 : b.ids().size;
        if (truncation != null) {
            int max = truncation.maxLength() - (addSpecialTokens ? t.specialCount() : 0);
            if (max < 0) {
                throw new IllegalArgumentException("truncation maxLength " + truncation.maxLength() + " is smaller than the "
                        + t.specialCount() + " special tokens of a " + (b == null ? "single text" : "pair"));
            }
            int[] keep = truncatedLengths(na, nb, b != null, max, truncation.strategy());
            na = keep[0];
            nb = keep[1];
        }
        boolean left = truncation != null && truncation.direction() == Truncation.Direction.LEFT;
        int aFrom = left ? a.ids().size - na : 0;
        int bFrom = b == null ? 0 : (left ? b.ids().size - nb : 0);
        int total = na + nb + (addSpecialTokens ? t.specialCount() : 0);
        int[] ids = new int[total], mask = new int[total], types = new int[total], offs = new int[2 * total];
        Arrays.fill(mask, 1);
        int k = 0;
        for (Template.Piece piece : t.pieces()) {
            if (piece.special()) {
                if (!addSpecialTokens) continue;
                for (int id : piece.ids()) { ids[k] = id; types[k] = piece.typeId(); k++; }
            } else {
                Seq s = piece.sequence() == 0 ? a : b;
                if (s == null) continue;
                int from = piece.sequence() == 0 ? aFrom : bFrom, n = piece.sequence() == 0 ? na : nb;
                System.arraycopy(s.ids().a, from, ids, k, n);
                System.arraycopy(s.offsets().a, 2 * from, offs, 2 * k, 2 * n);
                Arrays.fill(types, k, k + n, piece.typeId());
                k += n;
            }
        }
        return new Built(ids, mask, types, offs, total);
    }

    /** HF's truncate_encodings: how many tokens of A and B stay. */
    static int[] truncatedLengths(int n1, int n2, boolean isPair, int max, Truncation.Strategy strategy) {
        if (max == 0) return new int[] {0, 0};
        int total = n1 + n2;
        if (total <= max) return new int[] {n1, n2};
        int toRemove = total - max;
        switch (strategy) {
            case LONGEST_FIRST -> {
                if (!isPair) return new int[] {n1 - toRemove, 0};
                int a = n1, b = n2;
                boolean swap = false;
                if (a > b) { swap = true; int x = a; a = b; b = x; }
                if (a > max) b = a;
                else b = Math.max(a, max - a);
                if (a + b > max) { a = max / 2; b = a + max % 2; }
                if (swap) { int x = a; a = b; b = x; }
                return new int[] {Math.min(a, n1), Math.min(b, n2)};
            }
            case ONLY_FIRST -> {
                if (n1 > toRemove) return new int[] {n1 - toRemove, n2};
                throw new IllegalArgumentException("truncation (ONLY_FIRST): the first text has " + n1
                        + " tokens, too short to remove " + toRemove + " and fit max length " + max);
            }
            default -> {
                if (!isPair) throw new IllegalArgumentException("truncation ONLY_SECOND needs a text pair");
                if (n2 > toRemove) return new int[] {n1, n2 - toRemove};
                throw new IllegalArgumentException("truncation (ONLY_SECOND): the second text has " + n2
                        + " tokens, too short to remove " + toRemove + " and fit max length " + max);
            }
        }
    }

    /** Pads every encoding as {@code p} says; returns the longest length after padding. */
    static int padAll(List<Built> built, Padding p) {
        int longest = 0;
        for (Built e : built) longest = Math.max(longest, e.ids.length);
        int target = p.targetLength(longest);
        for (int i = 0; i < built.size(); i++) built.set(i, built.get(i).pad(target, p));
        return built.stream().mapToInt(e -> e.ids.length).max().orElse(0);
    }

    /** Pads as {@code p} says (then to the longest, so rows are rectangular) into a {@link Batch}. */
    static Batch batch(List<Built> built, Padding p) {
        int length = padAll(built, p);
        for (int i = 0; i < built.size(); i++) built.set(i, built.get(i).pad(length, p)); // rectangular even if FIXED < longest
        int n = built.size();
        int[] ids = new int[n * length], mask = new int[n * length], types = new int[n * length], lengths = new int[n];
        List<Encoding> encs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            Built e = built.get(i);
            System.arraycopy(e.ids, 0, ids, i * length, length);
            System.arraycopy(e.mask, 0, mask, i * length, length);
            System.arraycopy(e.types, 0, types, i * length, length);
            lengths[i] = e.real;
            encs.add(e.toEncoding());
        }
        return new Batch(n, length, ids, mask, types, lengths, encs);
    }
}
