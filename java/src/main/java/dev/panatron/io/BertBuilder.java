package dev.panatron.io;

import dev.panatron.DType;
import dev.panatron.graph.Dim;
import dev.panatron.graph.Graph;
import dev.panatron.graph.GraphBuilder;
import dev.panatron.graph.Op;
import dev.panatron.graph.TensorData;
import dev.panatron.graph.Value;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Builds the graph of a BERT-family encoder (BERT, MiniLM, sentence-transformers models) from
 * Hugging Face weights: {@code model.safetensors} + {@code config.json}. The graph has the ONNX
 * export's interface — inputs {@code input_ids}, {@code attention_mask}, {@code token_type_ids}
 * (i64 [batch_size, sequence_length]), output {@code last_hidden_state} [batch_size,
 * sequence_length, hidden] — and is already at the fused level (LINEAR, LAYER_NORM, ATTENTION), so
 * a model runs the same from either format.
 *
 * <p>Weight names follow {@code transformers}' BertModel (an optional {@code bert.} prefix is
 * detected); Linear weights stay in PyTorch's [out, in] layout (transB) and are used in place.
 */
public final class BertBuilder {
    private final Safetensors st;
    private final HfConfig cfg;
    private final GraphBuilder b;
    private final String prefix;

    private BertBuilder(Safetensors st, HfConfig cfg) {
        this.st = st;
        this.cfg = cfg;
        this.b = GraphBuilder.create(cfg.modelType().isEmpty() ? "bert" : cfg.modelType());
        this.prefix = st.contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
    }

    /**
     * Loads {@code dir}/config.json and {@code dir}/model.safetensors.
     *
     * @throws IOException          when a file cannot be read
     * @throws ModelFormatException when a file is invalid, or a weight is missing or misshapen
     */
    public static Graph load(Path dir) throws IOException {
        Path cfgFile = dir.resolve("config.json"), weights = dir.resolve("model.safetensors");
        if (!Files.isRegularFile(cfgFile)) throw new ModelFormatException(dir, "no config.json in the model folder");
        if (!Files.isRegularFile(weights)) throw new ModelFormatException(dir, "no model.safetensors in the model folder");
        HfConfig cfg = HfConfig.read(cfgFile);
        Safetensors st = Safetensors.open(weights);
        try {
            return build(st, cfg);
        } catch (RuntimeException e) {
            st.close();
            throw e;
        }
    }

    /**
     * Builds the encoder graph. The graph takes ownership of {@code weights} (closing the graph
     * unmaps them).
     *
     * @throws ModelFormatException when the config lacks a field or a weight is missing or misshapen
     */
    public static Graph build(Safetensors weights, HfConfig config) {
        String type = config.modelType();
        if (!type.isEmpty() && !type.equals("bert")) {
            throw new ModelFormatException(config.file(), "model_type '" + type + "' is not a BERT-family encoder");
        }
        String pe = config.getString("position_embedding_type", "absolute");
        if (!pe.equals("absolute")) throw new ModelFormatException(config.file(), "position_embedding_type '" + pe + "' is not supported");
        BertBuilder bb = new BertBuilder(weights, config);
        bb.b.graph().own(weights);
        return bb.forward();
    }

