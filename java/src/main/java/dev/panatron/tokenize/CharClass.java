package dev.panatron.tokenize;

import java.text.Normalizer;

/**
 * Per-code-point facts the BERT normalizer and pre-tokenizer need, defined exactly as HF tokenizers
 * defines them: {@code is_other}, {@code is_mark_nonspacing} and {@code is_punctuation} from the crate
 * unicode_categories 0.1.1 ({@link BertCharTables}), whitespace as Rust's {@code char::is_whitespace}
 * (the Unicode White_Space property), "Chinese" as the CJK ranges of HF's {@code is_chinese_char},
 * canonical decompositions as HF's NFD crate knows them (Unicode 9.0).
 * The Basic Multilingual Plane is one byte table lookup; the other planes search the range tables.
 */
final class CharClass {
    private CharClass() {}

    /** Removed by clean_text (Cc, Cf, Co; NUL and U+FFFD too; not \t \n \r). */
    static final int REMOVE = 1;
    /** Rust's char::is_whitespace, plus nothing else. */
    static final int WHITESPACE = 2;
    /** HF's is_bert_punc: ASCII punctuation or a crate punctuation category. */
    static final int PUNCT = 4;
    /** The crate's Mn table (removed by strip_accents after NFD). */
    static final int MARK_NONSPACING = 8;
    /** HF's is_chinese_char. */
    static final int CHINESE = 16;
    /** Any char that the NFD step might change (conservative: every code point from U+00C0). */
    static final int NFD_MAYBE = 32;
    /** A Java M* category (a possible non-starter: NFD may reorder two of them in a row). */
    static final int MARK_ANY = 64;

    private static final byte[] BMP = new byte[0x10000];

    /** Rust char::is_whitespace (White_Space): these code points and ranges. */
    private static final int[] WHITESPACE_RANGES = {
        0x09, 0x0D, 0x20, 0x20, 0x85, 0x85, 0xA0, 0xA0, 0x1680, 0x1680, 0x2000, 0x200A,
        0x2028, 0x2029, 0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000,
    };

    /** HF is_chinese_char, inclusive ranges (note 0x2B920, not 0x2B820: HF's own table). */
    private static final int[] CHINESE_RANGES = {
        0x3400, 0x4DBF, 0x4E00, 0x9FFF, 0xF900, 0xFAFF, 0x20000, 0x2A6DF, 0x2A700, 0x2B73F,
        0x2B740, 0x2B81F, 0x2B920, 0x2CEAF, 0x2F800, 0x2FA1F,
    };

    static {
        mark(BertCharTables.OTHER, REMOVE, 0xFFFF);
        BMP[0] |= REMOVE;
        BMP[0xFFFD] |= REMOVE;
        BMP['\t'] &= ~REMOVE;
        BMP['\n'] &= ~REMOVE;
        BMP['\r'] &= ~REMOVE;
        mark(WHITESPACE_RANGES, WHITESPACE, 0xFFFF);
        mark(BertCharTables.PUNCTUATION, PUNCT, 0xFFFF);
        for (int c = 0x21; c < 0x7F; c++) {
            if (!Character.isLetterOrDigit(c)) BMP[c] |= PUNCT; // char::is_ascii_punctuation
        }
        mark(BertCharTables.MARK_NONSPACING, MARK_NONSPACING, 0xFFFF);
        mark(CHINESE_RANGES, CHINESE, 0xFFFF);
        // NFD_MAYBE only keeps ASCII and Latin-1 below U+00C0 off the decomposition cache; the cache
        // (filled lazily, one java.text.Normalizer call per distinct code point) knows the rest
        for (int c = 0xC0; c < 0x10000; c++) {
            if (Character.isSurrogate((char) c)) continue;
            int t = Character.getType(c);
            BMP[c] |= NFD_MAYBE;
            if (t == Character.NON_SPACING_MARK || t == Character.COMBINING_SPACING_MARK || t == Character.ENCLOSING_MARK) {
                BMP[c] |= MARK_ANY;
            }
        }
    }

    private static void mark(int[] ranges, int flag, int max) {
        for (int i = 0; i < ranges.length; i += 2) {
            int lo = ranges[i], hi = Math.min(ranges[i + 1], max);
            for (int c = lo; c <= hi; c++) BMP[c] |= (byte) flag;
        }
    }

    private static boolean inRanges(int[] ranges, int cp) {
        int lo = 0, hi = ranges.length / 2 - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (cp < ranges[2 * mid]) hi = mid - 1;
            else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    /** The flags of code point {@code cp} (any plane). */
    static int of(int cp) {
        if (cp < 0x10000) return BMP[cp] & 0xFF;
        int f = 0;
        if (inRanges(BertCharTables.OTHER, cp)) f |= REMOVE;
        if (inRanges(BertCharTables.PUNCTUATION, cp)) f |= PUNCT;
        if (inRanges(BertCharTables.MARK_NONSPACING, cp)) f |= MARK_NONSPACING;
        if (inRanges(CHINESE_RANGES, cp)) f |= CHINESE;
        int t = Character.getType(cp);
        if (t == Character.NON_SPACING_MARK || t == Character.COMBINING_SPACING_MARK || t == Character.ENCLOSING_MARK) {
            f |= MARK_ANY;
        }
        return f | NFD_MAYBE;
    }

    /** Rust's char::is_whitespace. */
    static boolean isWhitespace(int cp) {
        return cp < 0x10000 && (BMP[cp] & WHITESPACE) != 0;
    }

    /** Rust regex {@code \w}: Alphabetic, M, Nd, Pc, Join_Control (for single_word added tokens). */
    static boolean isWordChar(int cp) {
        if (Character.isAlphabetic(cp) || cp == 0x200C || cp == 0x200D) return true;
        int t = Character.getType(cp);
        return t == Character.NON_SPACING_MARK || t == Character.COMBINING_SPACING_MARK
                || t == Character.ENCLOSING_MARK || t == Character.DECIMAL_DIGIT_NUMBER
                || t == Character.CONNECTOR_PUNCTUATION;
    }

    /** A cached decomposition (null: the code point is its own); a final field publishes it safely. */
    private record Decomposition(int[] codePoints) {}

    private static final Decomposition[] DECOMP_BMP = new Decomposition[0x10000];

    /**
     * The canonical decomposition (NFD) of one code point, or null when it is its own decomposition.
     * Cached for the BMP (benign races: every thread computes the same value).
     */
    static int[] decompose(int cp) {
        if (cp < 0x10000) {
            Decomposition d = DECOMP_BMP[cp];
            if (d == null) {
                d = new Decomposition(computeDecomposition(cp));
                DECOMP_BMP[cp] = d;
            }
            return d.codePoints();
        }
        return computeDecomposition(cp);
    }

    /**
     * Whether {@code cp} was assigned in Unicode 9.0 or earlier: HF's NFD (crate
     * unicode-normalization-alignments, Unicode 9.0 data) neither decomposes nor reorders later ones.
     */
    static boolean presentInUnicode9(int cp) {
        int[] inv = BertCharTables.PRESENT_IN_9_0;
        int lo = 0, hi = inv.length - 1, idx = -1; // idx: last entry <= cp
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (inv[mid] <= cp) { idx = mid; lo = mid + 1; } else hi = mid - 1;
        }
        return (idx & 1) == 0 && idx >= 0;
    }

    private static int[] computeDecomposition(int cp) {
        if (!presentInUnicode9(cp)) return null;
        String s = Character.toString(cp);
        String n = Normalizer.normalize(s, Normalizer.Form.NFD);
        if (n.equals(s)) return null;
        return n.codePoints().toArray();
    }
}
