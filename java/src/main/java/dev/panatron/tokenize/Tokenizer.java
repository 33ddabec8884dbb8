package dev.panatron.tokenize;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A tokenizer read from a Hugging Face {@code tokenizer.json} that produces the ids HF tokenizers
 * produces for the same file: {@link WordPieceTokenizer} (BERT family) or {@link BpeTokenizer}
 * (GPT-2, Llama, Mistral, Qwen2 ...). {@link #fromFile} picks the implementation from the file's
 * model type. Implementations are immutable and thread-safe.
 */
public interface Tokenizer {

    /**
     * Reads a tokenizer.json and returns the tokenizer its {@code model.type} calls for.
     *
     * @param file the tokenizer.json
     * @return a {@link WordPieceTokenizer} for "WordPiece", a {@link BpeTokenizer} for "BPE"
     * @throws java.nio.file.NoSuchFileException if the file does not exist
     * @throws TokenizerFormatException          if the file is not valid JSON (empty, truncated,
     *                                           corrupt), has another model type (e.g. Unigram), or
     *                                           uses a component the implementation lacks; the
     *                                           message names the file and the problem
     * @throws IOException                       if the file cannot be read
     */
    static Tokenizer fromFile(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        byte[] bytes = TokenizerJson.readFile(file);
        String source = file.toString();
        TokenizerJson.Parsed parsed = TokenizerJson.parse(bytes, source);
        String type = new TokenizerJson(source).modelType(parsed.root());
        return switch (type) {
            case "BPE" -> BpeTokenizer.fromParsed(parsed, source);
            case "WordPiece" -> WordPieceTokenizer.fromParsed(parsed, source);
            default -> throw new TokenizerFormatException(source + ": model type " + type
                    + " is not supported (supported: BPE for GPT-2/Llama-style files, WordPiece for BERT-style files)");
        };
    }

    /** The file or stream name this tokenizer was read from. */
    String source();

    /** The vocabulary size, added tokens included (one more than the largest id). */
    int vocabSize();

    /** The id of a token (vocabulary entry or added token), if it has one. */
    OptionalInt tokenToId(String token);

    /**
     * The token of an id.
     *
     * @throws IllegalArgumentException if no token has this id
     */
    String idToToken(int id);

    /** Whether {@code id} is a special added token ({@code [CLS]}, {@code <|endoftext|>} ...). */
    boolean isSpecial(int id);

    /** The special added tokens, content to id. */
    Map<String, Integer> specialTokens();

    /**
     * Encodes one text with special tokens (as the post-processor says), truncation and padding as
     * configured.
     *
     * @throws NullPointerException if text is null
     */
    Encoding encode(String text);

    /**
     * Encodes a text, or a pair when {@code pair} is not null.
     *
     * @param addSpecialTokens whether the post-processor adds its special tokens
     * @throws NullPointerException     if text is null
     * @throws IllegalArgumentException if truncation cannot make a pair fit
     */
    Encoding encode(String text, String pair, boolean addSpecialTokens);

    /**
     * Encodes texts into a padded batch of {@code [B, L]} arrays.
     *
     * @throws NullPointerException     if the list or one of its texts is null
     * @throws IllegalArgumentException if the list is empty
     */
    Batch encodeBatch(List<String> texts);

    /**
     * Decodes ids to text, leaving out special tokens.
     *
     * @throws NullPointerException     if ids is null
     * @throws IllegalArgumentException if an id has no token
     */
    String decode(int[] ids);

    /**
     * Decodes ids to text.
     *
     * @param skipSpecialTokens whether to leave out special tokens
     * @throws NullPointerException     if ids is null
     * @throws IllegalArgumentException if an id has no token
     */
    String decode(int[] ids, boolean skipSpecialTokens);
}
