package dev.panatron.tokenize;

import java.io.IOException;

/**
 * A tokenizer file that cannot be used: not JSON, truncated, missing a required section, or
 * describing a model this tokenizer does not implement. The message names the file and what is
 * wrong with it.
 */
public final class TokenizerFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /** Creates the exception; {@code message} should name the file. */
    public TokenizerFormatException(String message) { super(message); }

    /** Creates the exception with its cause (e.g. the JSON parser's error). */
    public TokenizerFormatException(String message, Throwable cause) { super(message, cause); }
}
