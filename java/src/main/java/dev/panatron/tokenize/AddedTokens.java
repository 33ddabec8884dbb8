package dev.panatron.tokenize;

import java.util.ArrayList;
import java.util.List;

/**
 * The added/special tokens of a tokenizer.json matched in text the way HF's AddedVocabulary does:
 * leftmost-longest, non-overlapping (Aho-Corasick semantics), with single_word, lstrip and rstrip.
 * One instance holds either the tokens matched in the raw text (normalized=false) or those matched
 * in the normalized text (normalized=true, their content normalized too).
 */
final class AddedTokens {

    /** One entry of "added_tokens". */
    record Token(int id, String content, boolean singleWord, boolean lstrip, boolean rstrip, boolean normalized,
                 boolean special) {}

    private final String[] patterns;
    private final Token[] tokens;
    private final long[] firstChars; // bitset over the BMP of patterns' first UTF-16 units

    AddedTokens(List<Token> list, List<String> patternList) {
        this.tokens = list.toArray(new Token[0]);
        this.patterns = patternList.toArray(new String[0]);
        this.firstChars = new long[1024];
        for (String p : patterns) {
            if (!p.isEmpty()) firstChars[p.charAt(0) >>> 6] |= 1L << p.charAt(0);
        }
    }

    boolean isEmpty() { return patterns.length == 0; }

    /**
     * Finds the matches in {@code s[from, to)}: appends (start, end, id) triples to {@code out},
     * starts and ends as indices into {@code s}, already widened by lstrip/rstrip.
     */
    void find(char[] s, int from, int to, IntList out) {
        int startOffset = from;
        int i = from;
        while (i < to) {
            char c = s[i];
            if ((firstChars[c >>> 6] & (1L << c)) == 0) { i++; continue; }
            int best = -1, bestLen = 0;
            for (int k = 0; k < patterns.length; k++) {
                String p = patterns[k];
                int n = p.length();
                if (n > bestLen && n <= to - i && regionMatches(s, i, p)) { best = k; bestLen = n; }
            }
            if (best < 0) { i++; continue; }
            int start = i, stop = i + bestLen;
            Token t = tokens[best];
            i = stop; // non-overlapping: the next search starts after this match even if it is rejected
            if (t.singleWord()) {
                boolean startOk = start == from || !CharClass.isWordChar(Character.codePointBefore(s, start, from));
                boolean stopOk = stop == to || !CharClass.isWordChar(Character.codePointAt(s, stop, to));
                if (!startOk || !stopOk) continue;
            }
            if (t.lstrip()) {
                int ns = start;
                while (ns > from) {
                    int cp = Character.codePointBefore(s, ns, from);
                    if (!CharClass.isWhitespace(cp)) break;
                    ns -= Character.charCount(cp);
                }
                start = Math.max(ns, startOffset);
            }
            if (t.rstrip()) {
                while (stop < to) {
                    int cp = Character.codePointAt(s, stop, to);
                    if (!CharClass.isWhitespace(cp)) break;
                    stop += Character.charCount(cp);
                }
                i = stop;
            }
            out.add(start);
            out.add(stop);
            out.add(t.id());
            startOffset = stop;
        }
    }

    private static boolean regionMatches(char[] s, int at, String p) {
        for (int j = 0; j < p.length(); j++) if (s[at + j] != p.charAt(j)) return false;
        return true;
    }

    /** A growable int list (no boxing). */
    static final class IntList {
        int[] a;
        int size;

        IntList(int capacity) { a = new int[Math.max(4, capacity)]; }

        void add(int v) {
            if (size == a.length) a = java.util.Arrays.copyOf(a, a.length * 2);
            a[size++] = v;
        }

        int get(int i) { return a[i]; }

        void clear() { size = 0; }

        int[] toArray() { return java.util.Arrays.copyOf(a, size); }
    }

    static List<Token> none() { return new ArrayList<>(); }
}
