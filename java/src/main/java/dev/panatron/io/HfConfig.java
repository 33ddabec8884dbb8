package dev.panatron.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A Hugging Face {@code config.json}: typed accessors for the fields transformer builders use,
 * with clear errors for missing or mistyped ones, and {@link #raw()} for the rest.
 */
public final class HfConfig {
    private final Path file;
    private final JsonNode root;

    private HfConfig(Path file, JsonNode root) {
        this.file = file;
        this.root = root;
    }

    /**
     * Reads {@code file}.
     *
     * @throws IOException          when it cannot be read
     * @throws ModelFormatException when it is not a JSON object
     */
    public static HfConfig read(Path file) throws IOException {
        return parse(file, Files.readString(file));
    }

    /** Parses {@code json}; {@code file} only names the source in messages. */
    public static HfConfig parse(Path file, String json) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(json);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(file, "not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) throw new ModelFormatException(file, "config is not a JSON object");
        return new HfConfig(file, root);
    }

    public Path file() { return file; }

    /** The whole JSON object. */
    public JsonNode raw() { return root; }

    public boolean has(String key) { return root.hasNonNull(key); }

    /** A required integer field. @throws ModelFormatException when missing or not an integer */
    public int getInt(String key) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) throw new ModelFormatException(file, "missing field '" + key + "'");
        if (!v.isIntegralNumber() || !v.canConvertToInt()) throw new ModelFormatException(file, "field '" + key + "' must be an integer, got " + v);
        return v.asInt();
    }

    public int getInt(String key, int dflt) { return has(key) ? getInt(key) : dflt; }

    /** A number field, or {@code dflt}. @throws ModelFormatException when present but not a number */
    public double getDouble(String key, double dflt) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isNumber()) throw new ModelFormatException(file, "field '" + key + "' must be a number, got " + v);
        return v.asDouble();
    }

    /** A string field, or {@code dflt}. @throws ModelFormatException when present but not a string */
    public String getString(String key, String dflt) {
        JsonNode v = root.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isTextual()) throw new ModelFormatException(file, "field '" + key + "' must be a string, got " + v);
        return v.asText();
    }

    // ---- the common transformer fields

    public String modelType() { return getString("model_type", ""); }

    public int hiddenSize() { return getInt("hidden_size"); }

    public int numHiddenLayers() { return getInt("num_hidden_layers"); }

    public int numAttentionHeads() { return getInt("num_attention_heads"); }

    public int intermediateSize() { return getInt("intermediate_size"); }

    public String hiddenAct() { return getString("hidden_act", "gelu"); }

    public double layerNormEps() { return getDouble("layer_norm_eps", 1e-12); }

    public int maxPositionEmbeddings() { return getInt("max_position_embeddings"); }

    public int typeVocabSize() { return getInt("type_vocab_size", 2); }

    public int vocabSize() { return getInt("vocab_size"); }

    @Override
    public String toString() { return "config " + file + " " + root; }
}
