package dev.panatron.tokenize;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The decoders of BPE tokenizer.json files, as HF's {@code decode_chain}s: each takes the token
 * strings and returns new strings; the tokenizer joins the last ones with "". ByteLevel (bytes of
 * the byte-level characters, decoded as lossy UTF-8), Metaspace, ByteFallback ({@code <0x0A>}
 * tokens to bytes), Fuse, Strip, Replace, BPEDecoder (end-of-word suffix), Sequence.
 */
final class Decoders {
    private Decoders() {}

    /** One decoder step. */
    interface Decoder {
        List<String> decode(List<String> tokens);
    }

    /** The decoder as a list of steps. */
    static List<Decoder> parse(TokenizerJson j, JsonNode n, String path) throws TokenizerFormatException {
        List<Decoder> out = new ArrayList<>();
        add(j, n, path, out);
        return List.copyOf(out);
    }

    private static void add(TokenizerJson j, JsonNode n, String path, List<Decoder> out) throws TokenizerFormatException {
        String t = j.type(n, path);
        if (t == null) throw j.fail(path + " has no \"type\"");
        switch (t) {
            case "Sequence" -> {
                JsonNode list = n.get("decoders");
                if (TokenizerJson.isNull(list) || !list.isArray()) throw j.fail(path + ".decoders must be an array");
                for (int i = 0; i < list.size(); i++) add(j, list.get(i), path + ".decoders[" + i + "]", out);
            }
            case "ByteLevel" -> out.add(Decoders::byteLevel);
            case "Metaspace" -> {
                String rep = j.text(n, "replacement", "\u2581", path);
                if (rep.isEmpty() || rep.codePointCount(0, rep.length()) != 1) throw j.fail(path + ".replacement must be one character, found \"" + rep + "\"");
                String scheme = j.text(n, "prepend_scheme", null, path);
                boolean strip = scheme == null ? j.bool(n, "add_prefix_space", true, path) : !scheme.equals("never");
                out.add(tokens -> metaspace(tokens, rep.codePointAt(0), strip));
            }
            case "ByteFallback" -> out.add(Decoders::byteFallback);
            case "Fuse" -> out.add(tokens -> List.of(String.join("", tokens)));
            case "Strip" -> {
                String content = j.text(n, "content", " ", path);
                if (content.isEmpty() || content.codePointCount(0, content.length()) != 1) throw j.fail(path + ".content must be one character");
                int start = j.integer(n, "start", 0, path), stop = j.integer(n, "stop", 0, path);
                if (start < 0 || stop < 0) throw j.fail(path + ": start and stop must be >= 0");
                int c = content.codePointAt(0);
                out.add(tokens -> strip(tokens, c, start, stop));
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
                String repl = Matcher.quoteReplacement(content);
                out.add(tokens -> {
                    List<String> r = new ArrayList<>(tokens.size());
                    for (String s : tokens) r.add(re.matcher(s).replaceAll(repl));
                    return r;
                });
            }
            case "BPEDecoder" -> {
                String suffix = j.text(n, "suffix", "</w>", path);
                out.add(tokens -> {
                    List<String> r = new ArrayList<>(tokens.size());
                    for (int i = 0; i < tokens.size(); i++) r.add(tokens.get(i).replace(suffix, i == tokens.size() - 1 ? "" : " "));
                    return r;
                });
            }
            default -> throw j.fail(path + " type " + t + " is not supported (ByteLevel, Metaspace, ByteFallback, Fuse,"
                    + " Strip, Replace, BPEDecoder, Sequence)");
        }
    }

    static List<String> byteLevel(List<String> tokens) {
        ByteLevel.Bytes b = new ByteLevel.Bytes(tokens.size() * 4);
        for (String t : tokens) ByteLevel.appendTokenBytes(t, b);
        return List.of(ByteLevel.decodeLossy(b.a, 0, b.size));
    }

    /** The replacement becomes ' ', except in the first token when a prefix was added (there it goes). */
    static List<String> metaspace(List<String> tokens, int rep, boolean stripFirst) {
        List<String> r = new ArrayList<>(tokens.size());
        for (int i = 0; i < tokens.size(); i++) {
            String t = tokens.get(i);
            StringBuilder sb = new StringBuilder(t.length());
            for (int k = 0; k < t.length(); ) {
                int cp = t.codePointAt(k);
                if (cp == rep) {
                    if (!(i == 0 && stripFirst)) sb.append(' ');
                } else {
                    sb.appendCodePoint(cp);
                }
                k += Character.charCount(cp);
            }
            r.add(sb.toString());
        }
        return r;
    }

    /** Runs of {@code <0xXX>} tokens become the string of their bytes (or one U+FFFD per byte if not UTF-8). */
    static List<String> byteFallback(List<String> tokens) {
        List<String> r = new ArrayList<>(tokens.size());
        ByteLevel.Bytes pending = new ByteLevel.Bytes(16);
        for (String t : tokens) {
            int b = byteToken(t);
            if (b >= 0) {
                pending.add(b);
                continue;
            }
            flush(pending, r);
            r.add(t);
        }
        flush(pending, r);
        return r;
    }

    private static void flush(ByteLevel.Bytes pending, List<String> out) {
        if (pending.size == 0) return;
        String s = ByteLevel.decodeStrict(pending.a, 0, pending.size);
        if (s != null) out.add(s);
        else for (int i = 0; i < pending.size; i++) out.add("\uFFFD");
        pending.size = 0;
    }

    /** The byte of a "<0xXX>" token (Rust's u8::from_str_radix(_, 16) on XX), or -1. */
    private static int byteToken(String t) {
        if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') return -1;
        char a = t.charAt(3), b = t.charAt(4);
        int hb = Character.digit(b, 16);
        if (hb < 0 || b > 127) return -1;
        if (a == '+') return hb;
        int ha = Character.digit(a, 16);
        if (ha < 0 || a > 127) return -1;
        return ha * 16 + hb;
    }

    /** Up to {@code start} leading and {@code stop} trailing {@code c} characters leave each token. */
    static List<String> strip(List<String> tokens, int c, int start, int stop) {
        List<String> r = new ArrayList<>(tokens.size());
        for (String t : tokens) {
            int[] cps = t.codePoints().toArray();
            int from = 0;
            for (int i = 0; i < Math.min(start, cps.length); i++) {
                if (cps[i] == c) from = i + 1;
                else break;
            }
            int to = cps.length;
            for (int i = 0; i < stop && cps.length - i - 1 >= 0; i++) {
                int index = cps.length - i - 1;
                if (cps[index] == c) to = index;
                else break;
            }
            r.add(from >= to ? "" : new String(cps, from, to - from));
        }
        return r;
    }
}
