package dev.panatron.tokenize;

import dev.panatron.tokenize.AddedTokens.IntList;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The regular expressions byte-level BPE tokenizers split text with, matched as HF tokenizers
 * matches them (Oniguruma, Unicode mode): {@code find_iter} over the text, leftmost-first
 * alternation. Two patterns that nearly every byte-level model uses are hand-written scanners
 * (several times faster than a regex engine):
 *
 * <ul>
 *   <li>{@link #GPT2}: {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+}
 *       (HF's ByteLevel pre-tokenizer with use_regex; GPT-2, RoBERTa, GPT-J, ...)</li>
 *   <li>{@link #LLAMA3}: {@code (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+}
 *       (Llama-3 and tiktoken's cl100k_base), and {@link #QWEN2}, the same with {@code \p{N}} for
 *       {@code \p{N}{1,3}} (Qwen2, Qwen2.5: one token per digit)</li>
 *   <li>{@link #O200K}: tiktoken's o200k_base (GPT-4o, gpt-oss), which splits words at case changes
 *       ({@code [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|...)?|...}),
 *       and {@link #TEKKEN}, the same without contractions and with single digits (Mistral's Tekken)</li>
 * </ul>
 *
 * Any other pattern runs on {@link java.util.regex} with Oniguruma's meaning kept: Unicode
 * {@code \s} (White_Space), {@code \d} (Nd) and {@code \w} (L, M, Nd, Pc), Unicode case folding
 * for {@code (?i)}, {@code \p{Han}}-style script names. Character categories come from the JDK
 * ({@link Character#getType}); on JDK 24+ (Unicode 16) they equal HF tokenizers' Oniguruma 6.9.10
 * for every code point (checked by the tests).
 */
abstract class SplitRegex {

    /** The pattern's source text. */
    final String source;

    SplitRegex(String source) { this.source = source; }

    /** Appends the [start, end) pairs of the non-empty matches in {@code s[from, to)}, in order. */
    abstract void matches(String s, int from, int to, IntList out);

    @Override
    public String toString() { return source; }

    // ------------------------------------------------------------------ character classes

    static final byte OTHER = 0, LETTER = 1, NUMBER = 2, SPACE = 3;

    private static final byte[] BMP = new byte[0x10000];

    static {
        for (int c = 0; c < 0x10000; c++) BMP[c] = classify(c);
    }

    private static byte classify(int cp) {
        if ((cp >= 9 && cp <= 13) || cp == 0x85) return SPACE;
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> LETTER;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> NUMBER;
            case Character.SPACE_SEPARATOR, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR -> SPACE;
            default -> OTHER;
        };
    }

    /** \p{L}, \p{N}, \s (Oniguruma's: U+0009..U+000D, U+0085, Zs, Zl, Zp) or none of them. */
    static byte classOf(int cp) { return cp < 0x10000 ? BMP[cp] : classify(cp); }

    // ------------------------------------------------------------------ the known patterns

    /** GPT-2's pattern, as HF's ByteLevel pre-tokenizer writes it. */
    static final String GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    /** Llama-3's (and cl100k_base's) pattern. */
    static final String LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    /** Qwen2's: Llama-3's with single digits. */
    static final String QWEN2_PATTERN = LLAMA3_PATTERN.replace("\\p{N}{1,3}", "\\p{N}");

    /** tiktoken's o200k_base. */
    static final String O200K_PATTERN = String.join("|",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "\\p{N}{1,3}", " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*", "\\s*[\\r\\n]+", "\\s+(?!\\S)", "\\s+");
    /** o200k_base's without contractions and with single digits (Mistral's Tekken). */
    static final String TEKKEN_PATTERN = O200K_PATTERN.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)?", "").replace("\\p{N}{1,3}", "\\p{N}");

    static final SplitRegex GPT2 = new Gpt2();
    static final SplitRegex LLAMA3 = new Llama3(LLAMA3_PATTERN, 3);
    static final SplitRegex QWEN2 = new Llama3(QWEN2_PATTERN, 1);
    static final SplitRegex O200K = new O200k(O200K_PATTERN, true, 3);
    static final SplitRegex TEKKEN = new O200k(TEKKEN_PATTERN, false, 1);

    /**
     * The splitter for a pattern: a hand-written scanner for the known ones, java.util.regex for
     * the others.
     *
     * @param literal true for HF's {"String": ...} patterns (matched literally)
     * @throws PatternSyntaxException if the regex does not compile
     */
    static SplitRegex of(String pattern, boolean literal) {
        if (!literal) {
            if (pattern.equals(GPT2_PATTERN)) return GPT2;
            if (pattern.equals(LLAMA3_PATTERN)) return LLAMA3;
            if (pattern.equals(QWEN2_PATTERN)) return QWEN2;
            if (pattern.equals(O200K_PATTERN)) return O200K;
            if (pattern.equals(TEKKEN_PATTERN)) return TEKKEN;
        }
        return new Generic(pattern, literal);
    }

    /** The general case, for tests too: the same pattern through java.util.regex. */
    static SplitRegex generic(String pattern) { return new Generic(pattern, false); }

    private static int cpAt(String s, int i, int to) {
        char c = s.charAt(i);
        if (Character.isHighSurrogate(c) && i + 1 < to) {
            char d = s.charAt(i + 1);
            if (Character.isLowSurrogate(d)) return Character.toCodePoint(c, d);
        }
        return c;
    }

    /** The end of the run of code points of class {@code cls} starting at {@code i}. */
    private static int run(String s, int i, int to, byte cls) {
        while (i < to) {
            int cp = cpAt(s, i, to);
            if (classOf(cp) != cls) break;
            i += Character.charCount(cp);
        }
        return i;
    }

    /** {@code \s+(?!\S)|\s+} at i, a whitespace character: the run, less its last character if more follows. */
    private static int spaces(String s, int i, int to) {
        int e = run(s, i, to, SPACE);
        if (e == to || e - i < 2) return e; // (whitespace is all in the BMP: one char per code point)
        return e - 1;
    }

    /** GPT-2: contractions (lower case), then optional space + letters / numbers / others, then whitespace. */
    private static final class Gpt2 extends SplitRegex {
        Gpt2() { super(GPT2_PATTERN); }

        @Override
        void matches(String s, int from, int to, IntList out) {
            int i = from;
            while (i < to) {
                int e = next(s, i, to);
                out.add(i);
                out.add(e);
                i = e;
            }
        }

        private static int next(String s, int i, int to) {
            char c = s.charAt(i);
            if (c == '\'' && i + 1 < to) {
                char d = s.charAt(i + 1);
                if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
                if (i + 2 < to) {
                    char f = s.charAt(i + 2);
                    if ((d == 'r' || d == 'v') && f == 'e' || d == 'l' && f == 'l') return i + 3;
                }
            }
            if (c == ' ' && i + 1 < to) {
                byte k2 = classOf(cpAt(s, i + 1, to));
                if (k2 != SPACE) return run(s, i + 1, to, k2);
            }
            int cp = cpAt(s, i, to);
            byte k = classOf(cp);
            if (k == SPACE) return spaces(s, i, to);
            return run(s, i, to, k);
        }
    }

    /** Llama-3 / cl100k_base; Qwen2 with {@code maxDigits} 1. */
    private static final class Llama3 extends SplitRegex {
        private final int maxDigits;

        Llama3(String pattern, int maxDigits) {
            super(pattern);
            this.maxDigits = maxDigits;
        }

        @Override
        void matches(String s, int from, int to, IntList out) {
            int i = from;
            while (i < to) {
                int e = next(s, i, to, maxDigits);
                out.add(i);
                out.add(e);
                i = e;
            }
        }

        private static boolean isS(char c) { return c == 's' || c == 'S' || c == '\u017F'; } // ſ folds to s

        static int contraction(String s, int i, int to) {
            if (i + 1 >= to) return -1;
            char d = s.charAt(i + 1);
            char dl = d < 128 ? (char) (d | 0x20) : d;
            if (isS(d) || dl == 't' || dl == 'm' || dl == 'd') return i + 2;
            if (i + 2 < to) {
                char f = s.charAt(i + 2);
                char fl = f < 128 ? (char) (f | 0x20) : f;
                if ((dl == 'r' || dl == 'v') && fl == 'e' || dl == 'l' && fl == 'l') return i + 3;
            }
            return -1;
        }

        private static int next(String s, int i, int to, int maxDigits) {
            char c = s.charAt(i);
            if (c == '\'') {
                int e = contraction(s, i, to);
                if (e > 0) return e;
            }
            int cp = cpAt(s, i, to);
            int n = Character.charCount(cp);
            byte k = classOf(cp);
            if (k == LETTER) return run(s, i, to, LETTER);
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if (k != NUMBER && c != '\r' && c != '\n' && i + n < to && classOf(cpAt(s, i + n, to)) == LETTER) {
                return run(s, i + n, to, LETTER);
            }
            if (k == NUMBER) { // \p{N}{1,3} (Qwen2: \p{N})
                int e = i;
                for (int m = 0; m < maxDigits && e < to; m++) {
                    int x = cpAt(s, e, to);
                    if (classOf(x) != NUMBER) break;
                    e += Character.charCount(x);
                }
                return e;
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            int start = -1;
            if (k == OTHER) start = i;
            else if (c == ' ' && i + 1 < to && classOf(cpAt(s, i + 1, to)) == OTHER) start = i + 1;
            if (start >= 0) {
                int e = run(s, start, to, OTHER);
                while (e < to && (s.charAt(e) == '\r' || s.charAt(e) == '\n')) e++;
                return e;
            }
            // whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
            int e = run(s, i, to, SPACE);
            for (int m = e - 1; m >= i; m--) {
                char x = s.charAt(m);
                if (x == '\r' || x == '\n') return m + 1;
            }
            if (e == to || e - i < 2) return e;
            return e - 1;
        }
    }

    /** o200k_base's letter classes: upper (Lu, Lt), lower (Ll), both (Lm, Lo, M), else none. */
    static final byte CASE_NONE = 0, CASE_UPPER = 1, CASE_LOWER = 2, CASE_BOTH = 3;

    private static final byte[] CASE_BMP = new byte[0x10000];

    static {
        for (int c = 0; c < 0x10000; c++) CASE_BMP[c] = caseClassify(c);
    }

    private static byte caseClassify(int cp) {
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.TITLECASE_LETTER -> CASE_UPPER;
            case Character.LOWERCASE_LETTER -> CASE_LOWER;
            case Character.MODIFIER_LETTER, Character.OTHER_LETTER, Character.NON_SPACING_MARK,
                 Character.COMBINING_SPACING_MARK, Character.ENCLOSING_MARK -> CASE_BOTH;
            default -> CASE_NONE;
        };
    }

    static byte caseOf(int cp) { return cp < 0x10000 ? CASE_BMP[cp] : caseClassify(cp); }

    /**
     * o200k_base / Tekken, alternative by alternative as the regex engine tries them:
     * {@code X? U* W+ C?}, then {@code X? U+ W* C?} (X: [^\r\n\p{L}\p{N}], which includes marks;
     * U: [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]; W: [\p{Ll}\p{Lm}\p{Lo}\p{M}]; C: a contraction), each
     * first with X taken, then without; then digits, then {@code  ?[^\s\p{L}\p{N}]+[\r\n/]*}, then
     * whitespace as in Llama-3's.
     */
    private static final class O200k extends SplitRegex {
        private final boolean contractions;
        private final int maxDigits;

        O200k(String pattern, boolean contractions, int maxDigits) {
            super(pattern);
            this.contractions = contractions;
            this.maxDigits = maxDigits;
        }

        @Override
        void matches(String s, int from, int to, IntList out) {
            int i = from;
            while (i < to) {
                int e = next(s, i, to);
                out.add(i);
                out.add(e);
                i = e;
            }
        }

        /** The end of the maximal run from p of code points whose case class is in {@code mask} (bit per class). */
        private static int caseRun(String s, int p, int to, int mask) {
            while (p < to) {
                int cp = cpAt(s, p, to);
                if ((mask & (1 << caseOf(cp))) == 0) break;
                p += Character.charCount(cp);
            }
            return p;
        }

        private static final int U = (1 << CASE_UPPER) | (1 << CASE_BOTH), W = (1 << CASE_LOWER) | (1 << CASE_BOTH);

        /** {@code U* W+} from p: its end, or -1. */
        private static int alt1(String s, int p, int to) {
            int q = caseRun(s, p, to, U);
            if (q < to && caseOf(cpAt(s, q, to)) == CASE_LOWER) return caseRun(s, q, to, W);
            // back off into the U run: W+ starts at its last "both" character and takes just it
            int lastBoth = -1;
            for (int k = p; k < q; ) {
                int cp = cpAt(s, k, to);
                if (caseOf(cp) == CASE_BOTH) lastBoth = k;
                k += Character.charCount(cp);
            }
            return lastBoth < 0 ? -1 : lastBoth + Character.charCount(cpAt(s, lastBoth, to));
        }

        /** {@code U+ W*} from p: its end, or -1. */
        private static int alt2(String s, int p, int to) {
            int q = caseRun(s, p, to, U);
            if (q == p) return -1;
            return caseRun(s, q, to, W);
        }

        private int withContraction(String s, int e, int to) {
            if (!contractions || e >= to || s.charAt(e) != '\'') return e;
            int c = Llama3.contraction(s, e, to);
            return c > 0 ? c : e;
        }

        private int next(String s, int i, int to) {
            char c = s.charAt(i);
            int cp = cpAt(s, i, to);
            int n = Character.charCount(cp);
            byte k = classOf(cp);
            boolean x = k != LETTER && k != NUMBER && c != '\r' && c != '\n'; // [^\r\n\p{L}\p{N}]
            int e;
            if (x && i + n < to && (e = alt1(s, i + n, to)) > 0) return withContraction(s, e, to);
            if ((e = alt1(s, i, to)) > 0) return withContraction(s, e, to);
            if (x && i + n < to && (e = alt2(s, i + n, to)) > 0) return withContraction(s, e, to);
            if ((e = alt2(s, i, to)) > 0) return withContraction(s, e, to);
            if (k == NUMBER) {
                e = i;
                for (int m = 0; m < maxDigits && e < to; m++) {
                    int y = cpAt(s, e, to);
                    if (classOf(y) != NUMBER) break;
                    e += Character.charCount(y);
                }
                return e;
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n/]*
            int start = -1;
            if (k == OTHER) start = i;
            else if (c == ' ' && i + 1 < to && classOf(cpAt(s, i + 1, to)) == OTHER) start = i + 1;
            if (start >= 0) {
                e = run(s, start, to, OTHER);
                while (e < to && (s.charAt(e) == '\r' || s.charAt(e) == '\n' || s.charAt(e) == '/')) e++;
                return e;
            }
            e = run(s, i, to, SPACE);
            for (int m = e - 1; m >= i; m--) {
                char y = s.charAt(m);
                if (y == '\r' || y == '\n') return m + 1;
            }
            if (e == to || e - i < 2) return e;
            return e - 1;
        }
    }

    /** Any pattern, through java.util.regex with Oniguruma's Unicode meanings. */
    private static final class Generic extends SplitRegex {
        private final Pattern pattern;

        Generic(String source, boolean literal) {
            super(source);
            this.pattern = literal ? Pattern.compile(Pattern.quote(source))
                    : Pattern.compile(translate(source), Pattern.UNICODE_CHARACTER_CLASS);
        }

        @Override
        void matches(String s, int from, int to, IntList out) {
            Matcher m = pattern.matcher(s).region(from, to);
            while (m.find()) {
                if (m.end() > m.start()) {
                    out.add(m.start());
                    out.add(m.end());
                }
            }
        }
    }

    /**
     * Rewrites Oniguruma syntax for java.util.regex: {@code \w}/{@code \W} as Oniguruma's Unicode
     * word class (Java's adds Alphabetic and Join_Control), {@code \p{Name}} as {@code \p{IsName}}
     * (Java wants the prefix for scripts; it accepts it for categories), {@code \p{^X}} as {@code \P{IsX}}.
     */
    static String translate(String p) {
        StringBuilder sb = new StringBuilder(p.length() + 16);
        int depth = 0; // inside [...]
        for (int i = 0; i < p.length(); i++) {
            char c = p.charAt(i);
            if (c == '\\' && i + 1 < p.length()) {
                char d = p.charAt(i + 1);
                if (d == 'w' || d == 'W') {
                    String cls = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
                    sb.append(d == 'w' ? (depth > 0 ? cls : "[" + cls + "]") : "[^" + cls + "]");
                    i++;
                    continue;
                }
                if ((d == 'p' || d == 'P') && i + 2 < p.length() && p.charAt(i + 2) == '{') {
                    int close = p.indexOf('}', i + 3);
                    if (close > 0) {
                        String name = p.substring(i + 3, close);
                        boolean neg = d == 'P';
                        if (name.startsWith("^")) {
                            neg = !neg;
                            name = name.substring(1);
                        }
                        if (!name.startsWith("Is") && !name.startsWith("In") && !name.contains("=")) name = "Is" + name;
                        sb.append('\\').append(neg ? 'P' : 'p').append('{').append(name).append('}');
                        i = close;
                        continue;
                    }
                }
                sb.append(c).append(d);
                i++;
                continue;
            }
            if (c == '[') depth++;
            else if (c == ']' && depth > 0) depth--;
            sb.append(c);
        }
        return sb.toString();
    }
}
