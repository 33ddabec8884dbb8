package dev.panatron.models;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * The files of one model, found by {@link ModelRegistry}: its weights (an ONNX graph or a
 * safetensors file), the HF {@code config.json} when there is one, and the HF {@code tokenizer.json}.
 *
 * @param name      the model's name ("all-minilm-l6-v2") or, for a path, the directory or file name
 * @param format    what {@code weights} is
 * @param weights   the .onnx or .safetensors file
 * @param config    the config.json, or null (ONNX models need none)
 * @param tokenizer the tokenizer.json (possibly named otherwise, e.g. all-minilm-l6-v2-tokenizer.json)
 */
public record ModelFiles(String name, Format format, Path weights, Path config, Path tokenizer) {

    /** The weight file formats. */
    public enum Format { ONNX, SAFETENSORS }

    /**
     * Checks the arguments.
     *
     * @throws NullPointerException     if name, format, weights or tokenizer is null
     * @throws IllegalArgumentException if a safetensors model has no config
     */
    public ModelFiles {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(format, "format");
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(tokenizer, "tokenizer");
        if (format == Format.SAFETENSORS && config == null) {
            throw new IllegalArgumentException("a safetensors model needs its config.json (weights " + weights + ")");
        }
    }

    /** The config.json, if there is one. */
    public Optional<Path> configFile() { return Optional.ofNullable(config); }

    /** The directory holding the weights. */
    public Path directory() { return weights.toAbsolutePath().getParent(); }
}
