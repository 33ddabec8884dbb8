package dev.panatron.tokenize;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Reading a Hugging Face {@code tokenizer.json}: the JSON itself (model.vocab and model.merges,
 * the big parts, streamed into plain collections instead of a tree), and the sections every
 * tokenizer shares (added_tokens, the post-processor template, padding, truncation). Every error
 * is a {@link TokenizerFormatException} naming the file and the JSON path.
 */
class TokenizerJson {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** The largest id a vocabulary entry may have. */
    static final int MAX_ID = 50_000_000;

    final String source;

    TokenizerJson(String source) { this.source = source; }

    // ------------------------------------------------------------------ the file

    /**
     * The JSON tree with model.vocab (an object) and model.merges (an array) taken out: they are in
     * {@code vocab} and {@code merges} (null when the file has none or another shape), and the tree
     * keeps an empty placeholder.
     */
    record Parsed(JsonNode root, Map<String, Integer> vocab, List<String[]> merges) {}

    /** Reads a file's bytes, refusing directories. */
    static byte[] readFile(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        if (Files.isDirectory(file)) {
            throw new TokenizerFormatException(file + ": is a directory, expected a tokenizer.json file");
        }
        return Files.readAllBytes(file);
    }

    /**
     * Parses the bytes of a tokenizer.json.
     *
     * @throws TokenizerFormatException if they are empty, not JSON, truncated or not a JSON object
     */
    static Parsed parse(byte[] bytes, String source) throws TokenizerFormatException {
        if (bytes.length == 0) throw new TokenizerFormatException(source + ": the file is empty, expected a tokenizer.json");
        Parsed parsed;
        try {
            parsed = readStreaming(bytes, source);
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
        JsonNode root = parsed.root();
        if (root == null || root.isMissingNode() || !root.isObject()) {
            throw new TokenizerFormatException(source + ": expected a JSON object (a tokenizer.json), found "
                    + (root == null || root.isMissingNode() ? "nothing" : root.getNodeType().toString().toLowerCase()));
        }
        return parsed;
    }

    private static Parsed readStreaming(byte[] bytes, String source) throws IOException {
        try (JsonParser p = MAPPER.getFactory().createParser(bytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                JsonNode other = p.currentToken() == null ? null : MAPPER.readTree(p);
                if (other != null && p.nextToken() != null) {
                    throw new TokenizerFormatException(source + ": not valid JSON (trailing content after the first value)");
                }
                return new Parsed(other, null, null);
            }
            ObjectNode root = MAPPER.createObjectNode();
            Map<String, Integer> vocab = null;
            List<String[]> merges = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                if (name.equals("model") && t == JsonToken.START_OBJECT) {
                    ObjectNode model = root.putObject("model");
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String f = p.currentName();
                        JsonToken ft = p.nextToken();
                        if (f.equals("vocab") && ft == JsonToken.START_OBJECT) {
                            vocab = readVocab(p, source);
                            model.putObject("vocab"); // a placeholder: the entries are in the map
                        } else if (f.equals("merges") && ft == JsonToken.START_ARRAY) {
                            merges = readMerges(p, source);
                            model.putArray("merges");
                        } else {
                            model.set(f, MAPPER.readTree(p));
                        }
                    }
                } else {
                    root.set(name, MAPPER.readTree(p));
                }
            }
            if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw new TokenizerFormatException(source + ": not valid JSON (unexpected content after the top-level object)");
            }
            return new Parsed(root, vocab, merges);
        }
    }

    private static Map<String, Integer> readVocab(JsonParser p, String source) throws IOException {
        Map<String, Integer> v = new HashMap<>(65536);
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String token = p.currentName();
            JsonToken t = p.nextToken();
            if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT
                    || p.getIntValue() < 0 || p.getIntValue() > MAX_ID) {
                String found = t != null && t.isScalarValue() ? p.getText() : String.valueOf(t);
                throw new TokenizerFormatException(source + ": model.vocab[\"" + token + "\"] must be an id in [0, "
                        + MAX_ID + "], found " + found);
            }
            v.put(token, p.getIntValue());
        }
        return v;
    }

    /** model.merges: "a b" strings (one space) or ["a", "b"] arrays, as HF accepts both. */
    private static List<String[]> readMerges(JsonParser p, String source) throws IOException {
        List<String[]> m = new ArrayList<>(65536);
        for (JsonToken t; (t = p.nextToken()) != JsonToken.END_ARRAY; ) {
            int i = m.size();
            if (t == JsonToken.VALUE_STRING) {
                String s = p.getText();
                int sp = s.indexOf(' ');
                if (sp < 0 || s.indexOf(' ', sp + 1) >= 0) {
                    throw new TokenizerFormatException(source + ": model.merges[" + i + "] = \"" + s
                            + "\" must be two tokens separated by one space (\"a b\")");
                }
                m.add(new String[] {s.substring(0, sp), s.substring(sp + 1)});
            } else if (t == JsonToken.START_ARRAY) {
                String a = p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                String b = a != null && p.nextToken() == JsonToken.VALUE_STRING ? p.getText() : null;
                if (b == null || p.nextToken() != JsonToken.END_ARRAY) {
                    throw new TokenizerFormatException(source + ": model.merges[" + i + "] must be a pair of two token strings [\"a\", \"b\"]");
                }
                m.add(new String[] {a, b});
            } else {
                throw new TokenizerFormatException(source + ": model.merges[" + i + "] must be \"a b\" or [\"a\", \"b\"], found "
                        + (t == null ? "the end of the input" : t.isScalarValue() ? p.getText() : t.toString()));
            }
        }
        return m;
    }

    // ------------------------------------------------------------------ field helpers

    TokenizerFormatException fail(String what) { return new TokenizerFormatException(source + ": " + what); }

    static boolean isNull(JsonNode n) { return n == null || n.isNull() || n.isMissingNode(); }

    String type(JsonNode n, String path) throws TokenizerFormatException {
        if (!n.isObject()) throw fail(path + " must be an object, found " + n);
        JsonNode t = n.get("type");
        if (isNull(t)) return null;
        if (!t.isTextual()) throw fail(path + ".type must be a string, found " + t);
        return t.asText();
    }

    boolean bool(JsonNode n, String field, boolean dflt, String path) throws TokenizerFormatException {
        JsonNode v = n.get(field);
        if (isNull(v)) return dflt;
        if (!v.isBoolean()) throw fail(path + "." + field + " must be true or false, found " + v);
        return v.booleanValue();
    }

    int integer(JsonNode n, String field, int dflt, String path) throws TokenizerFormatException {
        JsonNode v = n.get(field);
        if (isNull(v)) return dflt;
        if (!v.canConvertToInt() || !v.isIntegralNumber()) throw fail(path + "." + field + " must be an integer, found " + v);
        return v.intValue();
    }

    String text(JsonNode n, String field, String dflt, String path) throws TokenizerFormatException {
        JsonNode v = n.get(field);
        if (isNull(v)) return dflt;
        if (!v.isTextual()) throw fail(path + "." + field + " must be a string, found " + v);
        return v.asText();
    }

    /** The model's type: "type", or guessed as HF guesses it for old files without one. */
    String modelType(JsonNode root) throws TokenizerFormatException {
        JsonNode model = root.get("model");
        if (isNull(model) || !model.isObject()) {
            throw fail("no \"model\" object: not a Hugging Face tokenizer.json (expected keys model, normalizer, "
                    + "pre_tokenizer, post_processor, added_tokens)");
        }
        String t = type(model, "model");
        if (t != null) return t;
        if (model.has("merges")) return "BPE";
        if (model.has("vocab") && model.get("vocab").isArray()) return "Unigram";
        if (model.has("vocab")) return "WordPiece";
        throw fail("model has no \"type\" and no \"vocab\": cannot tell which tokenizer model it is");
    }

    // ------------------------------------------------------------------ added_tokens

    /** The added tokens with the ids HF gives them, and the largest id. */
    record Added(List<AddedTokens.Token> tokens, Map<String, Integer> ids, int maxId) {}

    /**
     * added_tokens. HF re-adds them one by one on load (AddedVocabulary::add_tokens): a token whose
     * content is already in the model's vocabulary (or added before) gets that id, a new one the
     * next id after the vocabulary's entry count (or after the largest added id), whatever id the
     * file says.
     */
    Added addedTokens(JsonNode root, Map<String, Integer> vocab) throws TokenizerFormatException {
        List<AddedTokens.Token> tokens = new ArrayList<>();
        Map<String, Integer> ids = new HashMap<>();
        int maxId = -1;
        JsonNode added = root.get("added_tokens");
        if (isNull(added)) return new Added(tokens, ids, maxId);
        if (!added.isArray()) throw fail("added_tokens must be an array, found " + added.getNodeType());
        int maxAdded = -1;
        for (int i = 0; i < added.size(); i++) {
            JsonNode t = added.get(i);
            String path = "added_tokens[" + i + "]";
            if (!t.isObject()) throw fail(path + " must be an object");
            int fileId = integer(t, "id", -1, path);
            if (fileId < 0 || fileId > MAX_ID) throw fail(path + ".id must be an id in [0, " + MAX_ID + "], found " + t.get("id"));
            String content = text(t, "content", null, path);
            if (content == null) throw fail(path + ".content must be a string");
            if (content.isEmpty()) continue; // HF ignores empty added tokens
            boolean special = bool(t, "special", false, path);
            Integer id = ids.get(content);
            if (id == null) id = vocab.get(content);
            if (id == null) id = maxAdded < 0 ? vocab.size() : (maxAdded >= vocab.size() ? maxAdded + 1 : vocab.size());
            ids.put(content, id);
            maxAdded = Math.max(maxAdded, id);
            tokens.removeIf(x -> x.content().equals(content));
            tokens.add(new AddedTokens.Token(id, content, bool(t, "single_word", false, path),
                    bool(t, "lstrip", false, path), bool(t, "rstrip", false, path),
                    bool(t, "normalized", !special, path), special));
            maxId = Math.max(maxId, id);
        }
        return new Added(tokens, ids, maxId);
    }

    // ------------------------------------------------------------------ post_processor

    /** HF TemplateProcessing's "single" or "pair" list; ids checked against {@code vocabSize}. */
    Assembly.Template template(JsonNode post, String path, String which, int vocabSize) throws TokenizerFormatException {
        String p0 = path + "." + which;
        JsonNode list = post.get(which);
        if (isNull(list) || !list.isArray()) throw fail(p0 + " must be an array of SpecialToken/Sequence pieces");
        JsonNode specials = post.get("special_tokens");
        List<Assembly.Template.Piece> pieces = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            JsonNode item = list.get(i);
            String ip = p0 + "[" + i + "]";
            if (item.has("SpecialToken")) {
                JsonNode st = item.get("SpecialToken");
                String id = text(st, "id", null, ip + ".SpecialToken");
                if (id == null) throw fail(ip + ".SpecialToken.id is missing");
                JsonNode def = isNull(specials) ? null : specials.get(id);
                if (isNull(def)) throw fail(ip + " uses special token \"" + id + "\" but " + path + ".special_tokens does not define it");
                JsonNode ids = def.get("ids");
                if (isNull(ids) || !ids.isArray() || ids.isEmpty()) throw fail(path + ".special_tokens[\"" + id + "\"].ids must be a non-empty array");
                int[] a = new int[ids.size()];
                for (int k = 0; k < a.length; k++) {
                    JsonNode x = ids.get(k);
                    if (!x.isIntegralNumber() || x.intValue() < 0 || x.intValue() >= vocabSize) {
                        throw fail(path + ".special_tokens[\"" + id + "\"].ids[" + k + "] = " + x + " is not an id of the vocabulary");
                    }
                    a[k] = x.intValue();
                }
                pieces.add(new Assembly.Template.Piece(true, a, -1, integer(st, "type_id", 0, ip + ".SpecialToken")));
            } else if (item.has("Sequence")) {
                JsonNode sq = item.get("Sequence");
                String id = text(sq, "id", "A", ip + ".Sequence");
                int seq = switch (id) {
                    case "A" -> 0;
                    case "B" -> 1;
                    default -> throw fail(ip + ".Sequence.id must be \"A\" or \"B\", found \"" + id + "\"");
                };
                pieces.add(new Assembly.Template.Piece(false, null, seq, integer(sq, "type_id", 0, ip + ".Sequence")));
            } else {
                throw fail(ip + " must be {\"SpecialToken\": ...} or {\"Sequence\": ...}, found " + item);
            }
        }
        return Assembly.Template.of(pieces);
    }

    /** A [token, id] pair of BertProcessing/RobertaProcessing ("cls", "sep"). */
    int pairId(JsonNode post, String path, String field, int vocabSize) throws TokenizerFormatException {
        JsonNode p = post.get(field);
        if (isNull(p) || !p.isArray() || p.size() != 2 || !p.get(1).isIntegralNumber()) {
            throw fail(path + "." + field + " must be [token, id], found " + p);
        }
        int id = p.get(1).intValue();
        if (id < 0 || id >= vocabSize) throw fail(path + "." + field + " id " + id + " is not an id of the vocabulary");
        return id;
    }

    // ------------------------------------------------------------------ padding, truncation

    Padding padding(JsonNode p, Padding defaults) throws TokenizerFormatException {
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
        int padId = integer(p, "pad_id", defaults.padId(), "padding");
        int padType = integer(p, "pad_type_id", 0, "padding");
        if (multiple < 0 || padId < 0 || padType < 0) throw fail("padding: pad_to_multiple_of, pad_id and pad_type_id must be >= 0");
        return new Padding(strategy, fixed, d, multiple, padId, padType, text(p, "pad_token", defaults.padToken(), "padding"));
    }

    Truncation truncation(JsonNode t) throws TokenizerFormatException {
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
