package dev.panatron.lm;

/**
 * Text to ids and back, as generation needs it. The byte-level BPE tokenizer
 * ({@code dev.panatron.tokenize}) implements this once it lands; {@link #ids()} is the stub for
 * models used by ids alone.
 */
public interface Tokenizer {
    int[] encode(String text);

    String decode(int[] ids);

    /** A tokenizer that only prints ids: encode is unsupported, decode gives "[1, 2, 3]". */
    static Tokenizer ids() {
        return new Tokenizer() {
            @Override public int[] encode(String text) { throw new UnsupportedOperationException("no tokenizer: give token ids"); }

            @Override public String decode(int[] ids) { return java.util.Arrays.toString(ids); }
        };
    }
}
