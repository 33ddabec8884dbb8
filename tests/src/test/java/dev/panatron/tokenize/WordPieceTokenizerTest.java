package dev.panatron.tokenize;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Behaviour that needs no reference: bad files, bad arguments, truncation/padding mechanics, API contracts. */
class WordPieceTokenizerTest {

    static WordPieceTokenizer tok;  // the file's settings: truncate to 128, pad to 128
    static String json;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = WordPieceTokenizerTest.class.getResourceAsStream(WordPieceParityTest.RESOURCE)) {
            json = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        tok = WordPieceTokenizer.fromJson(json, "all-minilm-l6-v2-tokenizer.json");
    }

    static String message(Class<? extends Throwable> type, org.junit.jupiter.api.function.Executable call) {
        return assertThrows(type, call).getMessage();
    }

    // ------------------------------------------------------------------ bad files

    @Test
    void missingFileNamesThePath(@TempDir Path dir) {
        Path p = dir.resolve("nope/tokenizer.json");
        String m = message(NoSuchFileException.class, () -> WordPieceTokenizer.fromFile(p));
        assertTrue(m.contains(p.toString()), m);
    }

    @Test
    void directoryInsteadOfFile(@TempDir Path dir) {
        String m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(dir));
        assertTrue(m.contains(dir.toString()) && m.contains("directory"), m);
    }

    @Test
    void emptyFile(@TempDir Path dir) throws IOException {
        Path p = Files.writeString(dir.resolve("tokenizer.json"), "");
        String m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(p));
        assertTrue(m.contains(p.toString()) && m.contains("empty"), m);
    }

    @Test
    void truncatedFileAtManyPoints(@TempDir Path dir) throws IOException {
        byte[] all = json.getBytes(StandardCharsets.UTF_8);
        Random r = new Random(5);
        for (int k = 0; k < 12; k++) {
            int cut = k == 0 ? all.length - 1 : 1 + r.nextInt(all.length - 2);
            Path p = dir.resolve("cut" + k + ".json");
            Files.write(p, Arrays.copyOf(all, cut));
            String m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(p));
            assertTrue(m.startsWith(p.toString() + ": "), m);
            assertTrue(m.contains("truncated") || m.contains("not valid JSON"), "cut at " + cut + ": " + m);
        }
    }

    @Test
    void corruptBytes(@TempDir Path dir) throws IOException {
        byte[] all = json.getBytes(StandardCharsets.UTF_8);
        Random r = new Random(6);
        byte[] garbage = new byte[4096];
        r.nextBytes(garbage);
        Path p = Files.write(dir.resolve("garbage.json"), garbage);
        String m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(p));
        assertTrue(m.startsWith(p.toString() + ": "), m);
        // a structural character knocked out in the middle
        byte[] broken = all.clone();
        int at = json.indexOf("\"pre_tokenizer\"");
        broken[at - 2] = '#';
        Path q = Files.write(dir.resolve("broken.json"), broken);
        m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(q));
        assertTrue(m.contains(q.toString()) && m.contains("not valid JSON") && m.contains("line"), m);
    }

    @Test
    void notATokenizerJson() {
        assertTrue(message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromJson("[1, 2, 3]", "x.json"))
                .contains("expected a JSON object"));
        assertTrue(message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromJson("{\"version\": \"1.0\"}", "x.json"))
                .contains("no \"model\""));
        assertTrue(message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromJson("   ", "x.json"))
                .contains("x.json"));
    }

    @Test
    void bpeTokenizerIsRejectedByName(@TempDir Path dir) throws IOException {
        String bpe = """
            {"version": "1.0", "added_tokens": [], "normalizer": null,
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
             "post_processor": null, "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                       "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                       "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}""";
        Path p = Files.writeString(dir.resolve("gpt2-tokenizer.json"), bpe);
        String m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(p));
        assertTrue(m.contains(p.toString()) && m.contains("BPE") && m.contains("WordPiece"), m);
        // an untyped model with merges is BPE too
        String untyped = bpe.replace("\"type\": \"BPE\", ", "");
        m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromJson(untyped, "old.json"));
        assertTrue(m.contains("BPE"), m);
    }

    static com.fasterxml.jackson.databind.node.ObjectNode small;

    /** The fixture with a small vocabulary (fast to parse many times), edited by {@code change}. */
    static synchronized String edit(java.util.function.Consumer<com.fasterxml.jackson.databind.node.ObjectNode> change) {
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        try {
            if (small == null) {
                small = (com.fasterxml.jackson.databind.node.ObjectNode) mapper.readTree(json);
                // the special tokens have ids 0 and 100..103
                var vocab = (com.fasterxml.jackson.databind.node.ObjectNode) small.get("model").get("vocab");
                vocab.retain(java.util.stream.StreamSupport.stream(
                        java.util.Spliterators.spliteratorUnknownSize(vocab.fieldNames(), 0), false)
                        .filter(k -> vocab.get(k).intValue() < 1000).toList());
            }
            var root = small.deepCopy();
            change.accept(root);
            return mapper.writeValueAsString(root);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static com.fasterxml.jackson.databind.node.ObjectNode obj(com.fasterxml.jackson.databind.node.ObjectNode root, String field) {
        return (com.fasterxml.jackson.databind.node.ObjectNode) root.get(field);
    }

    @Test
    void brokenSectionsAreNamed() {
        record Case(String expected, java.util.function.Consumer<com.fasterxml.jackson.databind.node.ObjectNode> change) {}
        List<Case> cases = List.of(
            new Case("model.unk_token \"<unk>\" is not in model.vocab", r -> obj(r, "model").put("unk_token", "<unk>")),
            new Case("model.vocab must be an object", r -> obj(r, "model").putArray("vocab")),
            new Case("model.vocab is empty", r -> obj(r, "model").putObject("vocab")),
            new Case("model.vocab[\"[PAD]\"] must be an id", r -> obj(obj(r, "model"), "vocab").put("[PAD]", "zero")),
            new Case("model type is Unigram", r -> obj(r, "model").put("type", "Unigram")),
            new Case("normalizer type NFKC is not supported", r -> obj(r, "normalizer").put("type", "NFKC")),
            new Case("normalizer.lowercase must be true or false", r -> obj(r, "normalizer").put("lowercase", "yes")),
            new Case("pre_tokenizer type Metaspace is not supported", r -> obj(r, "pre_tokenizer").put("type", "Metaspace")),
            new Case("post_processor type RobertaProcessing", r -> obj(r, "post_processor").put("type", "RobertaProcessing")),
            new Case("is not an id of the vocabulary", r -> ((com.fasterxml.jackson.databind.node.ArrayNode)
                    obj(obj(obj(r, "post_processor"), "special_tokens"), "[CLS]").get("ids")).set(0, 999999)),
            new Case("truncation.max_length", r -> obj(r, "truncation").put("max_length", -5)),
            new Case("smaller than the 2 special tokens", r -> obj(r, "truncation").put("max_length", 1)),
            new Case("truncation.strategy must be", r -> obj(r, "truncation").put("strategy", "Shortest")),
            new Case("padding.strategy", r -> obj(r, "padding").put("strategy", "Sideways")),
            new Case("added_tokens must be an array", r -> r.putObject("added_tokens")),
            new Case("added_tokens[0].id must be an id", r -> ((com.fasterxml.jackson.databind.node.ObjectNode)
                    r.get("added_tokens").get(0)).put("id", -3)));
        for (Case c : cases) {
            String edited = edit(c.change());
            String m = message(TokenizerFormatException.class, () -> WordPieceTokenizer.fromJson(edited, "edited.json"));
            assertTrue(m.startsWith("edited.json: ") && m.contains(c.expected()), "expected [" + c.expected() + "] in: " + m);
        }
    }

    // ------------------------------------------------------------------ bad arguments

    @Test
    void nullTextsThrowNpeWithMessage() {
        assertTrue(message(NullPointerException.class, () -> tok.encode(null)).contains("text"));
        assertTrue(message(NullPointerException.class, () -> tok.encode("a", null)).contains("pair"));
        assertTrue(message(NullPointerException.class, () -> tok.encodeBatch(null)).contains("texts"));
        assertTrue(message(NullPointerException.class, () -> tok.encodeBatch(Arrays.asList("a", null, "b"))).contains("texts[1]"));
        assertTrue(message(NullPointerException.class, () -> tok.encodeAll(Arrays.asList(null, "b"))).contains("texts[0]"));
        assertTrue(message(NullPointerException.class, () -> tok.decode(null)).contains("ids"));
        assertTrue(message(NullPointerException.class, () -> WordPieceTokenizer.fromFile(null)).contains("file"));
    }

    @Test
    void badArguments() {
        assertTrue(message(IllegalArgumentException.class, () -> tok.encodeBatch(List.of())).contains("empty"));
        assertTrue(message(IllegalArgumentException.class, () -> tok.withMaxLength(1)).contains("special tokens"));
        assertTrue(message(IllegalArgumentException.class, () -> tok.withMaxLength(0)).contains(">= 1"));
        assertTrue(message(IllegalArgumentException.class, () -> tok.withPaddingToLength(0)).contains(">= 1"));
        assertTrue(message(IllegalArgumentException.class, () -> tok.decode(new int[] {101, 40000})).contains("40000"));
        assertTrue(message(IllegalArgumentException.class, () -> tok.decode(new int[] {-1})).contains("-1"));
    }

    // ------------------------------------------------------------------ truncation, padding, batches

    @Test
    void emptyTextIsClsSepPaddedTo128() {
        Encoding e = tok.encode("");
        assertEquals(128, e.length());
        assertEquals(101, e.id(0));
        assertEquals(102, e.id(1));
        assertEquals(0, e.id(2));
        assertEquals(2, e.realLength());
        Encoding plain = tok.withoutPadding().encode("");
        assertArrayEquals(new int[] {101, 102}, plain.ids());
        assertArrayEquals(new int[] {1, 1}, plain.attentionMask());
    }

    @Test
    void tenThousandCharTextIsTruncatedKeepingClsAndSep() {
        StringBuilder sb = new StringBuilder();
        Random r = new Random(11);
        String[] words = {"alpha", "beta", "gamma", "delta", "épsilon", "中文", "naïve", "re-use", "x²", "[MASK]"};
        while (sb.length() < 10_000) sb.append(words[r.nextInt(words.length)]).append(r.nextInt(4) == 0 ? ", " : " ");
        String text = sb.substring(0, 10_000);
        WordPieceTokenizer unlimited = tok.withoutTruncation().withoutPadding();
        int[] all = unlimited.encode(text).ids();
        assertTrue(all.length > 2000, "untruncated: " + all.length);
        for (int max : new int[] {128, 256, 512}) {
            Encoding e = tok.withoutPadding().withMaxLength(max).encode(text);
            int[] ids = e.ids();
            assertEquals(max, ids.length);
            assertEquals(101, ids[0]);
            assertEquals(102, ids[max - 1]);
            // the kept tokens are the first max-2 of the untruncated encoding
            assertArrayEquals(Arrays.copyOfRange(all, 0, max - 1), Arrays.copyOfRange(ids, 0, max - 1));
            // offsets point into the text
            assertTrue(e.offsetEnd(max - 2) <= text.length() && e.offsetEnd(max - 2) > 0);
        }
        // left truncation keeps the end
        WordPieceTokenizer left = tok.withoutPadding().withTruncation(new Truncation(128, Truncation.Strategy.LONGEST_FIRST,
                Truncation.Direction.LEFT, 0));
        int[] l = left.encode(text).ids();
        assertEquals(128, l.length);
        assertArrayEquals(Arrays.copyOfRange(all, all.length - 127, all.length), Arrays.copyOfRange(l, 1, 128));
    }

    @Test
    void earlyStopOnLongTextsGivesWhatFullTokenizationGives() {
        // long texts are tokenized in chunks until truncation's limit: the kept tokens must be those
        // of tokenizing everything (chunk edges near 1024 chars land on many kinds of characters)
        List<String> texts = new java.util.ArrayList<>(List.of(
                TokenizerBenchmark.MIXED.repeat(45),
                "中文字符测试".repeat(2000),                       // no whitespace at all
                ("word\u0085" + "x\u0301\u0323y ").repeat(900),   // NEL (removed, not a split) and marks
                ("a".repeat(1023) + " b\u3000c\td").repeat(12),
                "é".repeat(5000) + " tail"));
        for (String t : TokenizerTexts.random(77, 20, 6000)) texts.add(t);
        WordPieceTokenizer unlimited = tok.withoutTruncation().withoutPadding();
        for (String text : texts) {
            Encoding all = unlimited.encode(text);
            for (int max : new int[] {3, 16, 128, 512}) {
                Encoding e = tok.withoutPadding().withMaxLength(max).encode(text);
                int keep = Math.min(max, all.length()) - 1;
                assertArrayEquals(Arrays.copyOfRange(all.ids(), 0, keep), Arrays.copyOfRange(e.ids(), 0, keep),
                        "max " + max + ", text of " + text.length() + " chars");
                assertArrayEquals(Arrays.copyOfRange(all.offsets(), 0, 2 * keep), Arrays.copyOfRange(e.offsets(), 0, 2 * keep));
                assertEquals(102, e.id(e.length() - 1));
            }
        }
    }

    @Test
    void batchShapesAndPadding() {
        List<String> texts = List.of("short", "a somewhat longer sentence with more tokens in it", "", "mid length text");
        Batch fixed = tok.encodeBatch(texts);
        assertEquals(4, fixed.size());
        assertEquals(128, fixed.length());
        Batch b = tok.withPaddingToLongest().encodeBatch(texts);
        int[] lengths = b.lengths();
        int longest = Arrays.stream(lengths).max().orElseThrow();
        assertEquals(longest, b.length());
        int[] ids = b.ids(), mask = b.attentionMask();
        for (int i = 0; i < 4; i++) {
            int[] single = tok.withoutPadding().encode(texts.get(i)).ids();
            assertEquals(single.length, lengths[i]);
            assertArrayEquals(single, Arrays.copyOfRange(ids, i * b.length(), i * b.length() + single.length));
            for (int t = 0; t < b.length(); t++) {
                assertEquals(t < single.length ? 1 : 0, mask[i * b.length() + t]);
                if (t >= single.length) assertEquals(0, ids[i * b.length() + t]);
            }
        }
        assertEquals(Arrays.stream(lengths).sum(), b.realTokens());
        long[] wide = b.idsAsLong();
        for (int i = 0; i < ids.length; i++) assertEquals(ids[i], wide[i]);
        // padding off still gives a rectangular batch
        assertEquals(longest, tok.withoutPadding().encodeBatch(texts).length());
        // left padding and multiple-of
        Padding p = new Padding(Padding.Strategy.LONGEST, 0, Padding.Direction.LEFT, 8, 0, 0, "[PAD]");
        Batch lp = tok.withPadding(p).encodeBatch(texts);
        assertEquals(0, lp.length() % 8);
        assertTrue(lp.length() >= longest && lp.length() < longest + 8);
        int[] lids = lp.ids();
        int[] first = tok.withoutPadding().encode(texts.get(0)).ids();
        assertArrayEquals(first, Arrays.copyOfRange(lids, lp.length() - first.length, lp.length()));
        // fixed padding shorter than the longest text: rows are still rectangular
        Batch small = tok.withoutTruncation().withPaddingToLength(4).encodeBatch(texts);
        assertEquals(longest, small.length());
    }

    @Test
    void pairsGetTypeIdsAndTruncateLongestFirst() {
        WordPieceTokenizer t = tok.withoutPadding();
        Encoding e = t.encode("how old are you?", "i am six");
        int[] types = e.typeIds();
        int[] ids = e.ids();
        assertEquals(101, ids[0]);
        int firstSep = -1;
        for (int i = 0; i < ids.length; i++) if (ids[i] == 102) { firstSep = i; break; }
        for (int i = 0; i <= firstSep; i++) assertEquals(0, types[i]);
        for (int i = firstSep + 1; i < ids.length; i++) assertEquals(1, types[i]);
        assertEquals(102, ids[ids.length - 1]);
        Encoding longPair = t.withMaxLength(16).encode("one two three four five six seven eight nine ten eleven twelve", "a b");
        assertEquals(16, longPair.length());
        assertEquals(102, longPair.id(15));
        assertEquals(102, longPair.id(12)); // [CLS] + 11 of A + [SEP] + 2 of B + [SEP]
    }

    @Test
    void specialTokensInTextAndDecode() {
        WordPieceTokenizer t = tok.withoutPadding();
        Encoding e = t.encode("Paris is the [MASK] of France.");
        assertTrue(Arrays.stream(e.ids()).anyMatch(i -> i == 103));
        int mask = 0;
        while (e.id(mask) != 103) mask++;
        assertEquals("[MASK]", "Paris is the [MASK] of France.".substring(e.offsetStart(mask), e.offsetEnd(mask)));
        assertEquals("paris is the of france.", t.decode(e.ids()));
        assertEquals("[CLS] paris is the [MASK] of france. [SEP]", t.decode(e.ids(), false));
        assertEquals("[CLS]", t.idToToken(101));
        assertEquals(103, t.tokenToId("[MASK]").orElseThrow());
        assertTrue(t.isSpecial(101));
        assertFalse(t.isSpecial(7592));
        assertEquals(30522, t.vocabSize());
        assertArrayEquals(new String[] {"[CLS]", "em", "##bed", "##ding", "##s", "[SEP]"}, t.tokens(t.encode("Embeddings")));
        assertEquals("embeddings", t.decode(t.encode("Embeddings").ids()));
    }

    @Test
    void offsetsPointIntoTheInput() {
        WordPieceTokenizer t = tok.withoutPadding();
        String text = "Héllo, wörld! 中文 😀 tëst";
        Encoding e = t.encode(text);
        String[] toks = t.tokens(e);
        assertEquals("Héllo", text.substring(e.offsetStart(1), e.offsetEnd(1)));
        assertEquals(",", text.substring(e.offsetStart(2), e.offsetEnd(2)));
        for (int i = 1; i < e.length() - 1; i++) {
            assertTrue(e.offsetStart(i) < e.offsetEnd(i) && e.offsetEnd(i) <= text.length(), toks[i]);
        }
        assertEquals("😀", text.substring(e.offsetStart(7), e.offsetEnd(7)));
        assertEquals(0, e.offsetStart(0));
        assertEquals(0, e.offsetEnd(0));
    }

    @Test
    void loneSurrogatesAndOddInputDoNotCrash() {
        WordPieceTokenizer t = tok.withoutPadding();
        for (String s : new String[] {"\uD800", "a\uDC00b", "\uDBFF\uDBFF", "x\uD83D", "\uDE00x"}) {
            Encoding e = t.encode(s);
            assertEquals(101, e.id(0));
            assertEquals(102, e.id(e.length() - 1));
        }
    }

    @Test
    void oneTokenizerServesManyThreads() throws Exception {
        WordPieceTokenizer t = tok.withoutPadding();
        List<String> texts = new java.util.ArrayList<>(TokenizerTexts.curated());
        texts.addAll(TokenizerTexts.random(31, 300, 60));
        List<Encoding> expected = texts.stream().map(t::encode).toList();
        var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        try {
            List<java.util.concurrent.Future<Integer>> futures = new java.util.ArrayList<>();
            for (int w = 0; w < 4; w++) {
                int offset = w * 37;
                futures.add(pool.submit(() -> {
                    int bad = 0;
                    for (int k = 0; k < texts.size(); k++) {
                        int i = (k + offset) % texts.size();
                        if (!t.encode(texts.get(i)).equals(expected.get(i))) bad++;
                    }
                    return bad;
                }));
            }
            for (var f : futures) assertEquals(0, f.get().intValue());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void encodingsAreImmutable() {
        Encoding e = tok.withoutPadding().encode("hello world");
        int[] ids = e.ids();
        ids[1] = 999;
        assertEquals(7592, e.id(1));
        Batch b = tok.encodeBatch(List.of("hello"));
        int[] bids = b.ids();
        bids[0] = 5;
        assertEquals(101, b.ids()[0]);
        assertEquals(e, tok.withoutPadding().encode("hello world"));
        assertThrows(IllegalArgumentException.class, () -> new Encoding(new int[2], new int[2], new int[2], new int[3]));
    }

    @Test
    void configurationCopiesLeaveTheOriginalAlone() {
        assertEquals(128, tok.maxLength().orElseThrow());
        WordPieceTokenizer t512 = tok.withMaxLength(512).withoutPadding();
        assertEquals(512, t512.maxLength().orElseThrow());
        assertTrue(t512.padding().isEmpty());
        assertEquals(128, tok.maxLength().orElseThrow());
        assertEquals(128, tok.encode("x").length());
        assertTrue(tok.withoutTruncation().maxLength().isEmpty());
        assertEquals(Padding.Strategy.LONGEST, tok.withPaddingToLongest().padding().orElseThrow().strategy());
    }
}
