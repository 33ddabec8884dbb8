package dev.panatron.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.CharSpan;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Exact parity of {@link BpeTokenizer} with the real Hugging Face tokenizers library (Rust, through
 * DJL's JNI binding) on the same tokenizer.json files: ids, offsets and decoded text over curated
 * texts (English, code, whitespace runs, newlines, CJK, emoji with ZWJ, Arabic, long numbers,
 * contractions, special tokens inside text) and thousands of seeded random Unicode strings; round
 * trips for the byte-level files; variants of the files for each option.
 *
 * <p>Files ({@link BpeTestFiles}, generated into target/ from Maven Central artifacts): "gpt2" (GPT-2's
 * r50k_base vocabulary in HF's gpt2 layout), "llama3" (cl100k_base in Meta-Llama-3's layout),
 * "o200k" (GPT-4o's vocabulary and regex), "llama2" and "llama2-metaspace" (a trained
 * SentencePiece-style vocabulary in Llama-2's two layouts).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BpeParityTest {

    static final Map<String, String> HF_OPTIONS = Map.of("truncation", "false", "padding", "false", "addSpecialTokens", "true");

    final Map<String, BpeTokenizer> ours = new HashMap<>();
    final Map<String, HuggingFaceTokenizer> hf = new HashMap<>();
    final List<HuggingFaceTokenizer> opened = new ArrayList<>();

    static Path file(String name) {
        Path dir = BpeTestFiles.dir();
        return switch (name) {
            case "gpt2" -> BpeTestFiles.gpt2(dir);
            case "llama3" -> BpeTestFiles.llama3Style(dir);
            case "o200k" -> BpeTestFiles.o200k(dir);
            case "llama2" -> BpeTestFiles.llama2Style(dir, false);
            case "llama2-metaspace" -> BpeTestFiles.llama2Style(dir, true);
            default -> throw new IllegalArgumentException(name);
        };
    }

    BpeTokenizer ours(String name) throws IOException {
        BpeTokenizer t = ours.get(name);
        if (t == null) ours.put(name, t = BpeTokenizer.fromFile(file(name)));
        return t;
    }

    HuggingFaceTokenizer hf(String name) throws IOException {
        HuggingFaceTokenizer t = hf.get(name);
        if (t == null) hf.put(name, t = ref(file(name)));
        return t;
    }

    HuggingFaceTokenizer ref(Path p) throws IOException {
        HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(p, HF_OPTIONS);
        opened.add(t);
        return t;
    }

    @AfterAll
    void close() {
        for (HuggingFaceTokenizer t : opened) t.close();
    }

    // ------------------------------------------------------------------ comparing

    static int[] ints(long[] a) {
        int[] r = new int[a.length];
        for (int i = 0; i < a.length; i++) r[i] = Math.toIntExact(a[i]);
        return r;
    }

    static long[] longs(int[] a) {
        long[] r = new long[a.length];
        for (int i = 0; i < a.length; i++) r[i] = a[i];
        return r;
    }

    static String show(String text) { return WordPieceParityTest.show(text); }

    /** Collects mismatches; fails with their count and the first few. */
    static final class Mismatches {
        final String what;
        final List<String> items = new ArrayList<>();
        int checked;

        Mismatches(String what) { this.what = what; }

        void add(String m) { items.add(m); }

        void check(int minimumChecked) {
            if (!items.isEmpty()) {
                fail(what + ": " + items.size() + " of " + checked + " differ from HF tokenizers; first ones:\n"
                        + String.join("\n", items.subList(0, Math.min(8, items.size()))));
            }
            assertTrue(checked >= minimumChecked, what + ": only " + checked + " checked, expected >= " + minimumChecked);
        }
    }

    /** Ids, type ids, and offsets (code points, as DJL reports them) of one text; {@code text} null: a pair, no offsets. */
    static void compare(Mismatches mm, String text, ai.djl.huggingface.tokenizers.Encoding ref, Encoding got, BpeTokenizer tok) {
        compare(mm, text, text, ref, got, tok);
    }

    static void compare(Mismatches mm, String label, String text, ai.djl.huggingface.tokenizers.Encoding ref, Encoding got, BpeTokenizer tok) {
        mm.checked++;
        int[] rIds = ints(ref.getIds());
        String where = "text [" + show(label) + "]";
        if (!Arrays.equals(rIds, got.ids())) {
            mm.add(where + "\n  HF   " + Arrays.toString(rIds) + " " + Arrays.toString(ref.getTokens())
                    + "\n  ours " + Arrays.toString(got.ids()) + " " + Arrays.toString(tok.tokens(got)));
            return;
        }
        if (!Arrays.equals(ints(ref.getTypeIds()), got.typeIds())) {
            mm.add(where + ": type ids differ: HF " + Arrays.toString(ref.getTypeIds()) + " ours " + Arrays.toString(got.typeIds()));
            return;
        }
        if (text == null) return;
        CharSpan[] spans = ref.getCharTokenSpans();
        for (int i = 0; i < rIds.length; i++) {
            int rs = spans[i] == null ? 0 : spans[i].getStart(), re = spans[i] == null ? 0 : spans[i].getEnd();
            int os = text.codePointCount(0, got.offsetStart(i)), oe = text.codePointCount(0, got.offsetEnd(i));
            if (rs != os || re != oe) {
                mm.add(where + ": offsets of token " + i + " (" + ref.getTokens()[i] + ") differ: HF [" + rs + ", " + re
                        + ") ours [" + os + ", " + oe + ") (code points)");
                return;
            }
        }
    }

    void compareAll(String what, BpeTokenizer tok, HuggingFaceTokenizer ref, List<String> texts, boolean addSpecial, int minimum) {
        Mismatches mm = new Mismatches(what);
        for (String t : texts) compare(mm, t, ref.encode(t, addSpecial, false), tok.encode(t, null, addSpecial), tok);
        mm.check(minimum);
    }

    // ------------------------------------------------------------------ the files as they are

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "o200k", "llama2", "llama2-metaspace"})
    void curatedTextsMatch(String name) throws IOException {
        List<String> texts = TokenizerTexts.bpeCurated();
        compareAll(name + ": curated texts", ours(name), hf(name), texts, true, 200);
        compareAll(name + ": curated texts, no special tokens", ours(name), hf(name), texts, false, 200);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "o200k", "llama2", "llama2-metaspace"})
    void randomStringsMatch(String name) throws IOException {
        List<String> texts = new ArrayList<>(TokenizerTexts.randomBpe(20240917L + name.hashCode(), 1500, 40));
        texts.addAll(TokenizerTexts.randomBpe(11L + name.hashCode(), 30, 2000));
        compareAll(name + ": random strings", ours(name), hf(name), texts, true, 1530);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "llama2"})
    void pairsMatch(String name) throws IOException {
        BpeTokenizer tok = ours(name);
        HuggingFaceTokenizer ref = hf(name);
        List<String> a = TokenizerTexts.bpeCurated();
        Mismatches mm = new Mismatches(name + ": text pairs");
        for (int i = 0; i + 1 < a.size(); i += 2) {
            String x = a.get(i), y = a.get(a.size() - 1 - i);
            compare(mm, x + " || " + y, null, ref.encode(x, y), tok.encode(x, y), tok);
        }
        mm.check(100);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "o200k", "llama2", "llama2-metaspace"})
    void decodeMatches(String name) throws IOException {
        BpeTokenizer tok = ours(name);
        HuggingFaceTokenizer ref = hf(name);
        List<String> bad = new ArrayList<>();
        int checked = 0;
        List<long[]> idLists = new ArrayList<>();
        for (String t : TokenizerTexts.bpeCurated()) idLists.add(ref.encode(t).getIds());
        // random id sequences: arbitrary byte sequences (lossy UTF-8), special tokens, byte tokens
        Random r = new Random(5 + name.hashCode());
        for (int k = 0; k < 500; k++) {
            int[] ids = new int[1 + r.nextInt(12)];
            for (int i = 0; i < ids.length; i++) {
                int id;
                do id = r.nextInt(Math.min(tok.vocabSize(), r.nextBoolean() ? 300 : Integer.MAX_VALUE));
                while (!tok.tokenToId(idOrNull(tok, id)).isPresent());
                ids[i] = id;
            }
            idLists.add(longs(ids));
        }
        for (long[] ids : idLists) {
            for (boolean skip : new boolean[] {true, false}) {
                checked++;
                String want = ref.decode(ids, skip);
                String got = tok.decode(ints(ids), skip);
                if (!want.equals(got)) bad.add(Arrays.toString(ids) + " skip=" + skip + ": HF [" + show(want) + "] ours [" + show(got) + "]");
            }
        }
        if (!bad.isEmpty()) fail(name + ": " + bad.size() + " of " + checked + " decodes differ; first:\n" + String.join("\n", bad.subList(0, Math.min(8, bad.size()))));
        assertTrue(checked >= 1000);
    }

    private static String idOrNull(BpeTokenizer tok, int id) {
        try {
            return tok.idToToken(id);
        } catch (IllegalArgumentException e) {
            return "\u0000no such token\u0000";
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "o200k"})
    void byteLevelRoundTripIsExact(String name) throws IOException {
        BpeTokenizer tok = ours(name);
        assertTrue(tok.isByteLevel());
        List<String> texts = new ArrayList<>(TokenizerTexts.bpeCurated());
        texts.addAll(TokenizerTexts.randomBpe(77L + name.hashCode(), 1200, 60));
        texts.addAll(TokenizerTexts.randomBpe(78L, 10, 5000));
        int n = 0;
        for (String t : texts) {
            int[] ids = tok.encode(t, null, false).ids();
            assertEquals(t, tok.decode(ids, false), () -> "round trip of [" + show(t) + "]");
            assertArrayEquals(t.getBytes(StandardCharsets.UTF_8), tok.decodeBytes(ids, false), () -> "bytes of [" + show(t) + "]");
            // with the post-processor's special tokens, which decode skips (with those in the text)
            assertEquals(stripSpecials(tok, t), tok.decode(tok.encode(t).ids(), true), () -> "skipping specials: [" + show(t) + "]");
            n++;
        }
        assertTrue(n >= 1200);
    }

    /** The text with the special tokens it holds removed (what decode with skipping gives back). */
    private static String stripSpecials(BpeTokenizer tok, String t) {
        String s = t;
        for (String sp : tok.specialTokens().keySet()) s = s.replace(sp, "");
        return s;
    }

    @Test
    void batchesPadLikeHf() throws IOException {
        // DJL pads to the longest with HF's default padding (id 0, right); ours is told the same
        HuggingFaceTokenizer ref = HuggingFaceTokenizer.newInstance(file("llama3"), Map.of("truncation", "true",
                "maxLength", "48", "padding", "true"));
        opened.add(ref);
        BpeTokenizer tok = ours("llama3").withMaxLength(48)
                .withPadding(new Padding(Padding.Strategy.LONGEST, 0, Padding.Direction.RIGHT, 0, 0, 0, "[PAD]"));
        List<String> all = TokenizerTexts.bpeCurated();
        Mismatches mm = new Mismatches("llama3 batches of 8, truncated to 48, padded to the longest");
        for (int from = 0; from + 8 <= all.size(); from += 8) {
            List<String> texts = all.subList(from, from + 8);
            ai.djl.huggingface.tokenizers.Encoding[] r = ref.batchEncode(texts);
            Batch b = tok.encodeBatch(texts);
            int length = b.length();
            assertEquals(r[0].getIds().length, length, "padded length of the batch at " + from);
            for (int i = 0; i < 8; i++) {
                mm.checked++;
                int[] want = ints(r[i].getIds()), got = Arrays.copyOfRange(b.ids(), i * length, (i + 1) * length);
                int[] wantMask = ints(r[i].getAttentionMask()), gotMask = Arrays.copyOfRange(b.attentionMask(), i * length, (i + 1) * length);
                if (!Arrays.equals(want, got) || !Arrays.equals(wantMask, gotMask)) {
                    mm.add("[" + show(texts.get(i)) + "]: HF " + Arrays.toString(want) + " mask " + Arrays.toString(wantMask)
                            + "\n  ours " + Arrays.toString(got) + " mask " + Arrays.toString(gotMask));
                }
                assertEquals(Arrays.stream(wantMask).sum(), b.lengths()[i]);
            }
        }
        mm.check(200);
    }

    /**
     * continuing_subword_prefix ("##") and end_of_word_suffix ("</w>"), unk, WhitespaceSplit and the
     * BPEDecoder on a random vocabulary (HF's rule for a merge (a, b): the new token is a + b minus
     * b's prefix).
     */
    @Test
    void prefixAndSuffixMatchHf() throws IOException {
        Random r = new Random(42L);
        List<String> vocab = new ArrayList<>(List.of("<unk>"));
        for (char c = 'a'; c <= 'f'; c++) {
            for (String v : new String[] {"" + c, "##" + c, c + "</w>", "##" + c + "</w>"}) vocab.add(v);
        }
        java.util.Set<String> known = new java.util.HashSet<>(vocab);
        ArrayNode merges = JSON.createArrayNode();
        int made = 0;
        while (made < 400) {
            String a = vocab.get(1 + r.nextInt(vocab.size() - 1)), b = vocab.get(1 + r.nextInt(vocab.size() - 1));
            if (a.endsWith("</w>") || !b.startsWith("##")) continue;
            String merged = a + b.substring(2);
            if (merged.length() > 14 || known.contains(merged)) continue;
            vocab.add(merged);
            known.add(merged);
            merges.add(a + " " + b);
            made++;
        }
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putArray("added_tokens").addObject().put("id", 0).put("content", "<unk>").put("single_word", false)
                .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        root.putNull("normalizer");
        root.putObject("pre_tokenizer").put("type", "WhitespaceSplit");
        root.putNull("post_processor");
        root.putObject("decoder").put("type", "BPEDecoder").put("suffix", "</w>");
        ObjectNode model = root.putObject("model").put("type", "BPE").putNull("dropout").put("unk_token", "<unk>")
                .put("continuing_subword_prefix", "##").put("end_of_word_suffix", "</w>").put("fuse_unk", false)
                .put("byte_fallback", false);
        ObjectNode v = model.putObject("vocab");
        for (int i = 0; i < vocab.size(); i++) v.put(vocab.get(i), i);
        model.set("merges", merges);
        Path p = BpeTestFiles.dir().resolve("variant-prefix-suffix.json");
        JSON.writeValue(p.toFile(), root);
        HuggingFaceTokenizer ref = ref(p);
        BpeTokenizer tok = BpeTokenizer.fromFile(p);
        List<String> texts = new ArrayList<>();
        for (int k = 0; k < 1500; k++) {
            StringBuilder sb = new StringBuilder();
            int n = r.nextInt(40);
            String alphabet = "abcdefabcdef xyz\t\u00e9";
            for (int i = 0; i < n; i++) sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
            texts.add(sb.toString());
        }
        Mismatches mm = new Mismatches("continuing_subword_prefix + end_of_word_suffix");
        for (String t : texts) compare(mm, t, ref.encode(t), tok.encode(t), tok);
        mm.check(1500);
        for (String t : texts.subList(0, 300)) {
            long[] ids = ref.encode(t).getIds();
            assertEquals(ref.decode(ids, false), tok.decode(ints(ids), false), () -> "decode of [" + t + "]");
        }
        Files.deleteIfExists(p);
    }

    // ------------------------------------------------------------------ variants of the files

    static final ObjectMapper JSON = new ObjectMapper();

    Path variant(String base, String name, Consumer<ObjectNode> edit) throws IOException {
        ObjectNode root = (ObjectNode) JSON.readTree(file(base).toFile());
        edit.accept(root);
        Path p = BpeTestFiles.dir().resolve("variant-" + name + ".json");
        JSON.writeValue(p.toFile(), root);
        return p;
    }

    static ObjectNode model(ObjectNode root) { return (ObjectNode) root.get("model"); }

    static ObjectNode added(ArrayNode added, int id, String content, boolean special, boolean normalized, boolean lstrip,
                            boolean rstrip, boolean singleWord) {
        return added.addObject().put("id", id).put("content", content).put("single_word", singleWord).put("lstrip", lstrip)
                .put("rstrip", rstrip).put("normalized", normalized).put("special", special);
    }

    static ObjectNode split(ArrayNode seq, String kind, String pattern, String behavior, boolean invert) {
        ObjectNode s = seq.addObject().put("type", "Split");
        s.putObject("pattern").put(kind, pattern);
        return s.put("behavior", behavior).put("invert", invert);
    }

    static void byteLevelPre(ArrayNode seq, boolean prefixSpace, boolean regex) {
        seq.addObject().put("type", "ByteLevel").put("add_prefix_space", prefixSpace).put("trim_offsets", true).put("use_regex", regex);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-prefix-space-added-tokens", "gpt2-roberta", "gpt2-trim-offsets-no-decoder",
        "gpt2-split-behaviors", "gpt2-split-invert-digits", "gpt2-tekken-split", "llama3-qwen2-style", "llama2-unk-no-fallback",
        "llama2-unk-no-fuse", "llama2-no-unk", "llama2-normalizers", "llama2-metaspace-always-split"})
    void variantsMatch(String name) throws IOException {
        String base = name.startsWith("gpt2") ? "gpt2" : name.startsWith("llama3") ? "llama3"
                : name.startsWith("llama2-metaspace") ? "llama2-metaspace" : "llama2";
        Path p = variant(base, name, root -> {
            switch (name) {
                case "gpt2-prefix-space-added-tokens" -> {
                    ((ObjectNode) root.get("pre_tokenizer")).put("add_prefix_space", true);
                    ArrayNode a = (ArrayNode) root.get("added_tokens");
                    added(a, 50257, "<|user|>", true, false, true, true, false);     // new id: the vocabulary size
                    added(a, 50258, "hello", false, false, false, false, true);       // in the vocabulary: its id; single word
                    added(a, 50259, " world", false, true, false, false, false);     // normalized, with a space
                    added(a, 50260, "[tag]", false, false, true, false, false);       // lstrip
                    added(a, 50261, "ab", false, false, false, true, true);           // rstrip + single word
                    added(a, 50262, "<|user|>x", true, false, false, false, false);   // longest match wins
                }
                case "gpt2-roberta" -> {
                    ArrayNode a = (ArrayNode) root.get("added_tokens");
                    added(a, 0, "<s>", true, false, false, false, false);
                    added(a, 0, "</s>", true, false, false, false, false);
                    added(a, 0, "<mask>", true, false, true, false, false);
                    ((ObjectNode) root.get("pre_tokenizer")).put("add_prefix_space", true);
                    ObjectNode post = root.putObject("post_processor").put("type", "RobertaProcessing");
                    post.putArray("sep").add("</s>").add(50258);
                    post.putArray("cls").add("<s>").add(50257);
                    post.put("trim_offsets", true).put("add_prefix_space", true);
                }
                case "gpt2-trim-offsets-no-decoder" -> {
                    ((ObjectNode) root.get("post_processor")).put("trim_offsets", true).put("add_prefix_space", false);
                    root.putNull("decoder");
                }
                case "gpt2-split-behaviors" -> {
                    ObjectNode pre = root.putObject("pre_tokenizer").put("type", "Sequence");
                    ArrayNode seq = pre.putArray("pretokenizers");
                    split(seq, "String", " ", "MergedWithPrevious", false);
                    split(seq, "Regex", "\\p{P}", "MergedWithNext", false);
                    split(seq, "Regex", "\\d", "Contiguous", false);
                    split(seq, "Regex", "[xq]+", "Removed", false);
                    split(seq, "Regex", "\\s+", "Isolated", false);
                    byteLevelPre(seq, false, false);
                }
                case "gpt2-split-invert-digits" -> {
                    ObjectNode pre = root.putObject("pre_tokenizer").put("type", "Sequence");
                    ArrayNode seq = pre.putArray("pretokenizers");
                    split(seq, "Regex", "\\p{L}+|\\s", "Isolated", true);
                    seq.addObject().put("type", "Digits").put("individual_digits", true);
                    byteLevelPre(seq, true, true);
                }
                case "gpt2-tekken-split" -> { // Mistral Tekken's regex (o200k's without contractions, single digits)
                    ObjectNode pre = root.putObject("pre_tokenizer").put("type", "Sequence");
                    ArrayNode seq = pre.putArray("pretokenizers");
                    split(seq, "Regex", SplitRegex.TEKKEN_PATTERN, "Isolated", false);
                    byteLevelPre(seq, false, false);
                }
                case "llama3-qwen2-style" -> { // as Qwen2's files: single-digit regex, NFC normalizer, ignore_merges false
                    ((ObjectNode) root.get("pre_tokenizer").get("pretokenizers").get(0).get("pattern")).put("Regex", SplitRegex.QWEN2_PATTERN);
                    root.putObject("normalizer").put("type", "NFC");
                    model(root).put("ignore_merges", false);
                }
                case "llama2-unk-no-fallback" -> model(root).put("byte_fallback", false);
                case "llama2-unk-no-fuse" -> model(root).put("byte_fallback", false).put("fuse_unk", false);
                case "llama2-no-unk" -> model(root).put("byte_fallback", false).putNull("unk_token");
                case "llama2-normalizers" -> {
                    ArrayNode n = (ArrayNode) root.get("normalizer").get("normalizers");
                    n.insertObject(0).put("type", "Strip").put("strip_left", true).put("strip_right", true);
                    n.insertObject(0).put("type", "Lowercase");
                    n.insertObject(0).put("type", "NFKC");
                }
                case "llama2-metaspace-always-split" -> {
                    ((ObjectNode) root.get("pre_tokenizer")).put("prepend_scheme", "always").put("split", true);
                    ObjectNode dec = (ObjectNode) root.get("decoder").get("decoders").get(0);
                    dec.put("prepend_scheme", "always").put("split", true);
                }
                default -> throw new IllegalArgumentException(name);
            }
        });
        HuggingFaceTokenizer ref = ref(p);
        BpeTokenizer tok = BpeTokenizer.fromFile(p);
        List<String> texts = new ArrayList<>(TokenizerTexts.bpeCurated());
        texts.addAll(List.of("hello world", "say hello", "xhello", "hello_x", "Hello hello", "<|user|>", " <|user|>  x", "a<|user|>xb",
                "[tag] x [tag]", "  [tag]", "ab ab", "xab ab_", "ab  cd", "ab\t", "<mask>", "a <mask> b", "q x q", "1 2 33 444",
                "  leading", "Straße İstanbul ﬁ", "ÅNGSTRÖM"));
        texts.addAll(TokenizerTexts.randomBpe(1234L + name.hashCode(), 400, 40));
        Mismatches mm = new Mismatches("variant " + name);
        for (String t : texts) compare(mm, t, ref.encode(t), tok.encode(t), tok);
        mm.check(700);
        Mismatches mp = new Mismatches("variant " + name + ", pairs");
        List<String> a = TokenizerTexts.bpeCurated();
        for (int i = 0; i + 1 < a.size(); i += 7) compare(mp, a.get(i) + " || " + a.get(i + 1), null, ref.encode(a.get(i), a.get(i + 1)), tok.encode(a.get(i), a.get(i + 1)), tok);
        mp.check(40);
        List<String> bad = new ArrayList<>();
        for (String t : texts.subList(0, 400)) {
            long[] ids = ref.encode(t).getIds();
            for (boolean skip : new boolean[] {true, false}) {
                String want = ref.decode(ids, skip), got = tok.decode(ints(ids), skip);
                if (!want.equals(got)) bad.add("[" + show(t) + "] skip=" + skip + ": HF [" + show(want) + "] ours [" + show(got) + "]");
            }
        }
        if (!bad.isEmpty()) fail(name + ": " + bad.size() + " decodes differ; first:\n" + String.join("\n", bad.subList(0, Math.min(8, bad.size()))));
        Files.deleteIfExists(p);
    }
}
