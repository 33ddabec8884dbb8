package dev.panatron.tokenize;

import java.text.Normalizer;
import java.util.Arrays;

/**
 * HF's {@code BertNormalizer} with alignments: every normalized UTF-16 unit remembers the range
 * of the original text it came from, so token offsets point into the caller's string.
 *
 * <p>Steps, in HF's order: clean_text (drop NUL, U+FFFD and Cc/Cf/Co except \t \n \r; map
 * whitespace to ' '), handle_chinese_chars (' ' around CJK ideographs), strip_accents (NFD, then
 * drop Mn; null in the file means "follow lowercase"), lowercase (per code point, as Rust's
 * {@code char::to_lowercase}: context-free, U+0130 becomes "i\u0307").
 */
record BertNormalizer(boolean cleanText, boolean handleChineseChars, boolean stripAccents, boolean lowercase) {

    /** The identity normalizer (a tokenizer.json whose "normalizer" is null). */
    static final BertNormalizer NONE = new BertNormalizer(false, false, false, false);

    /** A growable normalized string: UTF-16 units plus, per unit, its [start, end) in the original text. */
    static final class Buffer {
        char[] chars;
        int[] start;
        int[] end;
        int length;
        // stage-1 code points (before Mn removal and lowercasing)
        int[] cps = new int[64];
        int[] cpStart = new int[64];
        int[] cpEnd = new int[64];
        boolean[] cpInserted = new boolean[64]; // NFD output beyond the first code point of a decomposition
        int cpLength;

        Buffer(int capacity) {
            int c = Math.max(16, capacity);
            chars = new char[c];
            start = new int[c];
            end = new int[c];
        }

        void clear() { length = 0; cpLength = 0; }

        void ensure(int extra) {
            if (length + extra > chars.length) {
                int n = Math.max(chars.length * 2, length + extra);
                chars = Arrays.copyOf(chars, n);
                start = Arrays.copyOf(start, n);
                end = Arrays.copyOf(end, n);
            }
        }

        void put(int cp, int s, int e) {
            if (cp < 0x10000) {
                ensure(1);
                chars[length] = (char) cp;
                start[length] = s;
                end[length] = e;
                length++;
            } else {
                ensure(2);
                chars[length] = Character.highSurrogate(cp);
                chars[length + 1] = Character.lowSurrogate(cp);
                start[length] = start[length + 1] = s;
                end[length] = end[length + 1] = e;
                length += 2;
            }
        }

        void putCp(int cp, int s, int e) { putCp(cp, s, e, false); }

        void putCp(int cp, int s, int e, boolean inserted) {
            if (cpLength == cps.length) {
                int n = cps.length * 2;
                cps = Arrays.copyOf(cps, n);
                cpStart = Arrays.copyOf(cpStart, n);
                cpEnd = Arrays.copyOf(cpEnd, n);
                cpInserted = Arrays.copyOf(cpInserted, n);
            }
            cps[cpLength] = cp;
            cpStart[cpLength] = s;
            cpEnd[cpLength] = e;
            cpInserted[cpLength] = inserted;
            cpLength++;
        }

        String text() { return new String(chars, 0, length); }
    }

    private static final char[] ASCII_LOWER = new char[128];

