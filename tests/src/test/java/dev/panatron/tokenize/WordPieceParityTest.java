package dev.panatron.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.CharSpan;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Exact parity with the real Hugging Face tokenizers library (Rust, through DJL's JNI binding) on
 * the all-MiniLM-L6-v2 tokenizer.json: ids, attention masks, type ids and offsets over curated
 * texts, seeded random Unicode strings, long texts, padded batches, pairs, decoding, and variants of
 * the file (casing, accents, cleaning, post-processor, added-token flags).
 *
 * <p>DJL applies its own truncation/padding options over the file's, so each reference is built
 * with explicit options: "HF defaults of this file" means truncation longest-first to 128 and
 * padding to a fixed 128 (the file's "truncation" and "padding" sections), special tokens added.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class WordPieceParityTest {

    static final String RESOURCE = "/all-minilm-l6-v2-tokenizer.json";

    Path dir;
    Path json;
    WordPieceTokenizer mine;
    HuggingFaceTokenizer refDefaults; // truncation 128 + padding Fixed(128): the file's own settings
    HuggingFaceTokenizer refPlain;    // truncation 128, no padding (offsets comparable token by token)
    final List<HuggingFaceTokenizer> opened = new ArrayList<>();

    @BeforeAll
    void load() throws IOException {
        dir = Files.createTempDirectory("pt-tok-parity");
        json = dir.resolve("tokenizer.json");
        try (InputStream in = WordPieceParityTest.class.getResourceAsStream(RESOURCE)) {
            if (in == null) fail("test resource " + RESOURCE + " missing: the langchain4j all-minilm-l6-v2 artifact must be on the test classpath");
            Files.copy(in, json);
        }
        mine = WordPieceTokenizer.fromFile(json);
        refDefaults = ref(json, Map.of("truncation", "true", "maxLength", "128", "padding", "max_length"));
        refPlain = ref(json, Map.of("truncation", "true", "maxLength", "128", "padding", "false"));
    }

    HuggingFaceTokenizer ref(Path file, Map<String, String> options) throws IOException {
        HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(file, options);
        opened.add(t);
        return t;
    }

    @AfterAll
    void close() throws IOException {
        for (HuggingFaceTokenizer t : opened) t.close();
        try (var s = Files.list(dir)) {
            for (Path p : s.toList()) Files.deleteIfExists(p);
        }
        Files.deleteIfExists(dir);
    }

    // ------------------------------------------------------------------ helpers

    static int[] ints(long[] a) {
        int[] r = new int[a.length];
        for (int i = 0; i < a.length; i++) r[i] = Math.toIntExact(a[i]);
        return r;
    }

    static String show(String text) {
        StringBuilder sb = new StringBuilder();
        text.codePoints().limit(80).forEach(c -> sb.append(String.format("U+%04X ", c)));
        if (text.codePointCount(0, text.length()) > 80) sb.append("...");
        return sb.toString().trim();
    }

    /** Collects mismatches and fails with a count and the first few. */
    static final class Mismatches {
        final String what;
        final List<String> items = new ArrayList<>();
        int checked;

        Mismatches(String what) { this.what = what; }

        void add(String m) { items.add(m); }

        void check(int minimumChecked) {
            if (!items.isEmpty()) {
                fail(what + ": " + items.size() + " of " + checked + " texts differ from HF tokenizers; first ones:\n"
                        + String.join("\n", items.subList(0, Math.min(8, items.size()))));
            }
            assertTrue(checked >= minimumChecked, what + ": only " + checked + " texts checked, expected >= " + minimumChecked);
        }
    }

    void compare(Mismatches mm, String text, ai.djl.huggingface.tokenizers.Encoding ref, Encoding got,
                 WordPieceTokenizer tok, boolean offsets) {
        mm.checked++;
        int[] rIds = ints(ref.getIds());
        String where = "text [" + show(text) + "]";
        if (!Arrays.equals(rIds, got.ids())) {
            mm.add(where + "\n  HF   " + Arrays.toString(rIds) + " " + Arrays.toString(ref.getTokens())
                    + "\n  ours " + Arrays.toString(got.ids()) + " " + Arrays.toString(tok.tokens(got)));
            return;
        }
        if (!Arrays.equals(ints(ref.getAttentionMask()), got.attentionMask())) {
            mm.add(where + ": attention masks differ: HF " + Arrays.toString(ref.getAttentionMask()) + " ours "
                    + Arrays.toString(got.attentionMask()));
            return;
        }
        if (!Arrays.equals(ints(ref.getTypeIds()), got.typeIds())) {
            mm.add(where + ": type ids differ: HF " + Arrays.toString(ref.getTypeIds()) + " ours " + Arrays.toString(got.typeIds()));
            return;
        }
        if (offsets) {
            CharSpan[] spans = ref.getCharTokenSpans();
            for (int i = 0; i < rIds.length; i++) {
                int rs = spans[i] == null ? 0 : spans[i].getStart(), re = spans[i] == null ? 0 : spans[i].getEnd();
                // ours are UTF-16 indices, HF's char offsets are code point indices
                int os = text.codePointCount(0, got.offsetStart(i)), oe = text.codePointCount(0, got.offsetEnd(i));
                if (rs != os || re != oe) {
                    mm.add(where + ": offsets of token " + i + " (" + ref.getTokens()[i] + ") differ: HF [" + rs + ", " + re
                            + ") ours [" + os + ", " + oe + ") (code points)");
                    return;
                }
            }
        }
    }

    // ------------------------------------------------------------------ the file as HF uses it

    @Test
    void curatedTextsMatchHfDefaultsOfTheFile() {
        assertEquals(128, mine.maxLength().orElseThrow());
        assertEquals(Padding.Strategy.FIXED, mine.padding().orElseThrow().strategy());
        Mismatches mm = new Mismatches("curated texts, HF defaults (truncate + pad to 128)");
        for (String t : TokenizerTexts.curated()) {
            compare(mm, t, refDefaults.encode(t), mine.encode(t), mine, false);
        }
        mm.check(200);
    }

    @Test
    void curatedTextsMatchIncludingOffsets() {
        WordPieceTokenizer tok = mine.withoutPadding();
        Mismatches mm = new Mismatches("curated texts, unpadded, with offsets");
        for (String t : TokenizerTexts.curated()) compare(mm, t, refPlain.encode(t), tok.encode(t), tok, true);
        mm.check(200);
    }

    @Test
    void randomUnicodeStringsMatch() {
        WordPieceTokenizer tok = mine.withoutPadding();
        Mismatches mm = new Mismatches("random Unicode strings (seed 20240917)");
        for (String t : TokenizerTexts.random(20240917L, 6000, 40)) compare(mm, t, refPlain.encode(t), tok.encode(t), tok, true);
        for (String t : TokenizerTexts.random(7L, 150, 1500)) compare(mm, t, refPlain.encode(t), tok.encode(t), tok, true);
        mm.check(6150);
    }

    @Test
    void textsWithoutSpecialTokensMatch() {
        WordPieceTokenizer tok = mine.withoutPadding();
        Mismatches mm = new Mismatches("add_special_tokens=false");
        for (String t : TokenizerTexts.curated()) compare(mm, t, refPlain.encode(t, false, false), tok.encode(t, null, false), tok, true);
        mm.check(200);
    }

    @ParameterizedTest
    @ValueSource(ints = {16, 128, 256, 512})
    void longTextsTruncateLikeHf(int maxLength) throws IOException {
        HuggingFaceTokenizer ref = ref(json, Map.of("truncation", "true", "maxLength", Integer.toString(maxLength), "padding", "false"));
        WordPieceTokenizer tok = mine.withoutPadding().withMaxLength(maxLength);
        Mismatches mm = new Mismatches("truncation to " + maxLength);
        List<String> texts = new ArrayList<>(TokenizerTexts.curated());
        texts.addAll(TokenizerTexts.random(99L + maxLength, 30, 3000));
        texts.add("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(200)); // ~11,000 chars
        texts.add(TokenizerBenchmark.MIXED.repeat(45)); // ~10,700 chars of mixed scripts, emoji, control chars
        for (String t : texts) {
            Encoding e = tok.encode(t);
            assertTrue(e.length() <= maxLength, "longer than " + maxLength + ": " + e.length());
            compare(mm, t, ref.encode(t), e, tok, true);
        }
        mm.check(230);
    }

    @Test
    void paddedBatchMatches() throws IOException {
        HuggingFaceTokenizer ref = ref(json, Map.of("truncation", "true", "maxLength", "128", "padding", "true"));
        WordPieceTokenizer tok = mine.withPaddingToLongest();
        List<String> all = TokenizerTexts.curated();
        Mismatches mm = new Mismatches("padded batches (to the longest)");
        for (int from = 0; from + 8 <= all.size(); from += 8) {
            List<String> texts = all.subList(from, from + 8);
            ai.djl.huggingface.tokenizers.Encoding[] r = ref.batchEncode(texts);
            Batch b = tok.encodeBatch(texts);
            int length = r[0].getIds().length;
            assertEquals(length, b.length(), "padded length of batch at " + from);
            int[] ids = b.ids(), mask = b.attentionMask(), types = b.typeIds();
            for (int i = 0; i < 8; i++) {
                compare(mm, texts.get(i), r[i], b.encodings().get(i), tok, false);
                assertEquals(Arrays.toString(ints(r[i].getIds())), Arrays.toString(Arrays.copyOfRange(ids, i * length, (i + 1) * length)));
                assertEquals(Arrays.toString(ints(r[i].getAttentionMask())), Arrays.toString(Arrays.copyOfRange(mask, i * length, (i + 1) * length)));
                assertEquals(Arrays.toString(ints(r[i].getTypeIds())), Arrays.toString(Arrays.copyOfRange(types, i * length, (i + 1) * length)));
                assertEquals(Arrays.stream(r[i].getAttentionMask()).sum(), b.lengths()[i]);
            }
        }
        mm.check(200);
        // and the file's own fixed padding through encodeAll
        List<String> eight = all.subList(0, 8);
        ai.djl.huggingface.tokenizers.Encoding[] r = refDefaults.batchEncode(eight);
        List<Encoding> got = mine.encodeAll(eight);
        Mismatches fixed = new Mismatches("encodeAll with the file's fixed padding");
        for (int i = 0; i < 8; i++) compare(fixed, eight.get(i), r[i], got.get(i), mine, false);
        fixed.check(8);
    }

    @Test
    void pairsMatch() {
        WordPieceTokenizer tok = mine.withoutPadding();
        List<String> a = TokenizerTexts.curated();
        Mismatches mm = new Mismatches("text pairs (longest-first truncation to 128)");
        for (int i = 0; i + 1 < a.size(); i++) {
            String x = a.get(i), y = a.get(a.size() - 1 - i);
            compare(mm, x + " || " + y, refPlain.encode(x, y), tok.encode(x, y), tok, false);
        }
        mm.check(200);
    }

    @Test
    void decodeMatches() {
        WordPieceTokenizer tok = mine.withoutPadding();
        int checked = 0;
        List<String> bad = new ArrayList<>();
        for (String t : TokenizerTexts.curated()) {
            long[] ids = refPlain.encode(t).getIds();
            String want = refPlain.decode(ids, true);
            String got = tok.decode(ints(ids));
            checked++;
            if (!want.equals(got)) bad.add("[" + t + "]: HF \"" + want + "\" ours \"" + got + "\"");
            String wantAll = refPlain.decode(ids, false), gotAll = tok.decode(ints(ids), false);
            if (!wantAll.equals(gotAll)) bad.add("[" + t + "] (special kept): HF \"" + wantAll + "\" ours \"" + gotAll + "\"");
        }
        if (!bad.isEmpty()) fail(bad.size() + " decodes differ; first: \n" + String.join("\n", bad.subList(0, Math.min(8, bad.size()))));
        assertTrue(checked >= 200);
    }

    // ------------------------------------------------------------------ variants of the file

    static final ObjectMapper JSON = new ObjectMapper();

    Path variant(String name, Consumer<ObjectNode> edit) throws IOException {
        ObjectNode root = (ObjectNode) JSON.readTree(json.toFile());
        edit.accept(root);
        Path p = dir.resolve(name + ".json");
        JSON.writeValue(p.toFile(), root);
        return p;
    }

    static ObjectNode normalizer(ObjectNode root) { return (ObjectNode) root.get("normalizer"); }

    @ParameterizedTest
    @ValueSource(strings = {"cased", "cased-strip", "lower-nostrip", "no-clean", "no-chinese", "no-normalizer",
        "bert-processing", "added-flags", "short-words"})
    void variantsOfTheFileMatch(String name) throws IOException {
        Path p = variant(name, root -> {
            switch (name) {
                case "cased" -> normalizer(root).put("lowercase", false).putNull("strip_accents");
                case "cased-strip" -> normalizer(root).put("lowercase", false).put("strip_accents", true);
                case "lower-nostrip" -> normalizer(root).put("strip_accents", false);
                case "no-clean" -> normalizer(root).put("clean_text", false);
                case "no-chinese" -> normalizer(root).put("handle_chinese_chars", false);
                case "no-normalizer" -> root.putNull("normalizer");
                case "bert-processing" -> {
                    ObjectNode post = root.putObject("post_processor");
                    post.put("type", "BertProcessing");
                    post.putArray("sep").add("[SEP]").add(102);
                    post.putArray("cls").add("[CLS]").add(101);
                }
                case "added-flags" -> {
                    ArrayNode added = (ArrayNode) root.get("added_tokens");
                    for (var t : added) if (t.get("content").asText().equals("[MASK]")) ((ObjectNode) t).put("lstrip", true).put("rstrip", true);
                    added.addObject().put("id", 30522).put("content", "Hello").put("single_word", true).put("lstrip", false)
                            .put("rstrip", false).put("normalized", true).put("special", false);
                    added.addObject().put("id", 30523).put("content", "<eos>").put("single_word", false).put("lstrip", true)
                            .put("rstrip", false).put("normalized", false).put("special", true);
                    added.addObject().put("id", 30524).put("content", "ab").put("single_word", true).put("lstrip", false)
                            .put("rstrip", true).put("normalized", false).put("special", false);
                }
                case "short-words" -> ((ObjectNode) root.get("model")).put("max_input_chars_per_word", 5);
                default -> throw new IllegalArgumentException(name);
            }
        });
        HuggingFaceTokenizer ref = ref(p, Map.of("truncation", "true", "maxLength", "128", "padding", "false"));
        WordPieceTokenizer tok = WordPieceTokenizer.fromFile(p).withoutPadding();
        List<String> texts = new ArrayList<>(TokenizerTexts.curated());
        texts.addAll(List.of("Hello world", "say Hello", "xHello", "Hello_x", "Hello.", "hello HELLO Hello", "ab ab", "xab ab_", "a <eos> b",
                "  <eos>", "x<eos>", "[MASK]  x  [MASK]", "ab  cd", "ab\t", "ab"));
        texts.addAll(TokenizerTexts.random(1234L + name.hashCode(), 600, 40));
        Mismatches mm = new Mismatches("variant " + name);
        for (String t : texts) compare(mm, t, ref.encode(t), tok.encode(t), tok, true);
        mm.check(800);
    }
}
