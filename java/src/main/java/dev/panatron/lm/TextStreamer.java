package dev.panatron.lm;

import dev.panatron.tokenize.BpeTokenizer;

import java.util.Arrays;
import java.util.Objects;

/**
 * Turns generated ids into text as they come: {@link #next} returns the text the new id
 * completes, holding back bytes while the text ends inside a UTF-8 character (a byte-level
 * token can end mid-character), and {@link #finish} returns what is left at the end. The pieces
 * concatenated are exactly {@code tokenizer.decode(allIds, skipSpecialTokens)}. Not thread-safe:
 * one per generated sequence.
 */
public final class TextStreamer {
    private final BpeTokenizer tok;
    private final boolean skipSpecial;
    private final BpeTokenizer.DecodeStream stream;
    private final StringBuilder emitted = new StringBuilder();
    private int[] ids = new int[16];
    private int n;

    /** @param skipSpecialTokens leave out special tokens (e.g. the eos), as HF's decode does */
    public TextStreamer(BpeTokenizer tokenizer, boolean skipSpecialTokens) {
        this.tok = Objects.requireNonNull(tokenizer, "tokenizer");
        this.skipSpecial = skipSpecialTokens;
        this.stream = tokenizer.decodeStream(skipSpecialTokens);
    }

    /**
     * Adds one id; returns the text it completes ("" while the text ends inside a character).
     *
     * @throws IllegalArgumentException if the tokenizer has no token with this id
     */
    public String next(int id) {
        String s = stream.next(id);
        if (n == ids.length) ids = Arrays.copyOf(ids, 2 * n);
        ids[n++] = id;
        emitted.append(s);
        return s;
    }

    /** The text not returned yet (an incomplete character at the end decodes to U+FFFD). */
    public String finish() {
        String full = tok.decode(Arrays.copyOf(ids, n), skipSpecial);
        String done = emitted.toString();
        String rest = full.startsWith(done) ? full.substring(done.length()) : "";
        emitted.append(rest);
        return rest;
    }

    /** Everything returned so far. */
    public String text() { return emitted.toString(); }
}
