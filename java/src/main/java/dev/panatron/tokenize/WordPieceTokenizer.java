package dev.panatron.tokenize;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.tokenize.AddedTokens.IntList;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
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
public final class WordPieceTokenizer {

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
        Objects.requireNonNull(file, "file");
        if (Files.isDirectory(file)) {
            throw new TokenizerFormatException(file + ": is a directory, expected a tokenizer.json file");
        }
        byte[] bytes = Files.readAllBytes(file);
        return fromBytes(bytes, file.toString());
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
        if (bytes.length == 0) throw new TokenizerFormatException(source + ": the file is empty, expected a tokenizer.json");
        JsonNode root;
        Map<String, Integer> streamedVocab;
        try {
            Parsed parsed = readStreaming(bytes, source);
            root = parsed.root();
            streamedVocab = parsed.vocab();
        } catch (TokenizerFormatException e) {
            throw e;
        } catch (com.fasterxml.jackson.core.io.JsonEOFException e) {
            throw new TokenizerFormatException(source + ": truncated JSON (the input ends at line "
                    + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr()
                    + " in the middle of a value); re-download or re-extract the tokenizer.json", e);
        } catch (JsonProcessingException e) {
            throw new TokenizerFormatException(source + ": not valid JSON (" + e.getOriginalMessage() + " at line "
                    + (e.getLocation() == null ? "?" : e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr())
                    + ")", e);
        } catch (IOException e) {
            throw new TokenizerFormatException(source + ": cannot parse: " + e.getMessage(), e);
        }
        if (root == null || root.isMissingNode() || !root.isObject()) {
            throw new TokenizerFormatException(source + ": expected a JSON object (a tokenizer.json), found "
                    + (root == null || root.isMissingNode() ? "nothing" : root.getNodeType().toString().toLowerCase()));
        }
        Parser p = new Parser(source, root, streamedVocab);
        return p.build();
    }

    private static final ObjectMapper MAPPER = new ObjectMapper();

    /**
     * Parses the JSON into a tree, except model.vocab (tens of thousands of entries), which is read
     * straight into a map and left in the tree as an empty object with the map attached: several
     * times cheaper than a tree of 30,000 nodes, which matters for start-up.
     */
    private record Parsed(JsonNode root, Map<String, Integer> vocab) {}

    private static Parsed readStreaming(byte[] bytes, String source) throws IOException {
        try (com.fasterxml.jackson.core.JsonParser p = MAPPER.getFactory().createParser(bytes)) {
            if (p.nextToken() != com.fasterxml.jackson.core.JsonToken.START_OBJECT) {
                JsonNode other = p.currentToken() == null ? null : MAPPER.readTree(p);
                if (other != null && p.nextToken() != null) {
                    throw new TokenizerFormatException(source + ": not valid JSON (trailing content after the first value)");
                }
                return new Parsed(other, null);
            }
            com.fasterxml.jackson.databind.node.ObjectNode root = MAPPER.createObjectNode();
            Map<String, Integer> vocab = null;
            while (p.nextToken() == com.fasterxml.jackson.core.JsonToken.FIELD_NAME) {
                String name = p.currentName();
                com.fasterxml.jackson.core.JsonToken t = p.nextToken();
                if (name.equals("model") && t == com.fasterxml.jackson.core.JsonToken.START_OBJECT) {
                    com.fasterxml.jackson.databind.node.ObjectNode model = root.putObject("model");
                    while (p.nextToken() == com.fasterxml.jackson.core.JsonToken.FIELD_NAME) {
                        String f = p.currentName();
                        com.fasterxml.jackson.core.JsonToken ft = p.nextToken();
                        if (f.equals("vocab") && ft == com.fasterxml.jackson.core.JsonToken.START_OBJECT) {
                            vocab = readVocab(p, source);
                            model.putObject("vocab"); // a placeholder: the entries are in the map
                        } else {
                            model.set(f, MAPPER.readTree(p));
                        }
                    }
                } else {
                    root.set(name, MAPPER.readTree(p));
                }
            }
            if (p.currentToken() != com.fasterxml.jackson.core.JsonToken.END_OBJECT || p.nextToken() != null) {
                throw new TokenizerFormatException(source + ": not valid JSON (unexpected content after the top-level object)");
            }
            return new Parsed(root, vocab);
        }
    }

    private static Map<String, Integer> readVocab(com.fasterxml.jackson.core.JsonParser p, String source) throws IOException {
        Map<String, Integer> v = new HashMap<>(65536);
        while (p.nextToken() == com.fasterxml.jackson.core.JsonToken.FIELD_NAME) {
            String token = p.currentName();
            com.fasterxml.jackson.core.JsonToken t = p.nextToken();
            if (t != com.fasterxml.jackson.core.JsonToken.VALUE_NUMBER_INT
                    || p.getNumberType() != com.fasterxml.jackson.core.JsonParser.NumberType.INT
                    || p.getIntValue() < 0 || p.getIntValue() > 50_000_000) {
                String found = t != null && t.isScalarValue() ? p.getText() : String.valueOf(t);
                throw new TokenizerFormatException(source + ": model.vocab[\"" + token + "\"] must be an id in [0, 50000000], found " + found);
            }
            v.put(token, p.getIntValue());
        }
        return v;
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
        int specials = core.single.specialCount;
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
        if (padding != null) e = e.pad(padding.targetLength(e.ids.length), padding);
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
        if (padding != null) padAll(built, padding);
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
        Padding p = padding != null ? padding : core.defaultPadding;
        int length = padAll(built, p);
        for (int i = 0; i < built.size(); i++) built.set(i, built.get(i).pad(length, p)); // rectangular even if FIXED < longest
        int n = built.size();
        int[] ids = new int[n * length], mask = new int[n * length], types = new int[n * length], lengths = new int[n];
        List<Encoding> encs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            Built e = built.get(i);
            System.arraycopy(e.ids, 0, ids, i * length, length);
            System.arraycopy(e.mask, 0, mask, i * length, length);
            System.arraycopy(e.types, 0, types, i * length, length);
            lengths[i] = e.real;
            encs.add(e.toEncoding());
        }
        return new Batch(n, length, ids, mask, types, lengths, encs);
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

    private static int padAll(List<Built> built, Padding p) {
        int longest = 0;
        for (Built e : built) longest = Math.max(longest, e.ids.length);
        int target = p.targetLength(longest);
        for (int i = 0; i < built.size(); i++) built.set(i, built.get(i).pad(target, p));
        return built.stream().mapToInt(e -> e.ids.length).max().orElse(0);
    }

    /** How many content tokens a single text can keep (to stop tokenizing long texts early). */
    private int contentLimit(boolean addSpecialTokens) {
        if (truncation == null || truncation.direction() != Truncation.Direction.RIGHT
                || truncation.strategy() == Truncation.Strategy.ONLY_SECOND) return Integer.MAX_VALUE; // (an error for one text)
        return truncation.maxLength() - (addSpecialTokens ? core.single.specialCount : 0);
    }

    /** Token ids and offsets of one text before post-processing. */
    private record Seq(IntList ids, IntList offsets) {}

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

    /** An encoding under construction: plain arrays, already the final ones. */
    private record Built(int[] ids, int[] mask, int[] types, int[] offsets, int real) {
        Built pad(int target, Padding p) {
            int n = ids.length;
            if (n >= target) return this;
            int[] i2 = new int[target], m2 = new int[target], t2 = new int[target], o2 = new int[2 * target];
            int at = p.direction() == Padding.Direction.LEFT ? target - n : 0;
            Arrays.fill(i2, p.padId());
            Arrays.fill(t2, p.padTypeId());
            System.arraycopy(ids, 0, i2, at, n);
            System.arraycopy(mask, 0, m2, at, n);
            System.arraycopy(types, 0, t2, at, n);
            System.arraycopy(offsets, 0, o2, 2 * at, 2 * n);
            return new Built(i2, m2, t2, o2, real);
        }

        Encoding toEncoding() { return new Encoding(ids, mask, types, offsets); }
    }

    private Built postProcess(Seq a, Seq b, boolean addSpecialTokens) {
        Template t = b == null ? core.single : core.pair;
        int na = a.ids.size, nb = b == null ? 0 : b.ids.size;
        if (truncation != null) {
            int max = truncation.maxLength() - (addSpecialTokens ? t.specialCount : 0);
            if (max < 0) {
                throw new IllegalArgumentException("truncation maxLength " + truncation.maxLength() + " is smaller than the "
                        + t.specialCount + " special tokens of a " + (b == null ? "single text" : "pair"));
            }
            int[] keep = truncatedLengths(na, nb, b != null, max, truncation.strategy());
            na = keep[0];
            nb = keep[1];
        }
        boolean left = truncation != null && truncation.direction() == Truncation.Direction.LEFT;
        int aFrom = left ? a.ids.size - na : 0;
        int bFrom = b == null ? 0 : (left ? b.ids.size - nb : 0);
        int total = na + nb + (addSpecialTokens ? t.specialCount : 0);
        int[] ids = new int[total], mask = new int[total], types = new int[total], offs = new int[2 * total];
        Arrays.fill(mask, 1);
        int k = 0;
        for (Template.Piece piece : t.pieces) {
            if (piece.special()) {
                if (!addSpecialTokens) continue;
                for (int id : piece.ids()) { ids[k] = id; types[k] = piece.typeId(); k++; }
            } else {
                Seq s = piece.sequence() == 0 ? a : b;
                if (s == null) continue;
                int from = piece.sequence() == 0 ? aFrom : bFrom, n = piece.sequence() == 0 ? na : nb;
                System.arraycopy(s.ids.a, from, ids, k, n);
                System.arraycopy(s.offsets.a, 2 * from, offs, 2 * k, 2 * n);
                Arrays.fill(types, k, k + n, piece.typeId());
                k += n;
            }
        }
        return new Built(ids, mask, types, offs, total);
    }

    /** HF's truncate_encodings: how many tokens of A and B stay. */
    private static int[] truncatedLengths(int n1, int n2, boolean isPair, int max, Truncation.Strategy strategy) {
        if (max == 0) return new int[] {0, 0};
        int total = n1 + n2;
        if (total <= max) return new int[] {n1, n2};
        int toRemove = total - max;
        switch (strategy) {
            case LONGEST_FIRST -> {
                if (!isPair) return new int[] {n1 - toRemove, 0};
                int a = n1, b = n2;
                boolean swap = false;
                if (a > b) { swap = true; int x = a; a = b; b = x; }
                if (a > max) b = a;
                else b = Math.max(a, max - a);
                if (a + b > max) { a = max / 2; b = a + max % 2; }
                if (swap) { int x = a; a = b; b = x; }
                return new int[] {Math.min(a, n1), Math.min(b, n2)};
            }
            case ONLY_FIRST -> {
                if (n1 > toRemove) return new int[] {n1 - toRemove, n2};
                throw new IllegalArgumentException("truncation (ONLY_FIRST): the first text has " + n1
                        + " tokens, too short to remove " + toRemove + " and fit max length " + max);
            }
            default -> {
                if (!isPair) throw new IllegalArgumentException("truncation ONLY_SECOND needs a text pair");
                if (n2 > toRemove) return new int[] {n1, n2 - toRemove};
                throw new IllegalArgumentException("truncation (ONLY_SECOND): the second text has " + n2
                        + " tokens, too short to remove " + toRemove + " and fit max length " + max);
            }
        }
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

    /** The post-processor as a list of pieces (HF TemplateProcessing; BertProcessing maps onto it). */
    record Template(List<Piece> pieces, int specialCount) {
        record Piece(boolean special, int[] ids, int sequence, int typeId) {}

        static Template of(List<Piece> pieces) {
            int n = 0;
            for (Piece p : pieces) if (p.special()) n += p.ids().length;
            return new Template(List.copyOf(pieces), n);
        }
    }

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
    private static final class Parser {
        private final String source;
        private final JsonNode root;
        private final Map<String, Integer> streamedVocab; // model.vocab when the streaming reader took it, else null

        Parser(String source, JsonNode root, Map<String, Integer> streamedVocab) {
            this.source = source;
            this.root = root;
            this.streamedVocab = streamedVocab;
        }

        private TokenizerFormatException fail(String what) { return new TokenizerFormatException(source + ": " + what); }

        private static boolean isNull(JsonNode n) { return n == null || n.isNull() || n.isMissingNode(); }

        private String type(JsonNode n, String path) throws TokenizerFormatException {
            JsonNode t = n.get("type");
            if (isNull(t)) return null;
            if (!t.isTextual()) throw fail(path + ".type must be a string, found " + t);
            return t.asText();
        }

        private boolean bool(JsonNode n, String field, boolean dflt, String path) throws TokenizerFormatException {
            JsonNode v = n.get(field);
            if (isNull(v)) return dflt;
            if (!v.isBoolean()) throw fail(path + "." + field + " must be true or false, found " + v);
            return v.booleanValue();
        }

        private int integer(JsonNode n, String field, int dflt, String path) throws TokenizerFormatException {
            JsonNode v = n.get(field);
            if (isNull(v)) return dflt;
            if (!v.canConvertToInt() || !v.isIntegralNumber()) throw fail(path + "." + field + " must be an integer, found " + v);
            return v.intValue();
        }

        private String text(JsonNode n, String field, String dflt, String path) throws TokenizerFormatException {
            JsonNode v = n.get(field);
            if (isNull(v)) return dflt;
            if (!v.isTextual()) throw fail(path + "." + field + " must be a string, found " + v);
            return v.asText();
        }

        WordPieceTokenizer build() throws TokenizerFormatException {
            Core c = new Core();
            c.source = source;
            // --- model
            JsonNode model = root.get("model");
            if (isNull(model) || !model.isObject()) {
                throw fail("no \"model\" object: not a Hugging Face tokenizer.json (expected keys model, normalizer, "
                        + "pre_tokenizer, post_processor, added_tokens)");
            }
            String mtype = type(model, "model");
            if (mtype == null) mtype = model.has("merges") ? "BPE" : model.has("vocab") && model.get("vocab").isArray() ? "Unigram" : "WordPiece";
            if (!mtype.equals("WordPiece")) {
                throw fail("model type is " + mtype + ", but only WordPiece (BERT-family) tokenizers are supported"
                        + (mtype.equals("BPE") ? " (a BPE model, as in GPT-2/RoBERTa/Llama files)" : ""));
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
            // --- added tokens. HF re-adds them one by one on load (AddedVocabulary::add_tokens): a token
            // whose content is already in the vocabulary (or added before) gets that id, a new one the
            // next id after the vocabulary (or after the largest added id), whatever id the file says.
            List<AddedTokens.Token> addedTokens = new ArrayList<>();
            JsonNode added = root.get("added_tokens");
            c.added = new HashMap<>();
            if (!isNull(added)) {
                if (!added.isArray()) throw fail("added_tokens must be an array, found " + added.getNodeType());
                int maxAdded = -1;
                for (int i = 0; i < added.size(); i++) {
                    JsonNode t = added.get(i);
                    String path = "added_tokens[" + i + "]";
                    if (!t.isObject()) throw fail(path + " must be an object");
                    int fileId = integer(t, "id", -1, path);
                    if (fileId < 0 || fileId > 50_000_000) throw fail(path + ".id must be an id in [0, 50000000], found " + t.get("id"));
                    String content = text(t, "content", null, path);
                    if (content == null) throw fail(path + ".content must be a string");
                    if (content.isEmpty()) continue; // HF ignores empty added tokens
                    boolean special = bool(t, "special", false, path);
                    Integer id = c.added.get(content);
                    if (id == null) id = v.get(content);
                    if (id == null) id = maxAdded < 0 ? v.size() : (maxAdded >= v.size() ? maxAdded + 1 : v.size());
                    c.added.put(content, id);
                    maxAdded = Math.max(maxAdded, id);
                    addedTokens.removeIf(x -> x.content().equals(content));
                    addedTokens.add(new AddedTokens.Token(id, content, bool(t, "single_word", false, path),
                            bool(t, "lstrip", false, path), bool(t, "rstrip", false, path),
                            bool(t, "normalized", !special, path), special));
                    maxId = Math.max(maxId, id);
                }
            }
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
            c.single = Template.of(List.of(new Template.Piece(false, null, 0, 0)));
            c.pair = Template.of(List.of(new Template.Piece(false, null, 0, 0), new Template.Piece(false, null, 1, 1)));
            JsonNode post = root.get("post_processor");
            if (!isNull(post)) {
                String pt = type(post, "post_processor");
                if ("TemplateProcessing".equals(pt)) {
                    c.single = template(post, "single", c);
                    c.pair = template(post, "pair", c);
                } else if ("BertProcessing".equals(pt)) {
                    int[] cls = pairIdOf(post, "cls"), sep = pairIdOf(post, "sep");
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
            Padding pad = padding(root.get("padding"), c);
            Truncation trunc = truncation(root.get("truncation"));
            if (trunc != null && trunc.maxLength() < c.single.specialCount) {
                throw fail("truncation.max_length " + trunc.maxLength() + " is smaller than the " + c.single.specialCount
                        + " special tokens the post-processor adds");
            }
            return new WordPieceTokenizer(c, trunc, pad);
        }

        private int[] pairIdOf(JsonNode post, String field) throws TokenizerFormatException {
            JsonNode p = post.get(field);
            if (isNull(p) || !p.isArray() || p.size() != 2 || !p.get(1).isIntegralNumber()) {
                throw fail("post_processor." + field + " must be [token, id], found " + p);
            }
            return new int[] {p.get(1).intValue()};
        }

        private Template template(JsonNode post, String which, Core c) throws TokenizerFormatException {
            String path = "post_processor." + which;
            JsonNode list = post.get(which);
            if (isNull(list) || !list.isArray()) throw fail(path + " must be an array of SpecialToken/Sequence pieces");
            JsonNode specials = post.get("special_tokens");
            List<Template.Piece> pieces = new ArrayList<>();
            for (int i = 0; i < list.size(); i++) {
                JsonNode item = list.get(i);
                String ip = path + "[" + i + "]";
                if (item.has("SpecialToken")) {
                    JsonNode st = item.get("SpecialToken");
                    String id = text(st, "id", null, ip + ".SpecialToken");
                    if (id == null) throw fail(ip + ".SpecialToken.id is missing");
                    JsonNode def = isNull(specials) ? null : specials.get(id);
                    if (isNull(def)) throw fail(ip + " uses special token \"" + id + "\" but post_processor.special_tokens does not define it");
                    JsonNode ids = def.get("ids");
                    if (isNull(ids) || !ids.isArray() || ids.isEmpty()) throw fail("post_processor.special_tokens[\"" + id + "\"].ids must be a non-empty array");
                    int[] a = new int[ids.size()];
                    for (int k = 0; k < a.length; k++) {
                        JsonNode x = ids.get(k);
                        if (!x.isIntegralNumber() || x.intValue() < 0 || x.intValue() >= c.idToToken.length) {
                            throw fail("post_processor.special_tokens[\"" + id + "\"].ids[" + k + "] = " + x + " is not an id of the vocabulary");
                        }
                        a[k] = x.intValue();
                    }
                    pieces.add(new Template.Piece(true, a, -1, integer(st, "type_id", 0, ip + ".SpecialToken")));
                } else if (item.has("Sequence")) {
                    JsonNode sq = item.get("Sequence");
                    String id = text(sq, "id", "A", ip + ".Sequence");
                    int seq = switch (id) {
                        case "A" -> 0;
                        case "B" -> 1;
                        default -> throw fail(ip + ".Sequence.id must be \"A\" or \"B\", found \"" + id + "\"");
                    };
                    pieces.add(new Template.Piece(false, null, seq, integer(sq, "type_id", 0, ip + ".Sequence")));
                } else {
                    throw fail(ip + " must be {\"SpecialToken\": ...} or {\"Sequence\": ...}, found " + item);
                }
            }
            return Template.of(pieces);
        }

        private Padding padding(JsonNode p, Core c) throws TokenizerFormatException {
            if (isNull(p)) return null;
            if (!p.isObject()) throw fail("padding must be an object or null");
            JsonNode s = p.get("strategy");
            Padding.Strategy strategy;
            int fixed = 0;
            if (isNull(s) || (s.isTextual() && s.asText().equals("BatchLongest"))) {
                strategy = Padding.Strategy.LONGEST;
            } else if (s.isObject() && s.has("Fixed") && s.get("Fixed").isIntegralNumber() && s.get("Fixed").intValue() >= 1) {
                strategy = Padding.Strategy.FIXED;
                fixed = s.get("Fixed").intValue();
            } else {
                throw fail("padding.strategy must be \"BatchLongest\" or {\"Fixed\": n} with n >= 1, found " + s);
            }
            String dir = text(p, "direction", "Right", "padding");
            Padding.Direction d = switch (dir) {
                case "Right" -> Padding.Direction.RIGHT;
                case "Left" -> Padding.Direction.LEFT;
                default -> throw fail("padding.direction must be \"Right\" or \"Left\", found \"" + dir + "\"");
            };
            int multiple = integer(p, "pad_to_multiple_of", 0, "padding");
            int padId = integer(p, "pad_id", c.defaultPadding.padId(), "padding");
            int padType = integer(p, "pad_type_id", 0, "padding");
            if (multiple < 0 || padId < 0 || padType < 0) throw fail("padding: pad_to_multiple_of, pad_id and pad_type_id must be >= 0");
            return new Padding(strategy, fixed, d, multiple, padId, padType, text(p, "pad_token", "[PAD]", "padding"));
        }

        private Truncation truncation(JsonNode t) throws TokenizerFormatException {
            if (isNull(t)) return null;
            if (!t.isObject()) throw fail("truncation must be an object or null");
            int max = integer(t, "max_length", -1, "truncation");
            if (max < 1) throw fail("truncation.max_length must be an integer >= 1, found " + t.get("max_length"));
            String st = text(t, "strategy", "LongestFirst", "truncation");
            Truncation.Strategy strategy = switch (st) {
                case "LongestFirst" -> Truncation.Strategy.LONGEST_FIRST;
                case "OnlyFirst" -> Truncation.Strategy.ONLY_FIRST;
                case "OnlySecond" -> Truncation.Strategy.ONLY_SECOND;
                default -> throw fail("truncation.strategy must be LongestFirst, OnlyFirst or OnlySecond, found \"" + st + "\"");
            };
            String dir = text(t, "direction", "Right", "truncation");
            Truncation.Direction d = switch (dir) {
                case "Right" -> Truncation.Direction.RIGHT;
                case "Left" -> Truncation.Direction.LEFT;
                default -> throw fail("truncation.direction must be \"Right\" or \"Left\", found \"" + dir + "\"");
            };
            int stride = integer(t, "stride", 0, "truncation");
            if (stride < 0) throw fail("truncation.stride must be >= 0, found " + stride);
            return new Truncation(max, strategy, d, stride);
        }
    }
}
