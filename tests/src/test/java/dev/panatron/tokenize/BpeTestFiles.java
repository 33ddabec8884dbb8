package dev.panatron.tokenize;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Real byte-level BPE tokenizer.json files for the tests, made from OpenAI's BPE rank files that
 * the jtokkit jar carries (Maven Central {@code com.knuddels:jtokkit:1.1.0}, resources
 * {@code com/knuddels/jtokkit/*.tiktoken}; the machine reaches no other network, and no GPT-2 or
 * Llama-3 tokenizer.json is published on Maven Central):
 *
 * <ul>
 *   <li>{@link #gpt2}: {@code r50k_base}, GPT-2's own vocabulary (token id = rank = the id in GPT-2's
 *       encoder.json), laid out as HF's {@code gpt2/tokenizer.json}: ByteLevel pre-tokenizer with the
 *       GPT-2 regex, "a b" string merges, {@code <|endoftext|>} = 50256, ByteLevel decoder.</li>
 *   <li>{@link #llama3Style}: {@code cl100k_base} (GPT-4's vocabulary, whose regex is the one Llama-3
 *       copied) laid out as Meta-Llama-3's tokenizer.json: Sequence[Split(Llama-3 regex, Isolated),
 *       ByteLevel(use_regex false)], [a, b] array merges, ignore_merges, Llama-3's special tokens
 *       ({@code <|begin_of_text|>}, {@code <|eot_id|>} ...) after cl100k's own, and a
 *       TemplateProcessing post-processor that adds {@code <|begin_of_text|>}.</li>
 *   <li>{@link #o200k}: {@code o200k_base} (GPT-4o) with its longer regex, for the general Split.</li>
 * </ul>
 *
 *
 * <p>And a SentencePiece-style BPE file (Llama-2's layout), {@link #llama2Style}: no such file is on
 * Maven Central either, so a small vocabulary (the 256 {@code <0xXX>} byte tokens, the characters
 * that occur twice or more, 1,500 merges) is trained here, deterministically, on
 * {@link TokenizerTexts#curated()} with SentencePiece's word boundaries ("▁" before each word).
 *
 * <p>Vocabulary and merges are derived as HF transformers' {@code TikTokenConverter} does (this is how
 * Llama-3's and Xenova/gpt-4's files were made): the vocabulary maps each rank's bytes, written
 * with GPT-2's bytes-to-unicode table, to the rank; for every token of two or more bytes, each split
 * into two parts that are both tokens is a merge; merges are ordered by the rank of the token they
 * make, then by the ranks of the left and right parts.
 *
 * <p>Regenerate the files by hand (e.g. to look at them):
 * {@code java -cp <test classpath> dev.panatron.tokenize.BpeTestFiles OUT_DIR}.
 */
final class BpeTestFiles {
    private BpeTestFiles() {}

    /** Where the tests keep the generated files (kept between runs; {@code mvn clean} removes them). */
    static Path dir() { return Path.of("target", "bpe-test-files").toAbsolutePath(); }

    static final String GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String O200K_REGEX = String.join("|",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
            "\\p{N}{1,3}", " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*", "\\s*[\\r\\n]+", "\\s+(?!\\S)", "\\s+");

    /** Llama-3's special tokens (after cl100k's own, which keep their tiktoken ids). */
    static final List<String> LLAMA3_SPECIALS = List.of("<|begin_of_text|>", "<|end_of_text|>",
            "<|reserved_special_token_0|>", "<|reserved_special_token_1|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|reserved_special_token_2|>", "<|eot_id|>");
    static final int LLAMA3_FIRST_SPECIAL = 100277;

    /** GPT-2 (r50k_base) as HF's gpt2 tokenizer.json; written once into {@code dir}. */
    static synchronized Path gpt2(Path dir) {
        return cached(dir.resolve("gpt2-tokenizer.json"), p -> {
            Ranks r = Ranks.load("r50k_base");
            Map<String, Integer> specials = new LinkedHashMap<>();
            specials.put("<|endoftext|>", 50256);
            write(p, r, specials, """
                    {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}""",
                    """
                    {"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}""",
                    false);
        });
    }

    /** cl100k_base laid out as Meta-Llama-3's tokenizer.json; written once into {@code dir}. */
    static synchronized Path llama3Style(Path dir) {
        return cached(dir.resolve("cl100k-llama3-tokenizer.json"), p -> {
            Ranks r = Ranks.load("cl100k_base");
            Map<String, Integer> specials = new LinkedHashMap<>();
            specials.put("<|endoftext|>", 100257);
            specials.put("<|fim_prefix|>", 100258);
            specials.put("<|fim_middle|>", 100259);
            specials.put("<|fim_suffix|>", 100260);
            specials.put("<|endofprompt|>", 100276);
            for (int i = 0; i < LLAMA3_SPECIALS.size(); i++) specials.put(LLAMA3_SPECIALS.get(i), LLAMA3_FIRST_SPECIAL + i);
            String pre = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                    + quote(LLAMA3_REGEX) + "},\"behavior\":\"Isolated\",\"invert\":false},"
                    + "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}";
            int bos = specials.get("<|begin_of_text|>");
            String post = "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                    + "\"trim_offsets\":false,\"use_regex\":true},{\"type\":\"TemplateProcessing\","
                    + "\"single\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
                    + "\"pair\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
                    + "{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\",\"type_id\":1}},{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],"
                    + "\"special_tokens\":{\"<|begin_of_text|>\":{\"id\":\"<|begin_of_text|>\",\"ids\":[" + bos + "],"
                    + "\"tokens\":[\"<|begin_of_text|>\"]}}}]}";
            write(p, r, specials, pre, post, true);
        });
    }

    /** o200k_base with its own regex (Split + ByteLevel), no post-processor; written once into {@code dir}. */
    static synchronized Path o200k(Path dir) {
        return cached(dir.resolve("o200k-tokenizer.json"), p -> {
            Ranks r = Ranks.load("o200k_base");
            Map<String, Integer> specials = new LinkedHashMap<>();
            specials.put("<|endoftext|>", 199999);
            specials.put("<|endofprompt|>", 200018);
            String pre = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                    + quote(O200K_REGEX) + "},\"behavior\":\"Isolated\",\"invert\":false},"
                    + "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}";
            write(p, r, specials, pre, "null", true);
        });
    }

    private interface Writer { void write(Path p) throws IOException; }

    private static Path cached(Path p, Writer w) {
        try {
            if (!Files.exists(p)) {
                Files.createDirectories(p.getParent());
                Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
                w.write(tmp);
                Files.move(tmp, p, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\');
            sb.append(c);
        }
        return sb.append('"').toString();
    }

    /** The token bytes of a rank file, by rank. */
    record Ranks(String name, byte[][] tokens, Map<Key, Integer> rankOf) {
        static Ranks load(String name) throws IOException {
            String res = "/com/knuddels/jtokkit/" + name + ".tiktoken";
            List<byte[]> list = new ArrayList<>();
            try (InputStream in = BpeTestFiles.class.getResourceAsStream(res)) {
                if (in == null) throw new IOException(res + " not on the classpath: the test dependency com.knuddels:jtokkit is missing");
                BufferedReader br = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
                for (String line; (line = br.readLine()) != null; ) {
                    if (line.isBlank()) continue;
                    int sp = line.indexOf(' ');
                    int rank = Integer.parseInt(line.substring(sp + 1).trim());
                    while (list.size() <= rank) list.add(null);
                    list.set(rank, Base64.getDecoder().decode(line.substring(0, sp)));
                }
            }
            byte[][] tokens = list.toArray(new byte[0][]);
            Map<Key, Integer> rankOf = new HashMap<>(tokens.length * 2);
            for (int i = 0; i < tokens.length; i++) if (tokens[i] != null) rankOf.put(new Key(tokens[i]), i);
            return new Ranks(name, tokens, rankOf);
        }
    }

    /** A byte string usable as a map key. */
    record Key(byte[] b) {
        @Override public boolean equals(Object o) { return o instanceof Key k && Arrays.equals(b, k.b); }
        @Override public int hashCode() { return Arrays.hashCode(b); }
    }

    /** GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 onward. */
    static char[] bytesToUnicode() {
        char[] m = new char[256];
        boolean[] direct = new boolean[256];
        for (int b = '!'; b <= '~'; b++) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) direct[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++) m[b] = direct[b] ? (char) b : (char) (256 + n++);
        return m;
    }

    static String mapped(byte[] token, char[] table) {
        char[] c = new char[token.length];
        for (int i = 0; i < token.length; i++) c[i] = table[token[i] & 0xFF];
        return new String(c);
    }

    private static void write(Path p, Ranks r, Map<String, Integer> specials, String preTokenizer,
                              String postProcessor, boolean llama3) throws IOException {
        char[] table = bytesToUnicode();
        byte[][] tok = r.tokens();
        // merges as TikTokenConverter: every split of a token into two tokens; by (rank, rank left, rank right)
        List<int[]> merges = new ArrayList<>(tok.length * 2);
        for (int rank = 0; rank < tok.length; rank++) {
            byte[] t = tok[rank];
            if (t == null || t.length < 2) continue;
            for (int i = 1; i < t.length; i++) {
                Integer l = r.rankOf().get(new Key(Arrays.copyOfRange(t, 0, i)));
                Integer rr = r.rankOf().get(new Key(Arrays.copyOfRange(t, i, t.length)));
                if (l != null && rr != null) merges.add(new int[] {rank, l, rr});
            }
        }
        merges.sort(Comparator.<int[]>comparingInt(m -> m[0]).thenComparingInt(m -> m[1]).thenComparingInt(m -> m[2]));
        try (JsonGenerator g = new JsonFactory().createGenerator(Files.newOutputStream(p))) {
            g.writeStartObject();
            g.writeStringField("version", "1.0");
            g.writeNullField("truncation");
            g.writeNullField("padding");
            g.writeArrayFieldStart("added_tokens");
            for (Map.Entry<String, Integer> e : specials.entrySet()) {
                g.writeStartObject();
                g.writeNumberField("id", e.getValue());
                g.writeStringField("content", e.getKey());
                g.writeBooleanField("single_word", false);
                g.writeBooleanField("lstrip", false);
                g.writeBooleanField("rstrip", false);
                g.writeBooleanField("normalized", !llama3); // as in the real files: GPT-2 true, Llama-3 false
                g.writeBooleanField("special", true);
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeNullField("normalizer");
            g.writeFieldName("pre_tokenizer");
            g.writeRawValue(preTokenizer);
            g.writeFieldName("post_processor");
            g.writeRawValue(postProcessor);
            g.writeFieldName("decoder");
            g.writeRawValue("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}");
            g.writeObjectFieldStart("model");
            g.writeStringField("type", "BPE");
            g.writeNullField("dropout");
            g.writeNullField("unk_token");
            g.writeStringField("continuing_subword_prefix", "");
            g.writeStringField("end_of_word_suffix", "");
            g.writeBooleanField("fuse_unk", false);
            g.writeBooleanField("byte_fallback", false);
            g.writeBooleanField("ignore_merges", llama3);
            g.writeObjectFieldStart("vocab");
            for (int rank = 0; rank < tok.length; rank++) if (tok[rank] != null) g.writeNumberField(mapped(tok[rank], table), rank);
            // the special tokens are in the vocabulary too (as in GPT-2's file): HF gives an added token that
            // is not in the vocabulary the next free id, which would not be tiktoken's id for cl100k/o200k
            for (Map.Entry<String, Integer> e : specials.entrySet()) g.writeNumberField(e.getKey(), e.getValue());
            g.writeEndObject();
            g.writeArrayFieldStart("merges");
            for (int[] m : merges) {
                String a = mapped(tok[m[1]], table), b = mapped(tok[m[2]], table);
                if (llama3) {
                    g.writeStartArray();
                    g.writeString(a);
                    g.writeString(b);
                    g.writeEndArray();
                } else {
                    g.writeString(a + " " + b);
                }
            }
            g.writeEndArray();
            g.writeEndObject();
            g.writeEndObject();
        }
    }

    // ------------------------------------------------------------------ SentencePiece-style BPE (Llama-2 layout)

    /**
     * A Llama-2-style tokenizer.json: {@code <unk>} {@code <s>} {@code </s>}, byte fallback tokens
     * {@code <0x00>}..{@code <0xFF>}, fuse_unk, a trained vocabulary. {@code metaspace} false: the
     * "legacy" layout (normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, decoder
     * Replace/ByteFallback/Fuse/Strip); true: the newer one (no normalizer, Metaspace pre-tokenizer
     * with prepend_scheme "first", Metaspace decoder).
     */
    static synchronized Path llama2Style(Path dir, boolean metaspace) {
        return cached(dir.resolve(metaspace ? "llama2-metaspace-tokenizer.json" : "llama2-tokenizer.json"), p -> {
            Trained t = train(1500);
            try (JsonGenerator g = new JsonFactory().createGenerator(Files.newOutputStream(p))) {
                g.writeStartObject();
                g.writeStringField("version", "1.0");
                g.writeNullField("truncation");
                g.writeNullField("padding");
                g.writeArrayFieldStart("added_tokens");
                String[] sp = {"<unk>", "<s>", "</s>"};
                for (int i = 0; i < 3; i++) {
                    g.writeStartObject();
                    g.writeNumberField("id", i);
                    g.writeStringField("content", sp[i]);
                    g.writeBooleanField("single_word", false);
                    g.writeBooleanField("lstrip", false);
                    g.writeBooleanField("rstrip", false);
                    g.writeBooleanField("normalized", false);
                    g.writeBooleanField("special", true);
                    g.writeEndObject();
                }
                g.writeEndArray();
                if (metaspace) {
                    g.writeNullField("normalizer");
                    g.writeFieldName("pre_tokenizer");
                    g.writeRawValue("{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"prepend_scheme\":\"first\",\"split\":false}");
                } else {
                    g.writeFieldName("normalizer");
                    g.writeRawValue("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\u2581\"},"
                            + "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}]}");
                    g.writeNullField("pre_tokenizer");
                }
                g.writeFieldName("post_processor");
                g.writeRawValue("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                        + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                        + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":1}},"
                        + "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}");
                g.writeFieldName("decoder");
                if (metaspace) {
                    g.writeRawValue("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Metaspace\",\"replacement\":\"\u2581\","
                            + "\"prepend_scheme\":\"first\",\"split\":false},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}");
                } else {
                    g.writeRawValue("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\u2581\"},"
                            + "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
                            + "\"start\":1,\"stop\":0}]}");
                }
                g.writeObjectFieldStart("model");
                g.writeStringField("type", "BPE");
                g.writeNullField("dropout");
                g.writeStringField("unk_token", "<unk>");
                g.writeNullField("continuing_subword_prefix");
                g.writeNullField("end_of_word_suffix");
                g.writeBooleanField("fuse_unk", true);
                g.writeBooleanField("byte_fallback", true);
                g.writeBooleanField("ignore_merges", false);
                g.writeObjectFieldStart("vocab");
                for (int i = 0; i < t.vocab().size(); i++) g.writeNumberField(t.vocab().get(i), i);
                g.writeEndObject();
                g.writeArrayFieldStart("merges");
                for (String[] m : t.merges()) {
                    g.writeStartArray();
                    g.writeString(m[0]);
                    g.writeString(m[1]);
                    g.writeEndArray();
                }
                g.writeEndArray();
                g.writeEndObject();
                g.writeEndObject();
            }
        });
    }

    record Trained(List<String> vocab, List<String[]> merges) {}

    /** Plain BPE training: the most frequent adjacent pair (ties: the smaller strings) becomes a token, {@code merges} times. */
    static Trained train(int merges) {
        Map<String, Integer> wordCounts = new HashMap<>();
        Map<Integer, Integer> charCounts = new HashMap<>();
        for (String text : TokenizerTexts.curated()) {
            String s = "\u2581" + text.replace(' ', '\u2581');
            int start = 0;
            for (int i = 1; i <= s.length(); i++) {
                if (i == s.length() || s.charAt(i) == '\u2581') {
                    String w = s.substring(start, i);
                    wordCounts.merge(w, 1, Integer::sum);
                    w.codePoints().forEach(cp -> charCounts.merge(cp, 1, Integer::sum));
                    start = i;
                }
            }
        }
        List<String> vocab = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        for (int b = 0; b < 256; b++) vocab.add(String.format("<0x%02X>", b));
        List<Integer> chars = new ArrayList<>(charCounts.keySet());
        chars.removeIf(cp -> charCounts.get(cp) < 2);
        chars.sort(Comparator.<Integer>comparingInt(charCounts::get).reversed().thenComparing(Comparator.naturalOrder()));
        java.util.Set<String> known = new java.util.HashSet<>(vocab);
        for (int cp : chars) {
            String c = new String(Character.toChars(cp));
            vocab.add(c);
            known.add(c);
        }
        // words as symbol lists (null: a character outside the alphabet, which no pair crosses)
        List<List<String>> words = new ArrayList<>();
        List<Integer> counts = new ArrayList<>();
        List<String> keys = new ArrayList<>(wordCounts.keySet());
        java.util.Collections.sort(keys);
        for (String w : keys) {
            List<String> sy = new ArrayList<>();
            w.codePoints().forEach(cp -> {
                String c = new String(Character.toChars(cp));
                sy.add(known.contains(c) ? c : null);
            });
            words.add(sy);
            counts.add(wordCounts.get(w));
        }
        List<String[]> out = new ArrayList<>();
        while (out.size() < merges) {
            Map<String, Integer> pairs = new HashMap<>();
            for (int k = 0; k < words.size(); k++) {
                List<String> sy = words.get(k);
                for (int i = 0; i + 1 < sy.size(); i++) {
                    if (sy.get(i) == null || sy.get(i + 1) == null) continue;
                    if (known.contains(sy.get(i) + sy.get(i + 1))) continue;
                    pairs.merge(sy.get(i) + "\u0000" + sy.get(i + 1), counts.get(k), Integer::sum);
                }
            }
            if (pairs.isEmpty()) break;
            String best = null;
            int bestCount = -1;
            for (Map.Entry<String, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount || e.getValue() == bestCount && e.getKey().compareTo(best) < 0) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            String[] m = best.split("\u0000", -1);
            String merged = m[0] + m[1];
            out.add(m);
            vocab.add(merged);
            known.add(merged);
            for (List<String> sy : words) {
                for (int i = 0; i + 1 < sy.size(); i++) {
                    if (m[0].equals(sy.get(i)) && m[1].equals(sy.get(i + 1))) {
                        sy.set(i, merged);
                        sy.remove(i + 1);
                    }
                }
            }
        }
        return new Trained(vocab, out);
    }

    /** Writes the files into the directory given as the only argument. */
    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: BpeTestFiles OUT_DIR");
            System.exit(2);
        }
        Path dir = Path.of(args[0]);
        for (Path p : List.of(gpt2(dir), llama3Style(dir), o200k(dir), llama2Style(dir, false), llama2Style(dir, true))) {
            System.out.println(p);
        }
    }
}
