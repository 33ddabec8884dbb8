package dev.panatron.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import dev.panatron.tokenize.AddedTokens.IntList;
import dev.panatron.tokenize.Assembly.Built;
import dev.panatron.tokenize.Assembly.Seq;
import dev.panatron.tokenize.Assembly.Template;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A WordPiece (BERT-family) tokenizer read from a Hugging Face {@code tokenizer.json}, producing the
 * ids HF tokenizers produces for the same file.
 *
 * <p>Pipeline, as HF runs it: added/special tokens are cut out of the raw text first (e.g. "[MASK]"
 * inside a sentence); each remaining piece goes through the {@code BertNormalizer} (clean_text,
 * handle_chinese_chars, strip_accents, lowercase), the {@code BertPreTokenizer} (split on whitespace,
 * isolate each punctuation character) and the WordPiece model (greedy longest match, continuing
 * pieces with the "##" prefix, [UNK] for a word that cannot be covered or is longer than
 * max_input_chars_per_word); then truncation (special tokens count toward the maximum and are kept),
 * the post-processor ([CLS] A [SEP] / [CLS] A [SEP] B [SEP], from TemplateProcessing or
 * BertProcessing) and padding.
 *
 * <p>Truncation and padding start as the file says (all-MiniLM-L6-v2's file truncates to 128 and
 * pads to a fixed 128); {@link #withMaxLength}, {@link #withPaddingToLongest()},
 * {@link #withoutPadding()} and friends return adjusted copies. Instances are immutable and
 * thread-safe; copies share the vocabulary.
 *
 * <p>Offsets are UTF-16 indices into the input string (HF's Python API gives code point indices;
 * they differ only after characters outside the BMP).
 */
public final class WordPieceTokenizer implements Tokenizer {

    private final Core core;
    private final Truncation truncation; // null: none
    private final Padding padding;       // null: none

    private WordPieceTokenizer(Core core, Truncation truncation, Padding padding) {
        this.core = core;
        this.truncation = truncation;
        this.padding = padding;
    }

    // ------------------------------------------------------------------ loading

    /**
     * Reads a tokenizer from a {@code tokenizer.json} file.
     *
     * @param file the tokenizer.json
     * @return the tokenizer, with the file's truncation and padding
     * @throws java.nio.file.NoSuchFileException if the file does not exist
     * @throws TokenizerFormatException          if the file is not valid JSON (empty, truncated,
     *                                           corrupt) or not a WordPiece tokenizer this class
     *                                           implements; the message names the file and the problem
     * @throws IOException                       if the file cannot be read
     */
    public static WordPieceTokenizer fromFile(Path file) throws IOException {
        return fromBytes(TokenizerJson.readFile(file), file.toString());
    }

    /**
     * Reads a tokenizer from a stream holding a {@code tokenizer.json} (e.g. a classpath resource).
     *
     * @param in     the JSON bytes (read to the end, not closed)
     * @param source a name for the stream, used in error messages
     * @throws TokenizerFormatException if the content is not a valid WordPiece tokenizer.json
     * @throws IOException              if the stream cannot be read
     */
    public static WordPieceTokenizer fromStream(InputStream in, String source) throws IOException {
        Objects.requireNonNull(in, "in");
        Objects.requireNonNull(source, "source");
        return fromBytes(in.readAllBytes(), source);
    }

    /**
     * Reads a tokenizer from the text of a {@code tokenizer.json}.
     *
     * @param json   the JSON text
     * @param source a name for it, used in error messages
     * @throws TokenizerFormatException if the text is not a valid WordPiece tokenizer.json
     */
    public static WordPieceTokenizer fromJson(String json, String source) throws TokenizerFormatException {
        Objects.requireNonNull(json, "json");
        Objects.requireNonNull(source, "source");
        return fromBytes(json.getBytes(java.nio.charset.StandardCharsets.UTF_8), source);
    }

    private static WordPieceTokenizer fromBytes(byte[] bytes, String source) throws TokenizerFormatException {
        return fromParsed(TokenizerJson.parse(bytes, source), source);
    }

    static WordPieceTokenizer fromParsed(TokenizerJson.Parsed parsed, String source) throws TokenizerFormatException {
        return new Parser(source, parsed.root(), parsed.vocab()).build();
    }

    // ------------------------------------------------------------------ configuration

    /** The file or stream name this tokenizer was read from. */
    public String source() { return core.source; }

    /** The truncation in effect, if any. */
    public Optional<Truncation> truncation() { return Optional.ofNullable(truncation); }

    /** The padding in effect, if any. */
    public Optional<Padding> padding() { return Optional.ofNullable(padding); }

    /** The maximum length (special tokens included) encodings are truncated to, if truncation is on. */
    public OptionalInt maxLength() { return truncation == null ? OptionalInt.empty() : OptionalInt.of(truncation.maxLength()); }

    /**
     * A copy that truncates to {@code maxLength} tokens, special tokens included (keeping the
     * strategy and direction of the current truncation, else longest-first from the right).
     *
     * @throws IllegalArgumentException if maxLength is smaller than the special tokens a single
     *                                  text gets (2 for [CLS] ... [SEP])
     */
    public WordPieceTokenizer withMaxLength(int maxLength) {
        if (maxLength < 1) throw new IllegalArgumentException("maxLength must be >= 1, got " + maxLength);
        return withTruncation(truncation == null ? Truncation.of(maxLength)
                : new Truncation(maxLength, truncation.strategy(), truncation.direction(), truncation.stride()));
    }

    /**
     * A copy with this truncation.
     *
     * @throws NullPointerException     if truncation is null (use {@link #withoutTruncation()})
     * @throws IllegalArgumentException if its maxLength is smaller than the special tokens a single text gets
     */
    public WordPieceTokenizer withTruncation(Truncation truncation) {
        Objects.requireNonNull(truncation, "truncation");
        int specials = core.single.specialCount();
        if (truncation.maxLength() < specials) {
            throw new IllegalArgumentException("maxLength " + truncation.maxLength() + " is smaller than the "
                    + specials + " special tokens the post-processor adds");
        }
        return new WordPieceTokenizer(core, truncation, padding);
    }

    /** A copy that never truncates. */
    public WordPieceTokenizer withoutTruncation() { return new WordPieceTokenizer(core, null, padding); }

    /**
     * A copy with this padding.
     *
     * @throws NullPointerException if padding is null (use {@link #withoutPadding()})
     */
    public WordPieceTokenizer withPadding(Padding padding) {
        Objects.requireNonNull(padding, "padding");
        return new WordPieceTokenizer(core, truncation, padding);
    }

    /** A copy that pads each batch to its longest encoding (and leaves a single encoding unpadded). */
    public WordPieceTokenizer withPaddingToLongest() {
        Padding b = basePadding();
        return withPadding(new Padding(Padding.Strategy.LONGEST, 0, b.direction(), b.padToMultipleOf(), b.padId(),
                b.padTypeId(), b.padToken()));
    }

    /**
     * A copy that pads every encoding to {@code length} tokens.
     *
     * @throws IllegalArgumentException if length &lt; 1
     */
    public WordPieceTokenizer withPaddingToLength(int length) {
        Padding b = basePadding();
        return withPadding(new Padding(Padding.Strategy.FIXED, length, b.direction(), b.padToMultipleOf(), b.padId(),
                b.padTypeId(), b.padToken()));
    }

    /** A copy that does not pad ({@link #encodeBatch} still pads to the longest: arrays must be rectangular). */
    public WordPieceTokenizer withoutPadding() { return new WordPieceTokenizer(core, truncation, null); }

    private Padding basePadding() { return padding != null ? padding : core.defaultPadding; }

    // ------------------------------------------------------------------ vocabulary

    /** The vocabulary size, added tokens included (one more than the largest id). */
    public int vocabSize() { return core.idToToken.length; }

    /** The id of a token (vocabulary entry or added token), if it has one. */
    public OptionalInt tokenToId(String token) {
        Objects.requireNonNull(token, "token");
        Integer id = core.added.get(token);
        if (id == null) id = core.vocab.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /**
     * The token of an id.
     *
     * @throws IllegalArgumentException if no token has this id
     */
    public String idToToken(int id) {
        if (id < 0 || id >= core.idToToken.length || core.idToToken[id] == null) {
            throw new IllegalArgumentException("no token has id " + id + " (vocabulary size " + core.idToToken.length + ")");
        }
        return core.idToToken[id];
    }

    /** Whether {@code id} is a special added token ([CLS], [SEP], [PAD], [MASK], [UNK] in BERT files). */
    public boolean isSpecial(int id) { return id >= 0 && core.specialIds.get(id); }

    @Override
    public Map<String, Integer> specialTokens() {
        Map<String, Integer> m = new java.util.LinkedHashMap<>();
        for (Map.Entry<String, Integer> e : core.added.entrySet()) if (core.specialIds.get(e.getValue())) m.put(e.getKey(), e.getValue());
        return java.util.Collections.unmodifiableMap(m);
    }

    /** The token strings of an encoding (for debugging). */
    public String[] tokens(Encoding e) {
        int[] ids = e.idsRaw();
        String[] r = new String[ids.length];
        for (int i = 0; i < ids.length; i++) r[i] = idToToken(ids[i]);
        return r;
    }

    // ------------------------------------------------------------------ encoding

    /**
     * Encodes one text with special tokens, truncation and padding as configured.
     *
     * @throws NullPointerException if text is null
     */
    public Encoding encode(String text) { return encode(text, null, true); }

    /**
     * Encodes a text pair ([CLS] A [SEP] B [SEP] for BERT) with truncation and padding as configured.
     *
     * @throws NullPointerException     if text or pair is null
     * @throws IllegalArgumentException if truncation cannot make the pair fit (e.g. ONLY_SECOND and
     *                                  the second text is too short)
     */
    public Encoding encode(String text, String pair) {
        Objects.requireNonNull(pair, "pair: the second text of a pair must not be null (use encode(text))");
        return encode(text, pair, true);
    }

    /**
     * Encodes a text, or a pair when {@code pair} is not null.
     *
     * @param addSpecialTokens whether the post-processor adds [CLS]/[SEP]
     * @throws NullPointerException     if text is null
     * @throws IllegalArgumentException if truncation cannot make a pair fit
     */
    public Encoding encode(String text, String pair, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text: the text to encode must not be null");
        Seq a = sequence(text, pair == null ? contentLimit(addSpecialTokens) : Integer.MAX_VALUE);
        Seq b = pair == null ? null : sequence(pair, Integer.MAX_VALUE);
        Built e = postProcess(a, b, addSpecialTokens);
        if (padding != null) e = e.pad(padding.targetLength(e.ids().length), padding);
        return e.toEncoding();
    }

    /**
     * Encodes texts as HF's encode_batch does: each as {@link #encode(String)}, then padded together
     * (to the longest, or to the fixed length, as configured; not padded if padding is off).
     *
     * @throws NullPointerException if the list or one of its texts is null
     */
    public List<Encoding> encodeAll(List<String> texts) {
        List<Built> built = buildAll(texts);
        if (padding != null) Assembly.padAll(built, padding);
        List<Encoding> r = new ArrayList<>(built.size());
        for (Built e : built) r.add(e.toEncoding());
        return r;
    }

    /**
     * Encodes texts into a padded batch of {@code [B, L]} arrays ready for the model: padded as
     * configured, or to the longest text when padding is off.
     *
     * @throws NullPointerException     if the list or one of its texts is null
     * @throws IllegalArgumentException if the list is empty
     */
    public Batch encodeBatch(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) throw new IllegalArgumentException("texts: the batch is empty, give at least one text");
        List<Built> built = buildAll(texts);
        return Assembly.batch(built, padding != null ? padding : core.defaultPadding);
    }

    private List<Built> buildAll(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        List<Built> built = new ArrayList<>(texts.size());
        int limit = contentLimit(true);
        for (int i = 0; i < texts.size(); i++) {
            String t = texts.get(i);
            if (t == null) throw new NullPointerException("texts[" + i + "] is null");
            built.add(postProcess(sequence(t, limit), null, true));
        }
        return built;
    }

    /** How many content tokens a single text can keep (to stop tokenizing long texts early). */
    private int contentLimit(boolean addSpecialTokens) {
        if (truncation == null || truncation.direction() != Truncation.Direction.RIGHT
                || truncation.strategy() == Truncation.Strategy.ONLY_SECOND) return Integer.MAX_VALUE; // (an error for one text)
        return truncation.maxLength() - (addSpecialTokens ? core.single.specialCount() : 0);
    }

    private Seq sequence(String text, int limit) {
        int n = text.length();
        IntList ids = new IntList(Math.min(n / 3 + 8, limit == Integer.MAX_VALUE ? n + 8 : limit + 8));
        IntList offs = new IntList(ids.a.length * 2);
        Core c = core;
        BertNormalizer.Buffer buf = new BertNormalizer.Buffer(Math.min(n, 1 << 16) + 16);
        char[] chars = null;
        if (!c.rawAdded.isEmpty() && n > 0) {
            chars = text.toCharArray();
            IntList m = new IntList(16);
            c.rawAdded.find(chars, 0, n, m);
            int at = 0;
            for (int k = 0; k < m.size && ids.size < limit; k += 3) {
                int s = m.get(k), e = m.get(k + 1), id = m.get(k + 2);
                if (s > at) piece(text, at, s, buf, ids, offs, limit);
                if (ids.size >= limit) break;
                ids.add(id);
                offs.add(s);
                offs.add(e);
                at = e;
            }
            if (at < n && ids.size < limit) piece(text, at, n, buf, ids, offs, limit);
        } else {
            piece(text, 0, n, buf, ids, offs, limit);
        }
        if (ids.size > limit) { // drop what the early stop overshot (the result is what truncation keeps)
            ids.size = limit;
            offs.size = 2 * limit;
        }
        return new Seq(ids, offs);
    }

    /** Chunk size (chars) for long texts that truncation will cut: stop normalizing early. */
    private static final int CHUNK = 1024;

    /**
     * A piece of raw text between added tokens. When truncation will cut the text anyway, a long
     * piece goes in chunks that end at characters the pre-tokenizer always splits at (whitespace
     * that survives clean_text, ASCII punctuation: starters, so NFD reordering never crosses them),
     * and stops once enough tokens are out: the result is the same, a 10,000-char text costs what
     * its first ~128 tokens cost.
     */
    private void piece(String text, int from, int to, BertNormalizer.Buffer buf, IntList ids, IntList offs, int limit) {
        if (limit == Integer.MAX_VALUE || to - from <= CHUNK || !core.bertPreTokenizer || !core.normAdded.isEmpty()) {
            pieceChunk(text, from, to, buf, ids, offs, limit);
            return;
        }
        int at = from;
        while (at < to && ids.size < limit) {
            int end = Math.min(to, at + CHUNK);
            while (end < to && !safeSplit(text.charAt(end))) end++;
            pieceChunk(text, at, end, buf, ids, offs, limit);
            at = end;
        }
    }

    private boolean safeSplit(char c) {
        int f = CharClass.of(c);
        if ((f & CharClass.WHITESPACE) != 0) return !core.normalizer.cleanText() || (f & CharClass.REMOVE) == 0;
        return c < 128 && (f & CharClass.PUNCT) != 0;
    }

    private void pieceChunk(String text, int from, int to, BertNormalizer.Buffer buf, IntList ids, IntList offs, int limit) {
        if (from >= to) return;
        core.normalizer.normalize(text, from, to, buf);
        if (!core.normAdded.isEmpty() && buf.length > 0) {
            IntList m = new IntList(16);
            core.normAdded.find(buf.chars, 0, buf.length, m);
            int at = 0;
            for (int k = 0; k < m.size && ids.size < limit; k += 3) {
                int s = m.get(k), e = m.get(k + 1), id = m.get(k + 2);
                if (s > at) words(buf, at, s, ids, offs, limit);
                if (ids.size >= limit) break;
                ids.add(id);
                offs.add(buf.start[s]);
                offs.add(buf.end[e - 1]);
                at = e;
            }
            if (at < buf.length) words(buf, at, buf.length, ids, offs, limit);
        } else {
            words(buf, 0, buf.length, ids, offs, limit);
        }
    }

    /** BertPreTokenizer over normalized {@code buf[from, to)}, then WordPiece on each word. */
    private void words(BertNormalizer.Buffer buf, int from, int to, IntList ids, IntList offs, int limit) {
        if (!core.bertPreTokenizer) {
            if (to > from) word(buf, from, to, ids, offs);
            return;
        }
        char[] s = buf.chars;
        int ws = -1;
        for (int i = from; i < to && ids.size < limit; ) {
            char ch = s[i];
            int cp, n;
            if (Character.isHighSurrogate(ch) && i + 1 < to && Character.isLowSurrogate(s[i + 1])) {
                cp = Character.toCodePoint(ch, s[i + 1]);
                n = 2;
            } else {
                cp = ch;
                n = 1;
            }
            int f = CharClass.of(cp);
            if ((f & CharClass.WHITESPACE) != 0) {
                if (ws >= 0) { word(buf, ws, i, ids, offs); ws = -1; }
            } else if ((f & CharClass.PUNCT) != 0) {
                if (ws >= 0) { word(buf, ws, i, ids, offs); ws = -1; }
                word(buf, i, i + n, ids, offs);
            } else if (ws < 0) {
                ws = i;
            }
            i += n;
        }
        if (ws >= 0 && ids.size < limit) word(buf, ws, to, ids, offs);
    }

    /** The WordPiece model on one word {@code buf[from, to)}. */
    private void word(BertNormalizer.Buffer buf, int from, int to, IntList ids, IntList offs) {
        Core c = core;
        int chars = to - from;
        if (chars > c.maxInputCharsPerWord) { // count code points only when it can matter
            int cps = Character.codePointCount(buf.chars, from, chars);
            if (cps > c.maxInputCharsPerWord) {
                unk(buf, from, to, ids, offs);
                return;
            }
        }
        int mark = ids.size;
        int p = from;
        while (p < to) {
            long m = c.trie.longestMatch(p == from ? 0 : c.continuationNode, buf.chars, p, to);
            if (m < 0) {
                ids.size = mark;
                offs.size = 2 * mark;
                unk(buf, from, to, ids, offs);
                return;
            }
            int end = (int) (m >>> 32);
            ids.add((int) m);
            offs.add(buf.start[p]);
            offs.add(buf.end[end - 1]);
            p = end;
        }
    }

    private void unk(BertNormalizer.Buffer buf, int from, int to, IntList ids, IntList offs) {
        ids.add(core.unkId);
        offs.add(buf.start[from]);
        offs.add(buf.end[to - 1]);
    }

    private Built postProcess(Seq a, Seq b, boolean addSpecialTokens) {
        return Assembly.postProcess(core.single, core.pair, truncation, a, b, addSpecialTokens);
    }

    // ------------------------------------------------------------------ decoding

    /**
     * Decodes ids to text (for debugging), skipping special tokens, as HF's {@code decode} does by
     * default: WordPiece pieces are glued ("##" removed), words joined by spaces, and the decoder's
     * cleanup (" ." to "." ...) applied.
     *
     * @throws NullPointerException     if ids is null
     * @throws IllegalArgumentException if an id has no token
     */
    public String decode(int[] ids) { return decode(ids, true); }

    /**
     * Decodes ids to text.
     *
     * @param skipSpecialTokens whether to leave out special tokens ([CLS], [SEP], [PAD] ...)
     * @throws NullPointerException     if ids is null
     * @throws IllegalArgumentException if an id has no token
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        Objects.requireNonNull(ids, "ids");
        List<String> tokens = new ArrayList<>(ids.length);
        for (int id : ids) {
            String tok = idToToken(id);
            if (skipSpecialTokens && core.specialIds.get(id)) continue;
            tokens.add(tok);
        }
        if (!core.wordPieceDecoder) return String.join(" ", tokens);
        StringBuilder sb = new StringBuilder(ids.length * 6);
        String prefix = core.decoderPrefix;
        for (int i = 0; i < tokens.size(); i++) {
            String t = tokens.get(i);
            if (i != 0) {
                if (t.startsWith(prefix)) t = t.substring(prefix.length());
                else t = " " + t;
            }
            if (core.decoderCleanup) t = cleanup(t);
            sb.append(t);
        }
        return sb.toString();
    }

    /** HF's WordPiece decoder cleanup, applied per token as HF does. */
    private static String cleanup(String s) {
        if (s.indexOf(' ') < 0) return s;
        return s.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
                .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" do not", " don't")
                .replace(" 's", "'s").replace(" 've", "'ve").replace(" 're", "'re");
    }

    @Override
    public String toString() {
        return "WordPieceTokenizer[" + core.source + ", vocab " + vocabSize() + ", " + core.normalizer
                + ", truncation " + truncation + ", padding " + padding + "]";
    }

    // ------------------------------------------------------------------ the shared, immutable part

    private static final class Core {
        String source;
        Map<String, Integer> vocab;
        Map<String, Integer> added;
        VocabTrie trie;
        int continuationNode;
        String[] idToToken;
        BitSet specialIds;
        int unkId;
        int maxInputCharsPerWord;
        BertNormalizer normalizer;
        boolean bertPreTokenizer;
        AddedTokens rawAdded;
        AddedTokens normAdded;
        Template single;
        Template pair;
        boolean wordPieceDecoder;
        String decoderPrefix;
        boolean decoderCleanup;
        Padding defaultPadding;
    }

    /** Reads and checks a tokenizer.json tree; every error names the file and the JSON path. */
    private static final class Parser extends TokenizerJson {
        private final JsonNode root;
        private final Map<String, Integer> streamedVocab; // model.vocab when the streaming reader took it, else null

        Parser(String source, JsonNode root, Map<String, Integer> streamedVocab) {
            super(source);
            this.root = root;
            this.streamedVocab = streamedVocab;
        }

        WordPieceTokenizer build() throws TokenizerFormatException {
            Core c = new Core();
            c.source = source;
            // --- model
            String mtype = modelType(root);
            JsonNode model = root.get("model");
            if (!mtype.equals("WordPiece")) {
                throw fail("model type is " + mtype + ", but WordPieceTokenizer reads only WordPiece (BERT-family) tokenizers"
                        + (mtype.equals("BPE") ? " (a BPE model, as in GPT-2/RoBERTa/Llama files: use BpeTokenizer or Tokenizer.fromFile)" : ""));
            }
            JsonNode vocab = model.get("vocab");
            if (isNull(vocab) || !vocab.isObject()) throw fail("model.vocab must be an object mapping token to id, found " + (vocab == null ? "nothing" : vocab.getNodeType()));
            Map<String, Integer> v;
            int maxId = -1;
            if (streamedVocab != null) {
                v = streamedVocab;
                for (int id : v.values()) maxId = Math.max(maxId, id);
            } else {
                v = new HashMap<>(vocab.size() * 2);
            }
            if (v.isEmpty() && vocab.isEmpty()) throw fail("model.vocab is empty");
            for (Iterator<Map.Entry<String, JsonNode>> it = vocab.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                JsonNode id = e.getValue();
                if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || id.intValue() > 50_000_000) {
                    throw fail("model.vocab[\"" + e.getKey() + "\"] must be an id in [0, 50000000], found " + id);
                }
                v.put(e.getKey(), id.intValue());
                maxId = Math.max(maxId, id.intValue());
            }
            c.vocab = v;
            String unk = text(model, "unk_token", "[UNK]", "model");
            Integer unkId = v.get(unk);
            if (unkId == null) throw fail("model.unk_token \"" + unk + "\" is not in model.vocab");
            c.unkId = unkId;
            String prefix = text(model, "continuing_subword_prefix", "##", "model");
            c.maxInputCharsPerWord = integer(model, "max_input_chars_per_word", 100, "model");
            if (c.maxInputCharsPerWord < 1) throw fail("model.max_input_chars_per_word must be >= 1, found " + c.maxInputCharsPerWord);
            c.trie = new VocabTrie(v);
            c.continuationNode = c.trie.walk(prefix);
            // --- added tokens (with the ids HF gives them on load)
            Added added = addedTokens(root, v);
            List<AddedTokens.Token> addedTokens = added.tokens();
            c.added = added.ids();
            maxId = Math.max(maxId, added.maxId());
            c.idToToken = new String[maxId + 1];
            for (Map.Entry<String, Integer> e : v.entrySet()) c.idToToken[e.getValue()] = e.getKey();
            c.specialIds = new BitSet();
            for (AddedTokens.Token t : addedTokens) {
                c.idToToken[t.id()] = t.content();
                if (t.special()) c.specialIds.set(t.id());
            }
            // --- normalizer
            JsonNode norm = root.get("normalizer");
            if (isNull(norm)) {
                c.normalizer = BertNormalizer.NONE;
            } else {
                String nt = type(norm, "normalizer");
                if (!"BertNormalizer".equals(nt)) {
                    throw fail("normalizer type " + nt + " is not supported (only BertNormalizer or none)");
                }
                boolean lower = bool(norm, "lowercase", true, "normalizer");
                JsonNode sa = norm.get("strip_accents");
                boolean strip = isNull(sa) ? lower : bool(norm, "strip_accents", lower, "normalizer");
                c.normalizer = new BertNormalizer(bool(norm, "clean_text", true, "normalizer"),
                        bool(norm, "handle_chinese_chars", true, "normalizer"), strip, lower);
            }
            // raw and normalized added-token matchers
            List<AddedTokens.Token> raw = new ArrayList<>(), normed = new ArrayList<>();
            List<String> rawPat = new ArrayList<>(), normPat = new ArrayList<>();
            for (AddedTokens.Token t : addedTokens) {
                if (t.normalized()) {
                    String p = c.normalizer.normalize(t.content());
                    if (!p.isEmpty()) { normed.add(t); normPat.add(p); }
                } else {
                    raw.add(t);
                    rawPat.add(t.content());
                }
            }
            c.rawAdded = new AddedTokens(raw, rawPat);
            c.normAdded = new AddedTokens(normed, normPat);
            // --- pre-tokenizer
            JsonNode pre = root.get("pre_tokenizer");
            if (isNull(pre)) {
                c.bertPreTokenizer = false;
            } else {
                String pt = type(pre, "pre_tokenizer");
                if (!"BertPreTokenizer".equals(pt)) {
                    throw fail("pre_tokenizer type " + pt + " is not supported (only BertPreTokenizer or none)");
                }
                c.bertPreTokenizer = true;
            }
            // --- post-processor
            c.single = Template.SINGLE_PLAIN;
            c.pair = Template.PAIR_PLAIN;
            JsonNode post = root.get("post_processor");
            if (!isNull(post)) {
                String pt = type(post, "post_processor");
                if ("TemplateProcessing".equals(pt)) {
                    c.single = template(post, "post_processor", "single", c.idToToken.length);
                    c.pair = template(post, "post_processor", "pair", c.idToToken.length);
                } else if ("BertProcessing".equals(pt)) {
                    int[] cls = {pairId(post, "post_processor", "cls", c.idToToken.length)};
                    int[] sep = {pairId(post, "post_processor", "sep", c.idToToken.length)};
                    c.single = Template.of(List.of(new Template.Piece(true, cls, -1, 0), new Template.Piece(false, null, 0, 0),
                            new Template.Piece(true, sep, -1, 0)));
                    c.pair = Template.of(List.of(new Template.Piece(true, cls, -1, 0), new Template.Piece(false, null, 0, 0),
                            new Template.Piece(true, sep, -1, 0), new Template.Piece(false, null, 1, 1),
                            new Template.Piece(true, sep, -1, 1)));
                } else {
                    throw fail("post_processor type " + pt + " is not supported (TemplateProcessing, BertProcessing or none)");
                }
            }
            // --- decoder
            JsonNode dec = root.get("decoder");
            c.wordPieceDecoder = true;
            c.decoderPrefix = prefix;
            c.decoderCleanup = true;
            if (!isNull(dec)) {
                String dt = type(dec, "decoder");
                if ("WordPiece".equals(dt)) {
                    c.decoderPrefix = text(dec, "prefix", "##", "decoder");
                    c.decoderCleanup = bool(dec, "cleanup", true, "decoder");
                } else {
                    c.wordPieceDecoder = false;
                }
            }
            // --- padding and truncation
            Integer padId = c.added.containsKey("[PAD]") ? c.added.get("[PAD]") : v.get("[PAD]");
            c.defaultPadding = new Padding(Padding.Strategy.LONGEST, 0, Padding.Direction.RIGHT, 0,
                    padId == null ? 0 : padId, 0, "[PAD]");
            Padding pad = padding(root.get("padding"), c.defaultPadding);
            Truncation trunc = truncation(root.get("truncation"));
            if (trunc != null && trunc.maxLength() < c.single.specialCount()) {
                throw fail("truncation.max_length " + trunc.maxLength() + " is smaller than the " + c.single.specialCount()
                        + " special tokens the post-processor adds");
            }
            return new WordPieceTokenizer(c, trunc, pad);
        }
    }
}
