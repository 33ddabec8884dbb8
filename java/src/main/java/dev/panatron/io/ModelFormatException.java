package dev.panatron.io;

import java.nio.file.Path;

/**
 * A model file whose content is not what its format promises: truncated or corrupt data, a
 * header that contradicts itself, an unknown operator, an unsupported dtype. The message names
 * the file and what was wrong (the tensor, node or op).
 */
public class ModelFormatException extends IllegalArgumentException {
    private final transient Path file;

    public ModelFormatException(Path file, String message) {
        super(file + ": " + message);
        this.file = file;
    }

    public ModelFormatException(Path file, String message, Throwable cause) {
        super(file + ": " + message, cause);
        this.file = file;
    }

    /** The offending file. */
    public Path file() { return file; }
}
