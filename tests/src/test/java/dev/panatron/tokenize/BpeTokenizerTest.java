package dev.panatron.tokenize;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link BpeTokenizer} on its own: the merge loop against a naive BPE, the hand-written split
 * scanners against the same regexes on java.util.regex, the API (special tokens, BOS, truncation,
 * streaming decode, threads, the word cache), and bad tokenizer files.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BpeTokenizerTest {

    BpeTokenizer gpt2;
    BpeTokenizer llama3;
    BpeTokenizer llama2;

    @BeforeAll
    void load() throws IOException {
        Path dir = BpeTestFiles.dir();
        gpt2 = BpeTokenizer.fromFile(BpeTestFiles.gpt2(dir));
        llama3 = BpeTokenizer.fromFile(BpeTestFiles.llama3Style(dir));
        llama2 = BpeTokenizer.fromFile(BpeTestFiles.llama2Style(dir, false));
    }

    static final ObjectMapper JSON = new ObjectMapper();

    // ------------------------------------------------------------------ the merge loop against a naive BPE

    /**
     * A random BPE over a 5-letter alphabet (each merge makes a new token, so "lowest rank first,
     * leftmost on ties" defines the result), random words, and a plain quadratic BPE as the reference.
     */
    @Test
    void mergesMatchANaiveBpe(@TempDir Path tmp) throws IOException {
        Random r = new Random(20240917L);
        List<String> vocab = new ArrayList<>(List.of("a", "b", "c", "d", "e"));
        Set<String> known = new HashSet<>(vocab);
        List<String[]> merges = new ArrayList<>();
        while (merges.size() < 300) {
            String x = vocab.get(r.nextInt(vocab.size())), y = vocab.get(r.nextInt(vocab.size()));
            if (x.length() + y.length() > 8 || known.contains(x + y)) continue;
            merges.add(new String[] {x, y});
            vocab.add(x + y);
            known.add(x + y);
        }
        ObjectNode root = JSON.createObjectNode();
        ObjectNode model = root.putObject("model").put("type", "BPE");
        ObjectNode v = model.putObject("vocab");
        for (int i = 0; i < vocab.size(); i++) v.put(vocab.get(i), i);
        ArrayNode m = model.putArray("merges");
        for (String[] x : merges) m.add(x[0] + " " + x[1]);
        Path p = tmp.resolve("tiny.json");
        JSON.writeValue(p.toFile(), root);
        BpeTokenizer tok = BpeTokenizer.fromFile(p);
        Map<String, Integer> rank = new HashMap<>();
        for (int i = 0; i < merges.size(); i++) rank.put(merges.get(i)[0] + "\u0000" + merges.get(i)[1], i);
        for (int k = 0; k < 3000; k++) {
            StringBuilder sb = new StringBuilder();
            int n = 1 + r.nextInt(k < 2900 ? 20 : 400);
            for (int i = 0; i < n; i++) sb.append((char) ('a' + r.nextInt(5)));
            String word = sb.toString();
            // naive: merge the lowest-ranked adjacent pair (leftmost on ties) until none is left
            List<String> sy = new ArrayList<>();
            for (char c : word.toCharArray()) sy.add(String.valueOf(c));
            while (true) {
                int best = -1, bestRank = Integer.MAX_VALUE;
                for (int i = 0; i + 1 < sy.size(); i++) {
                    Integer rk = rank.get(sy.get(i) + "\u0000" + sy.get(i + 1));
                    if (rk != null && rk < bestRank) { best = i; bestRank = rk; }
                }
                if (best < 0) break;
                sy.set(best, sy.get(best) + sy.remove(best + 1));
            }
            int[] want = sy.stream().mapToInt(vocab::indexOf).toArray();
            assertArrayEquals(want, tok.encode(word).ids(), () -> "word " + word + ": " + sy);
        }
    }

    // ------------------------------------------------------------------ the split scanners

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "qwen2", "o200k", "tekken"})
    void handWrittenSplitMatchesTheRegex(String which) {
        SplitRegex fast = switch (which) {
            case "gpt2" -> SplitRegex.GPT2;
            case "llama3" -> SplitRegex.LLAMA3;
            case "qwen2" -> SplitRegex.QWEN2;
            case "o200k" -> SplitRegex.O200K;
            default -> SplitRegex.TEKKEN;
        };
        // the files' pattern strings select the scanners
        assertTrue(SplitRegex.of(BpeTestFiles.GPT2_REGEX, false) == SplitRegex.GPT2);
        assertTrue(SplitRegex.of(BpeTestFiles.LLAMA3_REGEX, false) == SplitRegex.LLAMA3);
        assertTrue(SplitRegex.of(BpeTestFiles.O200K_REGEX, false) == SplitRegex.O200K);
        SplitRegex slow = SplitRegex.generic(fast.source);
        assertTrue(fast != slow && !fast.getClass().equals(slow.getClass()));
        List<String> texts = new ArrayList<>(TokenizerTexts.bpeCurated());
        texts.addAll(TokenizerTexts.randomBpe(99L, 4000, 50));
        // dense in what the patterns care about: apostrophes, spaces, newlines, digits, letters, marks
        Random r = new Random(7L);
        String alphabet = "'sStTrReEvVmMlLdD\u017F \n\r\t\u00A0\u3000aZ09\u0663\u00BD.,!-/\u0301\u0903\u20DD\u200D😀中"
                + "\u01C5\u02B0\u00AA\u0391\u03B1\uD801\uDC00\uD801\uDC28";
        for (int k = 0; k < 4000; k++) {
            StringBuilder sb = new StringBuilder();
            int n = r.nextInt(30);
            for (int i = 0; i < n; i++) sb.appendCodePoint(alphabet.codePointAt(alphabet.offsetByCodePoints(0, r.nextInt(alphabet.codePointCount(0, alphabet.length())))));
            texts.add(sb.toString());
        }
        for (String t : texts) {
            AddedTokens.IntList a = new AddedTokens.IntList(16), b = new AddedTokens.IntList(16);
            fast.matches(t, 0, t.length(), a);
            slow.matches(t, 0, t.length(), b);
            assertArrayEquals(b.toArray(), a.toArray(), () -> which + " splits [" + WordPieceParityTest.show(t) + "]");
        }
    }

    @Test
    void characterClassesFollowOniguruma() {
        // \s is Oniguruma's Unicode \s (White_Space), not Character.isWhitespace
        for (int cp : new int[] {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}) {
            assertEquals(SplitRegex.SPACE, SplitRegex.classOf(cp), String.format("U+%04X", cp));
        }
        for (int cp : new int[] {0x1C, 0x1F, 0x180E, 0x200B, 0xFEFF}) assertEquals(SplitRegex.OTHER, SplitRegex.classOf(cp), String.format("U+%04X", cp));
        assertEquals(SplitRegex.NUMBER, SplitRegex.classOf(0xBD));     // ½ is No
        assertEquals(SplitRegex.LETTER, SplitRegex.classOf(0x2B820));  // CJK extension E
        assertEquals(SplitRegex.OTHER, SplitRegex.classOf(0x301));     // marks are not letters
    }

    // ------------------------------------------------------------------ API

    @Test
    void factoryPicksTheModel() throws IOException {
        Tokenizer t = Tokenizer.fromFile(BpeTestFiles.gpt2(BpeTestFiles.dir()));
        assertInstanceOf(BpeTokenizer.class, t);
        assertArrayEquals(new int[] {15496, 995}, t.encode("Hello world").ids());
        Path wp = Files.createTempFile("wordpiece", ".json");
        try (InputStream in = BpeTokenizerTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, wp, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        try {
            Tokenizer w = Tokenizer.fromFile(wp);
            assertInstanceOf(WordPieceTokenizer.class, w);
            assertArrayEquals(new int[] {101, 7592, 2088, 102}, Arrays.copyOf(w.encode("hello world").ids(), 4));
            assertEquals(Map.of("[PAD]", 0, "[UNK]", 100, "[CLS]", 101, "[SEP]", 102, "[MASK]", 103), w.specialTokens());
        } finally {
            Files.deleteIfExists(wp);
        }
    }

    @Test
    void vocabularyAndSpecialTokens() {
        assertEquals(50257, gpt2.vocabSize());
        assertEquals(Map.of("<|endoftext|>", 50256), gpt2.specialTokens());
        assertTrue(gpt2.isSpecial(50256));
        assertFalse(gpt2.isSpecial(262));
        assertEquals(262, gpt2.tokenToId("\u0120the").orElseThrow());
        assertEquals("\u0120the", gpt2.idToToken(262));
        assertTrue(gpt2.tokenToId("no such token").isEmpty());
        assertThrows(IllegalArgumentException.class, () -> gpt2.idToToken(50257));
        assertThrows(IllegalArgumentException.class, () -> gpt2.idToToken(-1));
        // cl100k has holes between its specials: those ids have no token
        assertThrows(IllegalArgumentException.class, () -> llama3.idToToken(100256));
        assertTrue(gpt2.isByteLevel() && llama3.isByteLevel() && !llama2.isByteLevel());
    }

    @Test
    void llama3AddsBeginOfText() {
        int bos = llama3.tokenToId("<|begin_of_text|>").orElseThrow();
        int[] ids = llama3.encode("Hello world").ids();
        assertEquals(bos, ids[0]);
        assertArrayEquals(Arrays.copyOfRange(ids, 1, ids.length), llama3.encodeToIds("Hello world", false));
        assertArrayEquals(ids, llama3.encodeToIds("Hello world", true));
        int eot = llama3.tokenToId("<|eot_id|>").orElseThrow();
        int[] chat = llama3.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", null, false).ids();
        assertEquals(eot, chat[chat.length - 1]);
        assertEquals("user\n\nHi", llama3.decode(chat));
        assertEquals("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", llama3.decode(chat, false));
    }

    @Test
    void truncationKeepsTheSpecialTokens() {
        BpeTokenizer t = llama3.withMaxLength(5);
        int[] ids = t.encode("The quick brown fox jumps over the lazy dog").ids();
        assertEquals(5, ids.length);
        assertEquals(llama3.tokenToId("<|begin_of_text|>").orElseThrow(), ids[0]);
        assertThrows(IllegalArgumentException.class, () -> llama3.withMaxLength(0));
        assertTrue(llama3.withMaxLength(1).encode("x y z").length() == 1);
    }

    @Test
    void lonelySurrogatesBecomeReplacementCharacters() {
        String s = "a\uD800b\uDC00c";
        assertEquals("a\uFFFDb\uFFFDc", gpt2.decode(gpt2.encode(s).ids()));
        assertArrayEquals("a\uFFFDb\uFFFDc".getBytes(StandardCharsets.UTF_8), gpt2.decodeBytes(gpt2.encode(s).ids(), true));
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama3", "llama2"})
    void streamingDecodeConcatenatesToTheWholeText(String which) {
        BpeTokenizer tok = switch (which) {
            case "gpt2" -> gpt2;
            case "llama3" -> llama3;
            default -> llama2;
        };
        List<String> texts = new ArrayList<>(TokenizerTexts.bpeCurated());
        texts.addAll(TokenizerTexts.randomBpe(3L, 300, 40));
        for (String t : texts) {
            int[] ids = tok.encode(t).ids();
            BpeTokenizer.DecodeStream ds = tok.decodeStream(true);
            StringBuilder sb = new StringBuilder();
            for (int id : ids) {
                String piece = ds.next(id);
                assertFalse(!piece.isEmpty() && Character.isHighSurrogate(piece.charAt(piece.length() - 1)), "a split surrogate pair");
                sb.append(piece);
            }
            String whole = tok.decode(ids);
            // what is still held back is an incomplete character at the end (U+FFFD in the whole decode)
            assertTrue(whole.startsWith(sb.toString()), () -> which + " [" + WordPieceParityTest.show(t) + "]: streamed ["
                    + WordPieceParityTest.show(sb.toString()) + "] whole [" + WordPieceParityTest.show(whole) + "]");
            if (!whole.endsWith("\uFFFD")) assertEquals(whole, sb.toString(), () -> which + " [" + WordPieceParityTest.show(t) + "]");
        }
    }

    @Test
    void oneTokenizerServesManyThreads() throws Exception {
        List<String> texts = TokenizerTexts.randomBpe(8L, 400, 200);
        List<int[]> want = new ArrayList<>();
        BpeTokenizer fresh = BpeTokenizer.fromFile(BpeTestFiles.llama3Style(BpeTestFiles.dir()));
        for (String t : texts) want.add(fresh.encode(t).ids());
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int th = 0; th < 4; th++) {
                int offset = th;
                fs.add(pool.submit(() -> {
                    for (int k = 0; k < texts.size(); k++) {
                        int i = (k * 7 + offset * 101) % texts.size();
                        assertArrayEquals(want.get(i), llama3.encode(texts.get(i)).ids());
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) f.get();
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void theWordCacheStaysBoundedAndCorrect() {
        // more distinct words than the cache holds: it is cleared and refilled, results unchanged
        Random r = new Random(11L);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < BpeModel.CACHE_CAPACITY + 2000; i++) {
            for (int k = 0; k < 3 + r.nextInt(6); k++) sb.append((char) ('a' + r.nextInt(26)));
            sb.append(' ');
        }
        String text = sb.toString();
        int[] first = gpt2.encode(text).ids();
        int[] again = gpt2.encode(text).ids();
        assertArrayEquals(first, again);
        assertEquals(text, gpt2.decode(first));
    }

    // ------------------------------------------------------------------ bad files

    Path write(Path dir, String name, String json) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, json);
        return p;
    }

    static String minimal(String model, String extra) {
        return "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":null,\"post_processor\":null,"
                + "\"decoder\":null" + extra + ",\"model\":" + model + "}";
    }

    static final String GOOD_MODEL = "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}";

    void assertFormatError(Path p, String... parts) {
        TokenizerFormatException e = assertThrows(TokenizerFormatException.class, () -> Tokenizer.fromFile(p));
        assertTrue(e.getMessage().contains(p.toString()), () -> "the message names the file: " + e.getMessage());
        for (String part : parts) assertTrue(e.getMessage().contains(part), () -> "expected \"" + part + "\" in: " + e.getMessage());
    }

    @Test
    void corruptAndTruncatedFilesAreClearErrors(@TempDir Path tmp) throws IOException {
        assertFormatError(write(tmp, "empty.json", ""), "empty");
        String full = Files.readString(BpeTestFiles.gpt2(BpeTestFiles.dir()));
        assertFormatError(write(tmp, "truncated.json", full.substring(0, full.length() / 2)), "truncated JSON");
        Path bin = tmp.resolve("binary.json");
        byte[] junk = new byte[4096];
        new Random(1).nextBytes(junk);
        Files.write(bin, junk);
        assertFormatError(bin, "not valid JSON");
        assertFormatError(write(tmp, "array.json", "[1, 2, 3]"), "expected a JSON object");
        assertFormatError(write(tmp, "nomodel.json", "{\"version\":\"1.0\"}"), "no \"model\" object");
        assertFormatError(tmp, "is a directory");
        assertThrows(NoSuchFileException.class, () -> Tokenizer.fromFile(tmp.resolve("missing.json")));
        assertThrows(NoSuchFileException.class, () -> BpeTokenizer.fromFile(tmp.resolve("missing.json")));
    }

    @Test
    void unknownModelTypesAreClearErrors(@TempDir Path tmp) throws IOException {
        assertFormatError(write(tmp, "unigram.json", minimal("{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}", "")),
                "model type Unigram is not supported");
        assertFormatError(write(tmp, "wordlevel.json", minimal("{\"type\":\"WordLevel\",\"vocab\":{\"a\":0}}", "")),
                "WordLevel");
        Path bpe = write(tmp, "bpe.json", minimal(GOOD_MODEL, ""));
        TokenizerFormatException e = assertThrows(TokenizerFormatException.class, () -> WordPieceTokenizer.fromFile(bpe));
        assertTrue(e.getMessage().contains("BpeTokenizer"), e.getMessage());
        assertInstanceOf(BpeTokenizer.class, Tokenizer.fromFile(bpe));
        assertArrayEquals(new int[] {2, 0}, Tokenizer.fromFile(bpe).encode("aba").ids());
    }

    @Test
    void inconsistentMergesAreClearErrors(@TempDir Path tmp) throws IOException {
        assertFormatError(write(tmp, "unknown-left.json", minimal(
                "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"zz b\"]}", "")),
                "model.merges[1]", "\"zz\" is not in model.vocab");
        assertFormatError(write(tmp, "unknown-right.json", minimal(
                "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"q\"]]}", "")),
                "model.merges[0]", "\"q\" is not in model.vocab");
        assertFormatError(write(tmp, "result.json", minimal(
                "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"b a\"]}", "")),
                "model.merges[0]", "makes \"ba\", which is not in model.vocab");
        assertFormatError(write(tmp, "three.json", minimal(
                "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}", "")),
                "model.merges[0]", "one space");
        assertFormatError(write(tmp, "number.json", minimal(
                "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\", 42]}", "")),
                "model.merges[1]");
        assertFormatError(write(tmp, "single.json", minimal(
                "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}", "")),
                "model.merges[0]", "pair");
        assertFormatError(write(tmp, "unk.json", minimal(
                "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}", "")),
                "unk_token \"<unk>\" is not in model.vocab");
        assertFormatError(write(tmp, "negative.json", minimal("{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}", "")),
                "model.vocab[\"a\"]");
        assertFormatError(write(tmp, "emptyvocab.json", minimal("{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}", "")),
                "model.vocab is empty");
    }

    @Test
    void unsupportedComponentsAreClearErrors(@TempDir Path tmp) throws IOException {
        assertFormatError(write(tmp, "pre.json", minimal(GOOD_MODEL, "").replace("\"pre_tokenizer\":null",
                "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}")), "pre_tokenizer type BertPreTokenizer is not supported");
        assertFormatError(write(tmp, "norm.json", minimal(GOOD_MODEL, "").replace("\"normalizer\":null",
                "\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}")), "normalizer type Precompiled is not supported");
        assertFormatError(write(tmp, "dec.json", minimal(GOOD_MODEL, "").replace("\"decoder\":null",
                "\"decoder\":{\"type\":\"CTC\"}")), "decoder type CTC is not supported");
        assertFormatError(write(tmp, "post.json", minimal(GOOD_MODEL, "").replace("\"post_processor\":null",
                "\"post_processor\":{\"type\":\"Mystery\"}")), "post_processor type Mystery is not supported");
        assertFormatError(write(tmp, "regex.json", minimal(GOOD_MODEL, "").replace("\"pre_tokenizer\":null",
                "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\",\"invert\":false}")),
                "pre_tokenizer.pattern", "does not compile");
        assertFormatError(write(tmp, "behavior.json", minimal(GOOD_MODEL, "").replace("\"pre_tokenizer\":null",
                "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Sideways\",\"invert\":false}")),
                "pre_tokenizer.behavior", "Sideways");
        assertFormatError(write(tmp, "order.json", minimal(GOOD_MODEL, "").replace("\"pre_tokenizer\":null",
                "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"Digits\"}]}")),
                "ByteLevel pre-tokenizer followed by another");
        assertFormatError(write(tmp, "template.json", minimal(GOOD_MODEL, "").replace("\"post_processor\":null",
                "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                        + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{}}")),
                "post_processor.single[0]", "\"<s>\"");
    }
}