    /** The encoder, top to bottom. */
    private Graph forward() {
        int hidden = cfg.hiddenSize(), heads = cfg.numAttentionHeads(), layers = cfg.numHiddenLayers();
        int ffn = cfg.intermediateSize(), maxPos = cfg.maxPositionEmbeddings();
        double eps = cfg.layerNormEps();
        if (hidden % heads != 0) throw new ModelFormatException(cfg.file(), "hidden_size " + hidden + " is not a multiple of num_attention_heads " + heads);
        String act = switch (cfg.hiddenAct()) {
            case "gelu" -> "gelu";
            case "gelu_new", "gelu_pytorch_tanh" -> "gelu_tanh";
            case "relu" -> "relu";
            default -> throw new ModelFormatException(cfg.file(), "hidden_act '" + cfg.hiddenAct() + "' is not supported");
        };
        Dim batch = Dim.sym("batch_size"), seq = Dim.sym("sequence_length");

        // inputs, i64 [batch, seq]
        Value ids = b.input("input_ids", DType.I64, batch, seq);
        Value mask = b.input("attention_mask", DType.I64, batch, seq);
        Value types = b.input("token_type_ids", DType.I64, batch, seq);

        // embeddings: word + token type + position, then LayerNorm
        Value wordEmb = weight("embeddings.word_embeddings.weight", cfg.vocabSize(), hidden);
        Value typeEmb = weight("embeddings.token_type_embeddings.weight", cfg.typeVocabSize(), hidden);
        Value posEmb = weight("embeddings.position_embeddings.weight", maxPos, hidden);
        long[] positions = new long[maxPos];
        for (int i = 0; i < maxPos; i++) positions[i] = i;
        Value allPos = b.constant("position_ids", TensorData.ofLongs(positions, maxPos).copy(b.graph().arena()));
        Value posIds = b.node(Op.SLICE, Map.of(), allPos, b.dims(Dim.of(0)), b.dims(seq));   // [seq], seq <= maxPos
        Value x = b.add(b.add(b.gather(wordEmb, ids), b.gather(typeEmb, types)), b.gather(posEmb, posIds));
        x = b.layerNorm(x, weight("embeddings.LayerNorm.weight", hidden), weight("embeddings.LayerNorm.bias", hidden), eps);

        // additive attention mask [batch, 1, 1, seq]: 0 where attended, float min where padded
        Value m = b.cast(b.unsqueeze(mask, 1, 2), DType.F32);
        Value maskBias = b.mul(b.sub(b.scalar(1f), m), b.scalar(-Float.MAX_VALUE));

        double scale = 1 / Math.sqrt((double) hidden / heads);
        for (int l = 0; l < layers; l++) {
            String p = "encoder.layer." + l + ".";
            Value q = dense(x, p + "attention.self.query", hidden, hidden, "none");
            Value k = dense(x, p + "attention.self.key", hidden, hidden, "none");
            Value v = dense(x, p + "attention.self.value", hidden, hidden, "none");
            Value a = b.attention(q, k, v, maskBias, heads, scale);
            a = dense(a, p + "attention.output.dense", hidden, hidden, "none");
            x = b.layerNorm(b.add(a, x), weight(p + "attention.output.LayerNorm.weight", hidden),
                    weight(p + "attention.output.LayerNorm.bias", hidden), eps);
            Value f = dense(x, p + "intermediate.dense", ffn, hidden, act);
            f = dense(f, p + "output.dense", hidden, ffn, "none");
            x = b.layerNorm(b.add(f, x), weight(p + "output.LayerNorm.weight", hidden), weight(p + "output.LayerNorm.bias", hidden), eps);
        }
        Value out = b.node(Op.IDENTITY, "last_hidden_state", Map.of(), java.util.List.of(x), java.util.List.of("last_hidden_state")).getFirst();
        b.output(out);
        return b.build();
    }

    /** A PyTorch Linear: weight [out, in], bias [out]. */
    private Value dense(Value x, String name, int out, int in, String act) {
        return b.linear(x, weight(name + ".weight", out, in), weight(name + ".bias", out), true, act);
    }

    /** A weight as an f32 constant of the expected shape (f16/bf16 widened; LayerNorm gamma/beta legacy names accepted). */
    private Value weight(String name, long... shape) {
        String full = prefix + name;
        if (!st.contains(full) && name.endsWith("LayerNorm.weight") && st.contains(full.replace(".weight", ".gamma"))) full = full.replace(".weight", ".gamma");
        if (!st.contains(full) && name.endsWith("LayerNorm.bias") && st.contains(full.replace(".bias", ".beta"))) full = full.replace(".bias", ".beta");
        if (!st.contains(full)) throw new ModelFormatException(st.path(), "missing weight '" + full + "' (config " + cfg.file() + ")");
        TensorData t = st.tensor(full);
        if (!java.util.Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(st.path(), "weight '" + full + "' is " + t + ", expected " + java.util.Arrays.toString(shape));
        }
        if (t.dtype() != DType.F32) {
            if (!t.dtype().isFloat()) throw new ModelFormatException(st.path(), "weight '" + full + "' has dtype " + t.dtype() + ", expected a float type");
            TensorData f = TensorData.allocate(b.graph().arena(), DType.F32, shape);
            for (long i = 0; i < t.numel(); i++) f.setFloat(i, (float) t.getDouble(i));
            t = f;
        }
        return b.constant(full, t);
    }
}