    static {
        for (int c = 0; c < 128; c++) ASCII_LOWER[c] = (char) ((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }

    /**
     * Normalizes {@code text[from, to)}, appending to {@code out} (which is cleared first).
     * Offsets stored in {@code out} are indices into {@code text}.
     */
    void normalize(String text, int from, int to, Buffer out) {
        out.clear();
        out.ensure(to - from);
        // fast path: pure ASCII without control chars needs no stage 1
        boolean marksInARow = false;
        boolean prevMark = false;
        boolean stage1 = false;
        for (int i = from; i < to; i++) {
            char c = text.charAt(i);
            if (c >= 128 || c < 0x20 || c == 0x7F) { stage1 = true; break; }
        }
        if (!stage1) {
            for (int i = from; i < to; i++) {
                char c = text.charAt(i);
                out.put(lowercase ? ASCII_LOWER[c] : c, i, i + 1);
            }
            return;
        }
        // stage 1: clean_text, chinese chars, NFD (code points with alignments)
        for (int i = from; i < to; ) {
            int cp = text.codePointAt(i);
            int n = Character.charCount(cp);
            int s = i, e = i + n;
            i = e;
            int f = CharClass.of(cp);
            if (cleanText) {
                if ((f & CharClass.REMOVE) != 0) continue;
                if ((f & CharClass.WHITESPACE) != 0) { cp = ' '; f = CharClass.of(' '); }
            }
            boolean chinese = handleChineseChars && (f & CharClass.CHINESE) != 0;
            if (chinese) out.putCp(' ', s, e);
            if (stripAccents && (f & CharClass.NFD_MAYBE) != 0) {
                int[] d = CharClass.decompose(cp);
                if (d == null) {
                    boolean mark = (f & CharClass.MARK_ANY) != 0;
                    marksInARow |= mark && prevMark;
                    prevMark = mark;
                    out.putCp(cp, s, e);
                } else {
                    for (int j = 0; j < d.length; j++) {
                        int x = d[j];
                        boolean mark = (CharClass.of(x) & CharClass.MARK_ANY) != 0;
                        marksInARow |= mark && prevMark;
                        prevMark = mark;
                        out.putCp(x, s, e, j > 0);
                    }
                }
            } else {
                prevMark = (f & CharClass.MARK_ANY) != 0 && stripAccents;
                out.putCp(cp, s, e);
            }
            if (chinese) { out.putCp(' ', s, e); prevMark = false; }
        }
        if (stripAccents && marksInARow) canonicalReorder(out);
        // stage 2: drop Mn (strip_accents), lowercase, to UTF-16
        for (int k = 0; k < out.cpLength; k++) {
            int cp = out.cps[k];
            int s = out.cpStart[k], e = out.cpEnd[k];
            if (stripAccents && cp >= 0x300 && (CharClass.of(cp) & CharClass.MARK_NONSPACING) != 0) continue;
            if (lowercase) {
                if (cp < 128) {
                    cp = ASCII_LOWER[cp];
                } else if (cp == 0x130) { // the one unconditional multi-char lowercase mapping
                    out.put('i', s, e);
                    cp = 0x307;
                } else {
                    cp = Character.toLowerCase(cp);
                }
            }
            out.put(cp, s, e);
        }
    }

    /**
     * Canonical ordering of combining marks (the part of NFD that per-code-point decomposition
     * misses), by java.text.Normalizer, with HF's alignment rule: HF's NFD yields (char, change)
     * pairs, change 0 for the first code point of a decomposition and +1 for the others, and the
     * reordering moves each pair as a whole; then a change-0 code point takes the alignment of the
     * next pre-NFD character in order, a +1 code point that of the last one taken.
     */
    private static void canonicalReorder(Buffer b) {
        int n = b.cpLength;
        // code points newer than Unicode 9.0 have combining class 0 for HF: they end a run
        int[] ordered = new int[n];
        int filled = 0;
        StringBuilder sb = new StringBuilder(n + 8);
        for (int k = 0; k <= n; k++) {
            boolean boundary = k == n || !CharClass.presentInUnicode9(b.cps[k]);
            if (!boundary) { sb.appendCodePoint(b.cps[k]); continue; }
            String seg = Normalizer.normalize(sb, Normalizer.Form.NFD);
            for (int i = 0; i < seg.length() && filled < n; ) {
                int cp = seg.codePointAt(i);
                ordered[filled++] = cp;
                i += Character.charCount(cp);
            }
            sb.setLength(0);
            if (k < n && filled < n) ordered[filled++] = b.cps[k];
        }
        if (filled != n) return; // cannot happen for decomposed input; keep the input order
        boolean same = true;
        for (int k = 0; k < n && same; k++) same = ordered[k] == b.cps[k];
        if (same) return;
        // the permutation: the sort is stable and moves code points only within a run of marks, so the
        // source of each output code point is the first unused equal one
        boolean[] used = new boolean[n];
        boolean[] inserted = new boolean[n];
        int firstUnused = 0;
        for (int k = 0; k < n; k++) {
            while (firstUnused < n && used[firstUnused]) firstUnused++;
            int src = -1;
            for (int j = firstUnused; j < n; j++) if (!used[j] && b.cps[j] == ordered[k]) { src = j; break; }
            if (src < 0) return;
            used[src] = true;
            inserted[k] = b.cpInserted[src];
        }
        // pre-NFD characters in order: the alignments of the change-0 entries of the input
        int[] preStart = new int[n], preEnd = new int[n];
        int m = 0;
        for (int k = 0; k < n; k++) {
            if (!b.cpInserted[k]) { preStart[m] = b.cpStart[k]; preEnd[m] = b.cpEnd[k]; m++; }
        }
        int cursor = 0;
        for (int k = 0; k < n; k++) {
            b.cps[k] = ordered[k];
            b.cpInserted[k] = inserted[k];
            int at = inserted[k] ? Math.max(0, cursor - 1) : Math.min(cursor++, m - 1);
            b.cpStart[k] = preStart[at];
            b.cpEnd[k] = preEnd[at];
        }
    }

    /** Normalizes a whole string (used for added tokens with normalized=true). */
    String normalize(String s) {
        Buffer b = new Buffer(s.length() + 8);
        normalize(s, 0, s.length(), b);
        return b.text();
    }
}
