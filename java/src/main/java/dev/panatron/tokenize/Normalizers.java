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

    /** Per code point, as Rust's char::to_lowercase (context-free; U+0130 becomes "i\u0307"). */
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

    /**
     * A Unicode normalization form. The text is normalized cluster by cluster (a cluster: a
     * character and the marks and Hangul vowels/trailing consonants that follow it), so each
     * output unit is aligned to its cluster; if that ever differs from normalizing the whole text,
     * the whole text's result wins and every unit is aligned to the whole piece.
     */
    static Normalizer unicode(Form form) {
        return t -> {
            String s = t.s;
            if (java.text.Normalizer.isNormalized(s, form)) return t;
            String whole = java.text.Normalizer.normalize(s, form);
            TextBuilder b = new TextBuilder(whole.length() + 4);
            int i = 0, n = s.length();
            while (i < n) {
                int j = i + Character.charCount(s.codePointAt(i));
                while (j < n && continuesCluster(s.codePointAt(j))) j += Character.charCount(s.codePointAt(j));
                String part = java.text.Normalizer.normalize(s.substring(i, j), form);
                b.append(part, t.origStart(i), t.origEnd(j - 1));
                i = j;
            }
            if (b.sb.toString().equals(whole)) return b.build();
            TextBuilder w = new TextBuilder(whole.length());
            w.append(whole, t.origStart(0), t.origEnd(n - 1));
            return w.build();
        };
    }

    private static boolean continuesCluster(int cp) {
        int ty = Character.getType(cp);
        return ty == Character.NON_SPACING_MARK || ty == Character.COMBINING_SPACING_MARK || ty == Character.ENCLOSING_MARK
                || (cp >= 0x1160 && cp <= 0x11FF) || (cp >= 0xD7B0 && cp <= 0xD7FF);
    }
}
