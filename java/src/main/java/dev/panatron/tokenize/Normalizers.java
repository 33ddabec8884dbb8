package dev.panatron.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import dev.panatron.tokenize.BpeTokenizer.Text;
import dev.panatron.tokenize.BpeTokenizer.TextBuilder;

import java.text.Normalizer.Form;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The normalizers of BPE tokenizer.json files, on text with alignments (every output unit keeps the
 * input range it came from, for offsets): NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip,
 * Sequence. Each is applied, as in HF, to each piece of text between added tokens.
 */
final class Normalizers {
    private Normalizers() {}

    /** One normalizer: a whole {@link Text} in, a new one out. */
    interface Normalizer {
        Text apply(Text t);
    }

    static Normalizer parse(TokenizerJson j, JsonNode n, String path) throws TokenizerFormatException {
        String t = j.type(n, path);
        if (t == null) throw j.fail(path + " has no \"type\"");
        return switch (t) {
            case "Sequence" -> {
                JsonNode list = n.get("normalizers");
                if (TokenizerJson.isNull(list) || !list.isArray()) throw j.fail(path + ".normalizers must be an array");
                List<Normalizer> all = new ArrayList<>();
                for (int i = 0; i < list.size(); i++) all.add(parse(j, list.get(i), path + ".normalizers[" + i + "]"));
                yield x -> {
                    for (Normalizer m : all) x = m.apply(x);
                    return x;
                };
            }
            case "NFC" -> unicode(Form.NFC);
            case "NFD" -> unicode(Form.NFD);
            case "NFKC" -> unicode(Form.NFKC);
            case "NFKD" -> unicode(Form.NFKD);
            case "Lowercase" -> Normalizers::lowercase;
            case "Prepend" -> {
                String p = j.text(n, "prepend", null, path);
                if (p == null) throw j.fail(path + ".prepend must be a string");
                yield x -> x.s.isEmpty() ? x : prepend(x, p);
            }
            case "Replace" -> {
                JsonNode pat = n.get("pattern");
                String content = j.text(n, "content", null, path);
                if (content == null) throw j.fail(path + ".content must be a string");
                if (TokenizerJson.isNull(pat) || !pat.isObject() || !(pat.has("String") || pat.has("Regex"))) {
                    throw j.fail(path + ".pattern must be {\"String\": ...} or {\"Regex\": ...}, found " + pat);
                }
                boolean literal = pat.has("String");
                String src = pat.get(literal ? "String" : "Regex").asText();
                Pattern re;
                try {
                    re = literal ? Pattern.compile(Pattern.quote(src))
                            : Pattern.compile(SplitRegex.translate(src), Pattern.UNICODE_CHARACTER_CLASS);
                } catch (java.util.regex.PatternSyntaxException e) {
                    throw new TokenizerFormatException(j.source + ": " + path + ".pattern: the regex does not compile: " + e.getDescription(), e);
                }
                yield x -> replace(x, re, content);
            }
            case "Strip" -> {
                boolean left = j.bool(n, "strip_left", true, path), right = j.bool(n, "strip_right", true, path);
                yield x -> strip(x, left, right);
            }
            default -> throw j.fail(path + " type " + t + " is not supported (NFC, NFD, NFKC, NFKD, Lowercase, Prepend,"
                    + " Replace, Strip, Sequence)");
        };
    }

    static Text prepend(Text t, String p) {
        TextBuilder b = new TextBuilder(t.s.length() + p.length());
        b.append(p, t.origStart(0), t.origEnd(0));
        for (int i = 0; i < t.s.length(); i++) b.append(t.s.charAt(i), t.origStart(i), t.origEnd(i));
        return b.build();
    }

    /** Each non-overlapping match becomes {@code content}, aligned to the whole match. */
    static Text replace(Text t, Pattern re, String content) {
        Matcher m = re.matcher(t.s);
        if (!m.find()) return t;
        TextBuilder b = new TextBuilder(t.s.length() + 8);
        int at = 0;
        do {
            if (m.end() == m.start()) continue; // (empty matches replace nothing)
            for (int i = at; i < m.start(); i++) b.append(t.s.charAt(i), t.origStart(i), t.origEnd(i));
            b.append(content, t.origStart(m.start()), t.origEnd(m.end() - 1));
            at = m.end();
        } while (m.find());
        for (int i = at; i < t.s.length(); i++) b.append(t.s.charAt(i), t.origStart(i), t.origEnd(i));
        return b.build();
    }

