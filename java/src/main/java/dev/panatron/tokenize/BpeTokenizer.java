package dev.panatron.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import dev.panatron.tokenize.AddedTokens.IntList;
import dev.panatron.tokenize.Assembly.Built;
import dev.panatron.tokenize.Assembly.Seq;
import dev.panatron.tokenize.Assembly.Template;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * A BPE tokenizer read from a Hugging Face {@code tokenizer.json}, producing the ids HF tokenizers
 * produces for the same file: byte-level BPE as GPT-2 defines it (GPT-2, RoBERTa, Llama-3, Qwen2,
 * Mistral-Nemo ...) and SentencePiece-style BPE with byte fallback (Llama-2, Mistral-7B ...).
 *
 * <p>Pipeline, as HF runs it:
 * <ol>
 *   <li>Added tokens ({@code <|endoftext|>}, {@code <|begin_of_text|>}, {@code <s>} ...) are cut
 *       out of the raw text first: leftmost-longest, with their single_word / lstrip / rstrip rules;
 *       those marked normalized are looked for in the normalized text instead.</li>
 *   <li>The normalizer, per piece between added tokens: NFC/NFD/NFKC/NFKD, Lowercase, Prepend,
 *       Replace, Strip, Sequence (Llama-2: Prepend("▁") + Replace(" ", "▁")).</li>
 *   <li>The pre-tokenizer: ByteLevel (GPT-2's regex unless use_regex is false; add_prefix_space),
 *       Split (a regex or a string; Isolated/Removed/MergedWithPrevious/MergedWithNext/Contiguous;
 *       invert), Metaspace, Digits, Sequence (Llama-3: Split(its regex) + ByteLevel(use_regex false)).
 *       Byte-level pieces become UTF-8 bytes, each byte a symbol.</li>
 *   <li>The BPE model ({@link BpeModel}): merges by rank, ignore_merges, byte_fallback
 *       ({@code <0x0A>}), unk and fuse_unk, continuing_subword_prefix, end_of_word_suffix; a bounded
 *       per-word cache.</li>
 *   <li>Truncation, the post-processor (TemplateProcessing, e.g. Llama-3's {@code <|begin_of_text|> $A};
 *       RobertaProcessing; BertProcessing; ByteLevel, which only trims offsets; Sequence), padding.</li>
 * </ol>
 *
 * <p>Decoding runs the file's decoder (ByteLevel; or Replace/ByteFallback/Fuse/Strip/Metaspace for
 * SentencePiece-style files). For a byte-level model {@code decode(encode(s).ids(), false) == s} for
 * every string without lone surrogates (which are encoded as U+FFFD); {@link #decodeBytes} gives the
 * raw bytes, and {@link #decodeStream} decodes generated ids incrementally.
 *
 * <pre>{@code
 * BpeTokenizer tok = BpeTokenizer.fromFile(Path.of("Meta-Llama-3-8B/tokenizer.json"));
 * int[] prompt = tok.encode("Hello world").ids();      // [<|begin_of_text|>, Hello, Ġworld]
 * BpeTokenizer.DecodeStream out = tok.decodeStream(true);
 * for (int id : generated) System.out.print(out.next(id)); // whole characters only
 * }</pre>
 *
 * <p>Offsets are UTF-16 indices into the input string; a token that holds part of a character's
 * bytes covers the whole character (as HF's). Instances are immutable and thread-safe; copies made by
 * {@link #withMaxLength} and friends share the vocabulary and the word cache.
 *
 * <p>Not implemented (each a {@link TokenizerFormatException} naming it): the Unigram and WordLevel
 * models, the Precompiled (SentencePiece charsmap) and BertNormalizer normalizers, pre-tokenizers
 * other than those above, a ByteLevel pre-tokenizer before another pre-tokenizer. BPE dropout is
 * ignored (ids are those of dropout 0; HF's are random then).
 */
public final class BpeTokenizer implements Tokenizer {

    private final Core core;
    private final Truncation truncation; // null: none
    private final Padding padding;       // null: none

    private BpeTokenizer(Core core, Truncation truncation, Padding padding) {
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
     *                                           corrupt), not a BPE tokenizer, inconsistent (a merge
     *                                           of unknown tokens ...) or uses a component this class
     *                                           lacks; the message names the file and the problem
     * @throws IOException                       if the file cannot be read
     */
    public static BpeTokenizer fromFile(Path file) throws IOException {
        byte[] bytes = TokenizerJson.readFile(file);
        return fromBytes(bytes, file.toString());
    }

    /**
     * Reads a tokenizer from a stream holding a {@code tokenizer.json} (e.g. a classpath resource).
     *
     * @param in     the JSON bytes (read to the end, not closed)
     * @param source a name for the stream, used in error messages
     * @throws TokenizerFormatException if the content is not a valid BPE tokenizer.json
     * @throws IOException              if the stream cannot be read
     */
    public static BpeTokenizer fromStream(InputStream in, String source) throws IOException {
        Objects.requireNonNull(in, "in");
        Objects.requireNonNull(source, "source");
        return fromBytes(in.readAllBytes(), source);
    }

    /**
     * Reads a tokenizer from the text of a {@code tokenizer.json}.
     *
     * @param json   the JSON text
     * @param source a name for it, used in error messages
     * @throws TokenizerFormatException if the text is not a valid BPE tokenizer.json
     */
    public static BpeTokenizer fromJson(String json, String source) throws TokenizerFormatException {
        Objects.requireNonNull(json, "json");
        Objects.requireNonNull(source, "source");
        return fromBytes(json.getBytes(StandardCharsets.UTF_8), source);
    }

    private static BpeTokenizer fromBytes(byte[] bytes, String source) throws TokenizerFormatException {
        return fromParsed(TokenizerJson.parse(bytes, source), source);
    }

    static BpeTokenizer fromParsed(TokenizerJson.Parsed parsed, String source) throws TokenizerFormatException {
        return new Parser(source, parsed).build();
    }

    // ------------------------------------------------------------------ configuration

    @Override
    public String source() { return core.source; }

    /** The truncation in effect, if any. */
    public Optional<Truncation> truncation() { return Optional.ofNullable(truncation); }

    /** The padding in effect, if any. */
    public Optional<Padding> padding() { return Optional.ofNullable(padding); }

    /**
     * A copy that truncates to {@code maxLength} tokens, special tokens included (keeping the
     * strategy and direction of the current truncation, else longest-first from the right).
     *
     * @throws IllegalArgumentException if maxLength is smaller than the special tokens a single
     *                                  text gets (1 for Llama-3's {@code <|begin_of_text|>})
     */
    public BpeTokenizer withMaxLength(int maxLength) {
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
    public BpeTokenizer withTruncation(Truncation truncation) {
        Objects.requireNonNull(truncation, "truncation");
        int specials = core.single.specialCount();
        if (truncation.maxLength() < specials) {
            throw new IllegalArgumentException("maxLength " + truncation.maxLength() + " is smaller than the "
                    + specials + " special tokens the post-processor adds");
        }
        return new BpeTokenizer(core, truncation, padding);
    }

    /** A copy that never truncates. */
    public BpeTokenizer withoutTruncation() { return new BpeTokenizer(core, null, padding); }

    /**
     * A copy with this padding.
     *
     * @throws NullPointerException if padding is null (use {@link #withoutPadding()})
     */
    public BpeTokenizer withPadding(Padding padding) {
        Objects.requireNonNull(padding, "padding");
        return new BpeTokenizer(core, truncation, padding);
    }

    /** A copy that does not pad ({@link #encodeBatch} still pads to the longest: arrays must be rectangular). */
    public BpeTokenizer withoutPadding() { return new BpeTokenizer(core, truncation, null); }

    // ------------------------------------------------------------------ vocabulary

    @Override
    public int vocabSize() { return core.idToToken.length; }

    @Override
    public OptionalInt tokenToId(String token) {
        Objects.requireNonNull(token, "token");
        Integer id = core.added.get(token);
        if (id == null) id = core.model.vocab.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    @Override
    public String idToToken(int id) {
        if (id < 0 || id >= core.idToToken.length || core.idToToken[id] == null) {
            throw new IllegalArgumentException("no token has id " + id + " (vocabulary size " + core.idToToken.length + ")");
        }
        return core.idToToken[id];
    }

    @Override
    public boolean isSpecial(int id) { return id >= 0 && core.specialIds.get(id); }

    @Override
    public Map<String, Integer> specialTokens() { return core.specialTokens; }

    /** Whether the model works on bytes (a ByteLevel pre-tokenizer): every string round-trips. */
    public boolean isByteLevel() { return core.byteLevel; }

    /** The token strings of an encoding (for debugging). */
    public String[] tokens(Encoding e) {
        int[] ids = e.ids();
        String[] r = new String[ids.length];
        for (int i = 0; i < ids.length; i++) r[i] = idToToken(ids[i]);
        return r;
    }

    // ------------------------------------------------------------------ encoding

    @Override
    public Encoding encode(String text) { return encode(text, null, true); }

    /**
     * Encodes a text pair (as the post-processor's "pair" template says) with truncation and padding as configured.
     *
     * @throws NullPointerException     if text or pair is null
     * @throws IllegalArgumentException if truncation cannot make the pair fit
     */
    public Encoding encode(String text, String pair) {
        Objects.requireNonNull(pair, "pair: the second text of a pair must not be null (use encode(text))");
        return encode(text, pair, true);
    }

    @Override
    public Encoding encode(String text, String pair, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text: the text to encode must not be null");
        Seq a = sequence(text);
        Seq b = pair == null ? null : sequence(pair);
        Built e = Assembly.postProcess(core.single, core.pair, truncation, a, b, addSpecialTokens);
        if (padding != null) e = e.pad(padding.targetLength(e.ids().length), padding);
        return e.toEncoding();
    }

    /**
     * The ids of one text, nothing else: no special tokens from the post-processor, no truncation,
     * no padding (what a generation prompt needs when the caller adds BOS itself).
     *
     * @throws NullPointerException if text is null
     */
    public int[] encodeToIds(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text: the text to encode must not be null");
        if (!addSpecialTokens) return sequence(text, false).ids().toArray(); // (no offsets needed)
        Seq a = sequence(text);
        return Assembly.postProcess(core.single, core.pair, null, a, null, true).ids();
    }

    /**
     * Encodes texts as HF's encode_batch does: each as {@link #encode(String)}, then padded together
     * as configured (not padded if padding is off).
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

    @Override
    public Batch encodeBatch(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        if (texts.isEmpty()) throw new IllegalArgumentException("texts: the batch is empty, give at least one text");
        return Assembly.batch(buildAll(texts), padding != null ? padding : core.defaultPadding);
    }

    private List<Built> buildAll(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        List<Built> built = new ArrayList<>(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            String t = texts.get(i);
            if (t == null) throw new NullPointerException("texts[" + i + "] is null");
            built.add(Assembly.postProcess(core.single, core.pair, truncation, sequence(t), null, true));
        }
        return built;
    }

    /** Token ids and offsets of one text: added tokens, normalizer, pre-tokenizer, model. */
    private Seq sequence(String text) { return sequence(text, true); }

    private Seq sequence(String text, boolean withOffsets) {
        int n = text.length();
        Work w = new Work(n);
        w.withOffsets = withOffsets;
        Text raw = Text.identity(text);
        if (!core.rawAdded.isEmpty() && n > 0) {
            char[] chars = text.toCharArray();
            IntList m = new IntList(16);
            core.rawAdded.find(chars, 0, n, m);
            int at = 0;
            for (int k = 0; k < m.size; k += 3) {
                int s = m.get(k), e = m.get(k + 1), id = m.get(k + 2);
                if (s > at) segment(raw, at, s, w);
                w.added.set(w.ids.size);
                w.add(id, s, e);
                at = e;
            }
            if (at < n) segment(raw, at, n, w);
        } else if (n > 0) {
            segment(raw, 0, n, w);
        }
        if (core.trimOffsets && withOffsets) trimOffsets(w, text);
        return new Seq(w.ids, w.offsets);
    }

    /** The ids and offsets being built for one text, and scratch space. */
    private static final class Work {
        final IntList ids;
        final IntList offsets;
        final ByteLevel.Bytes bytes = new ByteLevel.Bytes(64);
        final IntList ranges = new IntList(64);
        final List<Piece> pieces = new ArrayList<>();
        final List<Piece> pieces2 = new ArrayList<>();
        final BitSet added = new BitSet(); // tokens that are added tokens matched in the text
        boolean withOffsets = true;        // false: ids only (offsets stay empty)

        Work(int n) {
            ids = new IntList(n / 3 + 8);
            offsets = new IntList(2 * (n / 3 + 8));
        }

        void add(int id, int start, int end) {
            ids.add(id);
            if (withOffsets) {
                offsets.add(start);
                offsets.add(end);
            }
        }
    }

    /** A piece of raw text between added tokens: normalized, then normalized added tokens, then pre-tokenized. */
    private void segment(Text t, int from, int to, Work w) {
        Core c = core;
        if (c.normalizer != null) {
            t = c.normalizer.apply(t.sub(from, to));
            from = 0;
            to = t.s.length();
            if (to == 0) return;
        }
        if (!c.normAdded.isEmpty()) {
            char[] chars = t.s.toCharArray();
            IntList m = new IntList(16);
            c.normAdded.find(chars, from, to, m);
            int at = from;
            for (int k = 0; k < m.size; k += 3) {
                int s = m.get(k), e = m.get(k + 1), id = m.get(k + 2);
                if (s > at) preTokenize(t, at, s, w);
                w.added.set(w.ids.size);
                w.add(id, t.origStart(s), t.origEnd(e - 1));
                at = e;
            }
            if (at < to) preTokenize(t, at, to, w);
        } else {
            preTokenize(t, from, to, w);
        }
    }

    /** Runs the pre-tokenizers on {@code t[from, to)} and the model on each resulting piece. */
    private void preTokenize(Text t, int from, int to, Work w) {
        Core c = core;
        if (c.fastSplit != null) { // one splitting regex, nothing that changes the text
            IntList r = w.ranges;
            r.clear();
            c.fastSplit.matches(t.s, from, to, r);
            int at = from;
            for (int k = 0; k < r.size; k += 2) {
                int s = r.get(k), e = r.get(k + 1);
                if (s > at) model(t, at, s, w); // (the known patterns leave no gaps)
                model(t, s, e, w);
                at = e;
            }
            if (at < to) model(t, at, to, w);
            return;
        }
        List<Piece> cur = w.pieces, next = w.pieces2;
        cur.clear();
        cur.add(new Piece(t, from, to));
        for (PreTokenizer p : c.preTokenizers) {
            next.clear();
            for (Piece piece : cur) p.apply(piece, next, w.ranges);
            List<Piece> x = cur;
            cur = next;
            next = x;
        }
        for (Piece piece : cur) model(piece.t, piece.from, piece.to, w);
        cur.clear();
        next.clear();
    }

    /** The BPE model on one pre-tokenized piece; token offsets mapped back to the input. */
    private void model(Text t, int from, int to, Work w) {
        if (from >= to) return;
        String key = t.s.substring(from, to);
        BpeModel.Word word = core.model.cached(key);
        if (word == null) {
            if (core.byteLevel) {
                ByteLevel.Bytes b = w.bytes;
                b.size = 0;
                ByteLevel.appendUtf8(key, 0, key.length(), b);
                word = core.model.tokenizeUncached(key, b.a, 0, b.size);
            } else {
                word = core.model.tokenizeUncached(key, null, 0, 0);
            }
        }
        int[] ids = word.ids(), spans = word.spans();
        if (!w.withOffsets) {
            for (int id : ids) w.ids.add(id);
            return;
        }
        // walk characters and UTF-8 bytes together: token bytes [b0, b1) -> the characters holding them
        int ci = from, cb = 0; // character index in t.s, its first byte
        for (int i = 0; i < ids.length; i++) {
            int b0 = spans[2 * i], b1 = spans[2 * i + 1];
            while (true) {
                int len = charBytes(t.s, ci, to);
                if (cb + len > b0 || ci + charUnits(t.s, ci, to) >= to) break;
                cb += len;
                ci += charUnits(t.s, ci, to);
            }
            int start = t.origStart(ci);
            int ce = ci, eb = cb;
            while (true) {
                int len = charBytes(t.s, ce, to);
                if (eb + len >= b1 || ce + charUnits(t.s, ce, to) >= to) break;
                eb += len;
                ce += charUnits(t.s, ce, to);
            }
            int end = t.origEnd(ce + charUnits(t.s, ce, to) - 1);
            w.add(ids[i], start, end);
        }
    }

    private static int charUnits(String s, int i, int to) {
        return Character.isHighSurrogate(s.charAt(i)) && i + 1 < to && Character.isLowSurrogate(s.charAt(i + 1)) ? 2 : 1;
    }

    private static int charBytes(String s, int i, int to) {
        char c = s.charAt(i);
        if (c < 0x80) return 1;
        if (c < 0x800) return 2;
        return charUnits(s, i, to) == 2 ? 4 : 3;
    }

    /**
     * HF ByteLevel process_offsets (trim_offsets): leading/trailing spaces leave the offsets. The
     * "token" HF looks at is the model's token string, or for an added token the text it matched
     * (with what lstrip/rstrip took).
     */
    private void trimOffsets(Work w, String text) {
        int[] ids = w.ids.a, off = w.offsets.a;
        for (int i = 0; i < w.ids.size; i++) {
            String tok = w.added.get(i) ? text.substring(off[2 * i], off[2 * i + 1]) : idToTokenOrNull(ids[i]);
            if (tok == null) continue;
            int lead = 0, trail = 0;
            while (lead < tok.length() && isTrimmed(tok.charAt(lead))) lead++;
            while (trail < tok.length() && isTrimmed(tok.charAt(tok.length() - 1 - trail))) trail++;
            if (lead == 0 && trail == 0) continue;
            int s = off[2 * i], e = off[2 * i + 1];
            if (lead > 0) {
                boolean first = i == 0 || s == 0;
                if (!(first && core.trimAddPrefixSpace && lead == 1)) s = Math.min(s + lead, e);
            }
            if (trail > 0 && e >= trail) e = Math.max(e - trail, s);
            off[2 * i] = s;
            off[2 * i + 1] = e;
        }
    }

    private static boolean isTrimmed(char c) { return c == ByteLevel.BYTE_TO_CHAR[' '] || CharClass.isWhitespace(c); }

    private String idToTokenOrNull(int id) { return id >= 0 && id < core.idToToken.length ? core.idToToken[id] : null; }

    // ------------------------------------------------------------------ text with alignments

    /** A string and, per UTF-16 unit, the [start, end) of the input it came from. */
    static final class Text {
        final String s;
        final int[] start; // null: identity, s[i] is input[i]
        final int[] end;

        private Text(String s, int[] start, int[] end) {
            this.s = s;
            this.start = start;
            this.end = end;
        }

        static Text identity(String s) { return new Text(s, null, null); }

        static Text of(String s, int[] start, int[] end) { return new Text(s, start, end); }

        int origStart(int i) { return start == null ? i : start[i]; }

        int origEnd(int i) { return end == null ? i + 1 : end[i]; }

        /** s[from, to) with its alignments. */
        Text sub(int from, int to) {
            int n = to - from;
            int[] st = new int[n], en = new int[n];
            for (int i = 0; i < n; i++) {
                st[i] = origStart(from + i);
                en[i] = origEnd(from + i);
            }
            return new Text(s.substring(from, to), st, en);
        }
    }

    /** Builds a {@link Text}: appended units carry the alignment they are given. */
    static final class TextBuilder {
        final StringBuilder sb;
        int[] start;
        int[] end;

        TextBuilder(int capacity) {
            sb = new StringBuilder(capacity);
            start = new int[Math.max(8, capacity)];
            end = new int[start.length];
        }

        void append(char c, int s, int e) {
            int n = sb.length();
            if (n == start.length) {
                start = java.util.Arrays.copyOf(start, n * 2);
                end = java.util.Arrays.copyOf(end, n * 2);
            }
            sb.append(c);
            start[n] = s;
            end[n] = e;
        }

        void append(CharSequence cs, int s, int e) {
            for (int i = 0; i < cs.length(); i++) append(cs.charAt(i), s, e);
        }

        Text build() {
            int n = sb.length();
            return Text.of(sb.toString(), java.util.Arrays.copyOf(start, n), java.util.Arrays.copyOf(end, n));
        }
    }

    /** A piece of a {@link Text} on its way through the pre-tokenizers. */
    record Piece(Text t, int from, int to) {}

    // ------------------------------------------------------------------ decoding

    @Override
    public String decode(int[] ids) { return decode(ids, true); }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        Objects.requireNonNull(ids, "ids");
        List<String> tokens = tokensOf(ids, skipSpecialTokens);
        if (core.decoders == null) return String.join(" ", tokens);
        for (Decoders.Decoder d : core.decoders) tokens = d.decode(tokens);
        return String.join("", tokens);
    }

    /**
     * The bytes the ids stand for, before UTF-8 decoding (byte-level models; for generation, where a
     * token can end inside a character).
     *
     * @throws NullPointerException     if ids is null
     * @throws IllegalArgumentException if an id has no token
     * @throws IllegalStateException    if the model is not byte-level
     */
    public byte[] decodeBytes(int[] ids, boolean skipSpecialTokens) {
        Objects.requireNonNull(ids, "ids");
        if (!core.byteLevel) throw new IllegalStateException(core.source + ": decodeBytes needs a byte-level model");
        ByteLevel.Bytes out = new ByteLevel.Bytes(ids.length * 4);
        for (String t : tokensOf(ids, skipSpecialTokens)) ByteLevel.appendTokenBytes(t, out);
        return out.toArray();
    }

    private List<String> tokensOf(int[] ids, boolean skipSpecialTokens) {
        List<String> tokens = new ArrayList<>(ids.length);
        for (int id : ids) {
            String tok = idToToken(id);
            // HF skips by content: a token whose text is a special added token's is skipped too
            if (skipSpecialTokens && (core.specialIds.get(id) || core.specialContents.contains(tok))) continue;
            tokens.add(tok);
        }
        return tokens;
    }

    /**
     * An incremental decoder for generated ids (HF's DecodeStream): {@link DecodeStream#next} returns
     * the text that the new id completes, or "" while the text so far ends inside a character.
     */
    public DecodeStream decodeStream(boolean skipSpecialTokens) { return new DecodeStream(this, skipSpecialTokens); }

    /** See {@link #decodeStream}. Not thread-safe: one per generation. */
    public static final class DecodeStream {
        private final BpeTokenizer tok;
        private final boolean skip;
        private int[] ids = new int[0];
        private String prefix = "";
        private int prefixIndex;

        private DecodeStream(BpeTokenizer tok, boolean skip) {
            this.tok = tok;
            this.skip = skip;
        }

        /**
         * Adds one id; returns the text it completes ("" while the text ends inside a character).
         *
         * @throws IllegalArgumentException if no token has this id
         */
        public String next(int id) {
            tok.idToToken(id);
            int[] all = java.util.Arrays.copyOf(ids, ids.length + 1);
            all[ids.length] = id;
            ids = all;
            String s = tok.decode(ids, skip);
            if (s.length() <= prefix.length() || s.endsWith("\uFFFD")) return "";
            String out = s.startsWith(prefix) ? s.substring(prefix.length()) : s;
            // keep the tokens after the previous prefix as context (a Metaspace decoder strips a first space)
            int newPrefixIndex = ids.length - prefixIndex;
            ids = java.util.Arrays.copyOfRange(ids, prefixIndex, ids.length);
            prefix = tok.decode(ids, skip);
            prefixIndex = newPrefixIndex;
            return out;
        }
    }

    @Override
    public String toString() {
        return "BpeTokenizer[" + core.source + ", vocab " + vocabSize() + (core.byteLevel ? ", byte-level" : "")
                + ", truncation " + truncation + ", padding " + padding + "]";
    }

    // ------------------------------------------------------------------ the shared, immutable part

    private static final class Core {
        String source;
        BpeModel model;
        Map<String, Integer> added;
        String[] idToToken;
        BitSet specialIds;
        Set<String> specialContents;
        Map<String, Integer> specialTokens;
        Normalizers.Normalizer normalizer; // null: none
        AddedTokens rawAdded;
        AddedTokens normAdded;
        List<PreTokenizer> preTokenizers;
        SplitRegex fastSplit;              // non-null: the pre-tokenizer only splits with this regex
        boolean byteLevel;
        Template single;
        Template pair;
        boolean trimOffsets;
        boolean trimAddPrefixSpace;
        List<Decoders.Decoder> decoders;   // null: join with spaces
        Padding defaultPadding;
    }

    // ------------------------------------------------------------------ pre-tokenizers

    /** One pre-tokenizer step: a piece in, pieces out. */
    interface PreTokenizer {
        void apply(Piece p, List<Piece> out, IntList scratch);
    }

    /** HF SplitDelimiterBehavior. */
    enum Behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS }

    /** Splits a piece at the matches of a regex, or at characters a predicate picks. */
    record SplitPre(SplitRegex regex, java.util.function.IntPredicate chars, Behavior behavior, boolean invert)
            implements PreTokenizer {
        @Override
        public void apply(Piece p, List<Piece> out, IntList scratch) {
            String s = p.t().s;
            scratch.clear();
            if (regex != null) {
                regex.matches(s, p.from(), p.to(), scratch);
            } else {
                for (int i = p.from(); i < p.to(); ) {
                    int cp = s.codePointAt(i);
                    int n = Character.charCount(cp);
                    if (chars.test(cp)) { scratch.add(i); scratch.add(i + n); }
                    i += n;
                }
            }
            // tiles: (start, end, isMatch)
            IntList tiles = new IntList(scratch.size * 2 + 6);
            int at = p.from();
            for (int k = 0; k < scratch.size; k += 2) {
                int a = scratch.get(k), b = scratch.get(k + 1);
                if (a > at) { tiles.add(at); tiles.add(a); tiles.add(invert ? 1 : 0); }
                tiles.add(a);
                tiles.add(b);
                tiles.add(invert ? 0 : 1);
                at = b;
            }
            if (at < p.to()) { tiles.add(at); tiles.add(p.to()); tiles.add(invert ? 1 : 0); }
            split(p.t(), tiles, behavior, out);
        }

        /** HF NormalizedString::split on (start, end, isMatch) tiles; empty pieces dropped. */
        static void split(Text t, IntList tiles, Behavior behavior, List<Piece> out) {
            int n = tiles.size / 3;
            IntList r = new IntList(tiles.size);
            switch (behavior) {
                case REMOVED -> {
                    for (int i = 0; i < n; i++) if (tiles.get(3 * i + 2) == 0) { r.add(tiles.get(3 * i)); r.add(tiles.get(3 * i + 1)); }
                }
                case ISOLATED -> {
                    for (int i = 0; i < n; i++) { r.add(tiles.get(3 * i)); r.add(tiles.get(3 * i + 1)); }
                }
                case MERGED_WITH_PREVIOUS -> {
                    boolean prevMatch = false;
                    for (int i = 0; i < n; i++) {
                        boolean m = tiles.get(3 * i + 2) == 1;
                        if (m && !prevMatch && r.size > 0) r.a[r.size - 1] = tiles.get(3 * i + 1);
                        else { r.add(tiles.get(3 * i)); r.add(tiles.get(3 * i + 1)); }
                        prevMatch = m;
                    }
                }
                case MERGED_WITH_NEXT -> {
                    boolean prevMatch = false;
                    IntList rev = new IntList(tiles.size);
                    for (int i = n - 1; i >= 0; i--) {
                        boolean m = tiles.get(3 * i + 2) == 1;
                        if (m && !prevMatch && rev.size > 0) rev.a[rev.size - 2] = tiles.get(3 * i);
                        else { rev.add(tiles.get(3 * i)); rev.add(tiles.get(3 * i + 1)); }
                        prevMatch = m;
                    }
                    for (int k = rev.size - 2; k >= 0; k -= 2) { r.add(rev.get(k)); r.add(rev.get(k + 1)); }
                }
                case CONTIGUOUS -> {
                    boolean prevMatch = false;
                    for (int i = 0; i < n; i++) {
                        boolean m = tiles.get(3 * i + 2) == 1;
                        if (m == prevMatch && r.size > 0) r.a[r.size - 1] = tiles.get(3 * i + 1);
                        else { r.add(tiles.get(3 * i)); r.add(tiles.get(3 * i + 1)); }
                        prevMatch = m;
                    }
                }
            }
            for (int k = 0; k < r.size; k += 2) if (r.get(k + 1) > r.get(k)) out.add(new Piece(t, r.get(k), r.get(k + 1)));
        }
    }

    /** HF ByteLevel pre-tokenizer: add_prefix_space, then GPT-2's regex (use_regex); the bytes come later, in the model. */
    record ByteLevelPre(boolean addPrefixSpace, boolean useRegex) implements PreTokenizer {
        private static final SplitPre GPT2 = new SplitPre(SplitRegex.GPT2, null, Behavior.ISOLATED, false);

        @Override
        public void apply(Piece p, List<Piece> out, IntList scratch) {
            if (addPrefixSpace && p.t().s.charAt(p.from()) != ' ') p = prepend(p, " ");
            if (useRegex) GPT2.apply(p, out, scratch);
            else out.add(p);
        }
    }

    /** A copy of the piece with {@code s} in front, aligned to the piece's first character (as HF's prepend). */
    static Piece prepend(Piece p, String s) {
        Text t = p.t();
        TextBuilder b = new TextBuilder(p.to() - p.from() + s.length());
        int os = t.origStart(p.from()), oe = t.origEnd(p.from());
        b.append(s, os, oe);
        for (int i = p.from(); i < p.to(); i++) b.append(t.s.charAt(i), t.origStart(i), t.origEnd(i));
        Text nt = b.build();
        return new Piece(nt, 0, nt.s.length());
    }

    /** HF Metaspace: ' ' becomes the replacement, which is prepended per prepend_scheme; split before each one. */
    record MetaspacePre(String replacement, String scheme, boolean split) implements PreTokenizer {
        @Override
        public void apply(Piece p, List<Piece> out, IntList scratch) {
            Text t = p.t();
            TextBuilder b = new TextBuilder(p.to() - p.from() + 2);
            for (int i = p.from(); i < p.to(); i++) {
                char c = t.s.charAt(i);
                if (c == ' ') b.append(replacement, t.origStart(i), t.origEnd(i));
                else b.append(c, t.origStart(i), t.origEnd(i));
            }
            Text nt = b.build();
            Piece q = new Piece(nt, 0, nt.s.length());
            boolean starts = nt.s.startsWith(replacement);
            if (!starts && !nt.s.isEmpty()) {
                if (scheme.equals("always") || (scheme.equals("first") && nt.origStart(0) == 0)) q = prepend(q, replacement);
            }
            if (!split) {
                out.add(q);
                return;
            }
            int rcp = replacement.codePointAt(0);
            new SplitPre(null, cp -> cp == rcp, Behavior.MERGED_WITH_NEXT, false).apply(q, out, scratch);
        }
    }

    // ------------------------------------------------------------------ reading the file

    private static final class Parser extends TokenizerJson {
        private final JsonNode root;
        private final TokenizerJson.Parsed parsed;

        Parser(String source, TokenizerJson.Parsed parsed) {
            super(source);
            this.parsed = parsed;
            this.root = parsed.root();
        }

        BpeTokenizer build() throws TokenizerFormatException {
            Core c = new Core();
            c.source = source;
            String mtype = modelType(root);
            if (!mtype.equals("BPE")) {
                throw fail("model type is " + mtype + ", but BpeTokenizer reads only BPE tokenizers"
                        + (mtype.equals("WordPiece") ? " (a WordPiece model, as in BERT files: use WordPieceTokenizer or Tokenizer.fromFile)" : ""));
            }
            JsonNode model = root.get("model");
            // --- pre-tokenizer first: whether the model is byte-level
            c.preTokenizers = new ArrayList<>();
            JsonNode pre = root.get("pre_tokenizer");
            if (!isNull(pre)) preTokenizer(pre, "pre_tokenizer", c.preTokenizers);
            for (int i = 0; i < c.preTokenizers.size(); i++) {
                if (c.preTokenizers.get(i) instanceof ByteLevelPre) {
                    if (i != c.preTokenizers.size() - 1) {
                        throw fail("pre_tokenizer: a ByteLevel pre-tokenizer followed by another pre-tokenizer is not supported"
                                + " (ByteLevel must come last, as in GPT-2 and Llama-3 files)");
                    }
                    c.byteLevel = true;
                }
            }
            // --- vocabulary and merges
            Map<String, Integer> vocab = parsed.vocab();
            JsonNode vnode = model.get("vocab");
            if (vocab == null) {
                if (isNull(vnode) || !vnode.isObject()) throw fail("model.vocab must be an object mapping token to id, found "
                        + (vnode == null ? "nothing" : vnode.getNodeType()));
                vocab = new java.util.HashMap<>();
                for (var it = vnode.fields(); it.hasNext(); ) {
                    var e = it.next();
                    JsonNode id = e.getValue();
                    if (!id.isIntegralNumber() || !id.canConvertToInt() || id.intValue() < 0 || id.intValue() > MAX_ID) {
                        throw fail("model.vocab[\"" + e.getKey() + "\"] must be an id in [0, " + MAX_ID + "], found " + id);
                    }
                    vocab.put(e.getKey(), id.intValue());
                }
            }
            if (vocab.isEmpty()) throw fail("model.vocab is empty");
            int maxId = -1;
            for (int id : vocab.values()) maxId = Math.max(maxId, id);
            List<String[]> mergeList = parsed.merges();
            if (mergeList == null) {
                JsonNode mn = model.get("merges");
                if (isNull(mn)) mergeList = List.of();
                else throw fail("model.merges must be an array of \"a b\" strings or [\"a\", \"b\"] pairs, found " + mn.getNodeType());
            }
            String prefix = text(model, "continuing_subword_prefix", null, "model");
            String suffix = text(model, "end_of_word_suffix", null, "model");
            int prefixLen = prefix == null ? 0 : prefix.length();
            BpeModel.MergeMap merges = new BpeModel.MergeMap(mergeList.size());
            for (int i = 0; i < mergeList.size(); i++) {
                String[] m = mergeList.get(i);
                Integer a = vocab.get(m[0]), b = vocab.get(m[1]);
                if (a == null || b == null) {
                    throw fail("model.merges[" + i + "] = \"" + m[0] + " " + m[1] + "\": token \"" + (a == null ? m[0] : m[1])
                            + "\" is not in model.vocab");
                }
                // HF: the new token is a + b without b's first prefix_len characters (its continuing_subword_prefix)
                String merged = m[0] + m[1].substring(Math.min(prefixLen, m[1].length()));
                Integer id = vocab.get(merged);
                if (id == null) {
                    throw fail("model.merges[" + i + "] = \"" + m[0] + " " + m[1] + "\" makes \"" + merged
                            + "\", which is not in model.vocab");
                }
                merges.put(a, b, i, id);
            }
            String unk = text(model, "unk_token", null, "model");
            int unkId = -1;
            if (unk != null) {
                Integer u = vocab.get(unk);
                if (u == null) throw fail("model.unk_token \"" + unk + "\" is not in model.vocab");
                unkId = u;
            }
            JsonNode dropout = model.get("dropout");
            if (!isNull(dropout) && !dropout.isNumber()) throw fail("model.dropout must be a number or null, found " + dropout);
            c.model = new BpeModel(vocab, merges, unkId, bool(model, "fuse_unk", false, "model"),
                    bool(model, "byte_fallback", false, "model"), bool(model, "ignore_merges", false, "model"),
                    prefix, suffix, c.byteLevel);
            // --- added tokens
            Added added = addedTokens(root, vocab);
            c.added = added.ids();
            maxId = Math.max(maxId, added.maxId());
            c.idToToken = new String[maxId + 1];
            for (Map.Entry<String, Integer> e : vocab.entrySet()) c.idToToken[e.getValue()] = e.getKey();
            c.specialIds = new BitSet();
            c.specialContents = new HashSet<>();
            Map<String, Integer> specials = new LinkedHashMap<>();
            for (AddedTokens.Token t : added.tokens()) {
                c.idToToken[t.id()] = t.content();
                if (t.special()) {
                    c.specialIds.set(t.id());
                    c.specialContents.add(t.content());
                    specials.put(t.content(), t.id());
                }
            }
            c.specialTokens = Collections.unmodifiableMap(specials);
            // --- normalizer
            JsonNode norm = root.get("normalizer");
            c.normalizer = isNull(norm) ? null : Normalizers.parse(this, norm, "normalizer");
            List<AddedTokens.Token> raw = new ArrayList<>(), normed = new ArrayList<>();
            List<String> rawPat = new ArrayList<>(), normPat = new ArrayList<>();
            for (AddedTokens.Token t : added.tokens()) {
                if (t.normalized() && c.normalizer != null) {
                    String p = c.normalizer.apply(Text.identity(t.content()).sub(0, t.content().length())).s;
                    if (!p.isEmpty()) { normed.add(t); normPat.add(p); }
                } else if (t.normalized()) {
                    normed.add(t);
                    normPat.add(t.content());
                } else {
                    raw.add(t);
                    rawPat.add(t.content());
                }
            }
            c.rawAdded = new AddedTokens(raw, rawPat);
            c.normAdded = new AddedTokens(normed, normPat);
            // the fast path: a single splitting regex (alone, or then ByteLevel without prefix space or regex)
            List<PreTokenizer> p = c.preTokenizers;
            if (p.size() == 1 && p.get(0) instanceof ByteLevelPre bl && !bl.addPrefixSpace() && bl.useRegex()) {
                c.fastSplit = SplitRegex.GPT2;
            } else if (!p.isEmpty() && p.size() <= 2 && p.get(0) instanceof SplitPre sp && sp.regex() != null
                    && sp.behavior() == Behavior.ISOLATED && !sp.invert()
                    && (p.size() == 1 || p.get(1) instanceof ByteLevelPre bl2 && !bl2.addPrefixSpace() && !bl2.useRegex())) {
                c.fastSplit = sp.regex();
            }
            // --- post-processor
            c.single = Template.SINGLE_PLAIN;
            c.pair = Template.PAIR_PLAIN;
            JsonNode post = root.get("post_processor");
            if (!isNull(post)) postProcessor(post, "post_processor", c);
            // --- decoder
            JsonNode dec = root.get("decoder");
            c.decoders = isNull(dec) ? null : Decoders.parse(this, dec, "decoder");
            // --- padding and truncation
            Integer padId = null;
            String padToken = null;
            for (String cand : List.of("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")) {
                padId = c.added.containsKey(cand) ? c.added.get(cand) : vocab.get(cand);
                if (padId != null) { padToken = cand; break; }
            }
            c.defaultPadding = new Padding(Padding.Strategy.LONGEST, 0, Padding.Direction.RIGHT, 0,
                    padId == null ? 0 : padId, 0, padToken == null ? "" : padToken);
            Padding pad = padding(root.get("padding"), c.defaultPadding);
            Truncation trunc = truncation(root.get("truncation"));
            if (trunc != null && trunc.maxLength() < c.single.specialCount()) {
                throw fail("truncation.max_length " + trunc.maxLength() + " is smaller than the " + c.single.specialCount()
                        + " special tokens the post-processor adds");
            }
            return new BpeTokenizer(c, trunc, pad);
        }

        private void preTokenizer(JsonNode n, String path, List<PreTokenizer> out) throws TokenizerFormatException {
            String t = type(n, path);
            if (t == null) throw fail(path + " has no \"type\"");
            switch (t) {
                case "Sequence" -> {
                    JsonNode list = n.get("pretokenizers");
                    if (isNull(list) || !list.isArray()) throw fail(path + ".pretokenizers must be an array");
                    for (int i = 0; i < list.size(); i++) preTokenizer(list.get(i), path + ".pretokenizers[" + i + "]", out);
                }
                case "ByteLevel" -> out.add(new ByteLevelPre(bool(n, "add_prefix_space", true, path), bool(n, "use_regex", true, path)));
                case "Split" -> {
                    SplitRegex r = pattern(n.get("pattern"), path + ".pattern");
                    out.add(new SplitPre(r, null, behavior(text(n, "behavior", null, path), path + ".behavior"),
                            bool(n, "invert", false, path)));
                }
                case "Metaspace" -> {
                    String rep = text(n, "replacement", "\u2581", path);
                    if (rep.isEmpty() || rep.codePointCount(0, rep.length()) != 1) throw fail(path + ".replacement must be one character, found \"" + rep + "\"");
                    String scheme = text(n, "prepend_scheme", null, path);
                    if (scheme == null) scheme = bool(n, "add_prefix_space", true, path) ? "always" : "never";
                    if (!scheme.equals("always") && !scheme.equals("first") && !scheme.equals("never")) {
                        throw fail(path + ".prepend_scheme must be \"always\", \"first\" or \"never\", found \"" + scheme + "\"");
                    }
                    out.add(new MetaspacePre(rep, scheme, bool(n, "split", true, path)));
                }
                case "Digits" -> {
                    boolean individual = bool(n, "individual_digits", false, path);
                    out.add(new SplitPre(null, BpeTokenizer::isNumeric, individual ? Behavior.ISOLATED : Behavior.CONTIGUOUS, false));
                }
                case "WhitespaceSplit" -> out.add(new SplitPre(null, CharClass::isWhitespace, Behavior.REMOVED, false));
                default -> throw fail(path + " type " + t + " is not supported (ByteLevel, Split, Metaspace, Digits,"
                        + " WhitespaceSplit, Sequence)");
            }
        }

        private SplitRegex pattern(JsonNode p, String path) throws TokenizerFormatException {
            if (isNull(p) || !p.isObject()) throw fail(path + " must be {\"Regex\": ...} or {\"String\": ...}, found " + p);
            boolean literal = p.has("String");
            JsonNode v = literal ? p.get("String") : p.get("Regex");
            if (isNull(v) || !v.isTextual()) throw fail(path + " must be {\"Regex\": \"...\"} or {\"String\": \"...\"}, found " + p);
            try {
                return SplitRegex.of(v.asText(), literal);
            } catch (java.util.regex.PatternSyntaxException e) {
                throw new TokenizerFormatException(source + ": " + path + ": the regex " + v + " does not compile: " + e.getDescription(), e);
            }
        }

        private Behavior behavior(String b, String path) throws TokenizerFormatException {
            if (b == null) throw fail(path + " is missing");
            return switch (b) {
                case "Removed" -> Behavior.REMOVED;
                case "Isolated" -> Behavior.ISOLATED;
                case "MergedWithPrevious" -> Behavior.MERGED_WITH_PREVIOUS;
                case "MergedWithNext" -> Behavior.MERGED_WITH_NEXT;
                case "Contiguous" -> Behavior.CONTIGUOUS;
                default -> throw fail(path + " must be Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous, found \"" + b + "\"");
            };
        }

        private void postProcessor(JsonNode post, String path, Core c) throws TokenizerFormatException {
            String pt = type(post, path);
            if (pt == null) throw fail(path + " has no \"type\"");
            int vs = c.idToToken.length;
            switch (pt) {
                case "Sequence" -> {
                    JsonNode list = post.get("processors");
                    if (isNull(list) || !list.isArray()) throw fail(path + ".processors must be an array");
                    for (int i = 0; i < list.size(); i++) postProcessor(list.get(i), path + ".processors[" + i + "]", c);
                }
                case "ByteLevel" -> {
                    if (bool(post, "trim_offsets", true, path)) {
                        c.trimOffsets = true;
                        c.trimAddPrefixSpace = bool(post, "add_prefix_space", true, path);
                    }
                }
                case "TemplateProcessing" -> {
                    c.single = template(post, path, "single", vs);
                    c.pair = template(post, path, "pair", vs);
                }
                case "BertProcessing" -> {
                    int[] cls = {pairId(post, path, "cls", vs)}, sep = {pairId(post, path, "sep", vs)};
                    c.single = Template.of(List.of(new Template.Piece(true, cls, -1, 0), new Template.Piece(false, null, 0, 0),
                            new Template.Piece(true, sep, -1, 0)));
                    c.pair = Template.of(List.of(new Template.Piece(true, cls, -1, 0), new Template.Piece(false, null, 0, 0),
                            new Template.Piece(true, sep, -1, 0), new Template.Piece(false, null, 1, 1),
                            new Template.Piece(true, sep, -1, 1)));
                }
                case "RobertaProcessing" -> {
                    int[] cls = {pairId(post, path, "cls", vs)}, sep = {pairId(post, path, "sep", vs)};
                    c.single = Template.of(List.of(new Template.Piece(true, cls, -1, 0), new Template.Piece(false, null, 0, 0),
                            new Template.Piece(true, sep, -1, 0)));
                    c.pair = Template.of(List.of(new Template.Piece(true, cls, -1, 0), new Template.Piece(false, null, 0, 0),
                            new Template.Piece(true, sep, -1, 0), new Template.Piece(true, sep, -1, 0),
                            new Template.Piece(false, null, 1, 0), new Template.Piece(true, sep, -1, 0)));
                    if (bool(post, "trim_offsets", true, path)) {
                        c.trimOffsets = true;
                        c.trimAddPrefixSpace = bool(post, "add_prefix_space", true, path);
                    }
                }
                default -> throw fail(path + " type " + pt + " is not supported (TemplateProcessing, ByteLevel,"
                        + " RobertaProcessing, BertProcessing, Sequence or none)");
            }
        }
    }

    /** Rust's char::is_numeric: Nd, Nl, No. */
    static boolean isNumeric(int cp) {
        int t = Character.getType(cp);
        return t == Character.DECIMAL_DIGIT_NUMBER || t == Character.LETTER_NUMBER || t == Character.OTHER_NUMBER;
    }
}
