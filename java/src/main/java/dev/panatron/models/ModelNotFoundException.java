package dev.panatron.models;

import java.io.IOException;

/**
 * A model name or path that does not lead to a usable model: an unknown name, a missing path, or a
 * directory without the files a model needs. The message lists what is known or was looked for.
 */
public final class ModelNotFoundException extends IOException {
    private static final long serialVersionUID = 1L;

    /** Creates the exception with a message that says what was looked for. */
    public ModelNotFoundException(String message) { super(message); }
}