    static Text strip(Text t, boolean left, boolean right) {
        int from = 0, to = t.s.length();
        if (left) while (from < to && CharClass.isWhitespace(t.s.codePointAt(from))) from += Character.charCount(t.s.codePointAt(from));
        if (right) while (to > from && CharClass.isWhitespace(t.s.codePointBefore(to))) to -= Character.charCount(t.s.codePointBefore(to));
        return from == 0 && to == t.s.length() ? t : t.sub(from, to);
    }

    /**
     * Per code point, as Rust's char::to_lowercase (context-free; U+0130 becomes "i\u0307"). HF's
     * build knows Unicode 17's case pairs, newer than the JDK's: those are added here.
     */
    static Text lowercase(Text t) {
        TextBuilder b = new TextBuilder(t.s.length() + 4);
        for (int i = 0; i < t.s.length(); ) {
            int cp = t.s.codePointAt(i);
            int n = Character.charCount(cp);
            int s = t.origStart(i), e = t.origEnd(i + n - 1);
            if (cp == 0x130) {
                b.append('i', s, e);
                b.append('\u0307', s, e);
            } else {
                int lc = Character.toLowerCase(cp);
                if (lc == cp) lc = lowercaseUnicode17(cp);
                if (lc < 0x10000) b.append((char) lc, s, e);
                else {
                    b.append(Character.highSurrogate(lc), s, e);
                    b.append(Character.lowSurrogate(lc), s, e);
                }
            }
            i += n;
        }
        return b.build();
    }

    /** The lowercase mappings Unicode 17 added (Latin Extended-D, Beria Erfe); {@code cp} itself if none. */
    static int lowercaseUnicode17(int cp) {
        if (cp == 0xA7CE || cp == 0xA7D2 || cp == 0xA7D4) return cp + 1;
        if (cp >= 0x16EA0 && cp <= 0x16EB8) return cp + 0x1B;
        return cp;
    }

    /**
     * A Unicode normalization form. The text is normalized cluster by cluster (a cluster: a
     * character and the marks and Hangul vowels/trailing consonants that follow it), with
     * alignments as HF's unicode-normalization-alignments gives them: each character of a
     * character's decomposition is aligned to that character; reordered marks keep the alignment
     * of the position they move to; a composed character takes the alignment of the first
     * decomposed character it absorbs.
     *
     * <p>HF's crate knows Unicode 9.0: a code point assigned later has no decomposition and
     * combining class 0 there (a starter nothing composes with), so here it is a cluster of its own,
     * left as it is, and it ends the cluster before it.
     */
    static Normalizer unicode(Form form) {
        Form decomposed = form == Form.NFC || form == Form.NFD ? Form.NFD : Form.NFKD;
        boolean compose = form == Form.NFC || form == Form.NFKC;
        return t -> {
            String s = t.s;
            if (java.text.Normalizer.isNormalized(s, form)) return t;
            TextBuilder b = new TextBuilder(s.length() + 4);
            int i = 0, n = s.length();
            while (i < n) {
                int first = s.codePointAt(i);
                int j = i + Character.charCount(first);
                boolean inert = !CharClass.presentInUnicode9(first);
                while (!inert && j < n && continuesCluster(s.codePointAt(j))) j += Character.charCount(s.codePointAt(j));
                String in = s.substring(i, j);
                String part = inert ? in : java.text.Normalizer.normalize(in, form);
                if (part.equals(in)) {
                    for (int k = i; k < j; k++) b.append(s.charAt(k), t.origStart(k), t.origEnd(k));
                } else {
                    cluster(t, i, in, part, decomposed, compose, b);
                }
                i = j;
            }
            return b.build();
        };
    }

    /**
     * One changed cluster {@code in} (at {@code t.s[at]}) normalized to {@code out}, aligned as HF's
     * NormalizedString::transform aligns the (char, change) stream of its normalization crate: the
     * decomposition gives each character's first part change 0 and the others +1; canonical
     * reordering (a stable sort) carries the changes along; a composition adds, for each absorbed
     * character, its change minus one. Then, walking the input: change &lt;= 0 takes the alignment of
     * the input character at the cursor and moves past it and -change more; change &gt; 0 (an insertion)
     * takes the alignment of the input character before the cursor.
     */
    private static void cluster(Text t, int at, String in, String out, Form decomposed, boolean compose, TextBuilder b) {
        int[] inCps = in.codePoints().toArray();
        int[] inUnit = new int[inCps.length]; // unit (in t.s) where each input code point starts
        for (int k = 0, u = 0; k < inCps.length; k++) { inUnit[k] = at + u; u += Character.charCount(inCps[k]); }
        // the decomposition, per input character, with changes
        AddedTokens.IntList pCp = new AddedTokens.IntList(8), pChange = new AddedTokens.IntList(8);
        for (int cp : inCps) {
            int[] d = java.text.Normalizer.normalize(Character.toString(cp), decomposed).codePoints().toArray();
            for (int k = 0; k < d.length; k++) { pCp.add(d[k]); pChange.add(k == 0 ? 0 : 1); }
        }
        // canonical order: the whole cluster's decomposition, matched to P stably
        int[] w = java.text.Normalizer.normalize(in, decomposed).codePoints().toArray();
        int[] wChange = new int[w.length];
        boolean[] taken = new boolean[pCp.size];
        boolean ok = w.length == pCp.size;
        for (int k = 0; ok && k < w.length; k++) {
            int j = 0;
            while (j < pCp.size && (taken[j] || pCp.get(j) != w[k])) j++;
            if (j == pCp.size) { ok = false; break; }
            taken[j] = true;
            wChange[k] = pChange.get(j);
        }
        int[] outCps = out.codePoints().toArray();
        int[] outChange = new int[outCps.length];
        if (ok && compose) {
            boolean[] used = new boolean[w.length];
            for (int k = 0; ok && k < outCps.length; k++) {
                int[] d = java.text.Normalizer.normalize(Character.toString(outCps[k]), decomposed).codePoints().toArray();
                int j = 0;
                while (j < w.length && used[j]) j++;
                if (j == w.length || w[j] != d[0]) { ok = false; break; }
                used[j] = true;
                int change = wChange[j];
                for (int m = 1; m < d.length; m++) {
                    int x = j + 1;
                    while (x < w.length && (used[x] || w[x] != d[m])) x++;
                    if (x == w.length) { ok = false; break; }
                    used[x] = true;
                    change += wChange[x] - 1;
                }
                outChange[k] = change;
            }
        } else if (ok) {
            ok = outCps.length == w.length;
            if (ok) outChange = wChange;
        }
        int cursor = 0;
        for (int k = 0, u = 0; k < outCps.length; k++) {
            int src;
            if (!ok) src = Math.min(k, inCps.length - 1); // (not expected) position by position
            else if (outChange[k] > 0) src = Math.max(0, cursor - 1);
            else {
                src = Math.min(cursor, inCps.length - 1);
                cursor += 1 - outChange[k];
            }
            int from = inUnit[src];
            int os = t.origStart(from), oe = t.origEnd(from + Character.charCount(inCps[src]) - 1);
            int n = Character.charCount(outCps[k]);
            for (int x = 0; x < n; x++) b.append(out.charAt(u + x), os, oe);
            u += n;
        }
    }

    /** A mark or a Hangul vowel/trailing consonant (which can follow a starter in a cluster), known to Unicode 9.0. */
    private static boolean continuesCluster(int cp) {
        if (!CharClass.presentInUnicode9(cp)) return false;
        int ty = Character.getType(cp);
        return ty == Character.NON_SPACING_MARK || ty == Character.COMBINING_SPACING_MARK || ty == Character.ENCLOSING_MARK
                || (cp >= 0x1160 && cp <= 0x11FF) || (cp >= 0xD7B0 && cp <= 0xD7FF);
    }
}
