package dev.panatron;

import dev.panatron.graph.MiniLm;
import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * Model folders for the Embedder and CLI tests, made once per JVM in a temporary folder:
 * all-MiniLM-L6-v2 ({@code model.onnx} + {@code tokenizer.json} from the langchain4j artifact
 * on the test class path) and a tiny random BERT ({@code model.safetensors} + {@code config.json}
 * + MiniLM's {@code tokenizer.json}: hidden 32, 2 layers, 4 heads of 8, 64 positions) that
 * loads in a blink, for tests that need a model but not its quality.
 */
public final class TestModels {
    private TestModels() {}

    private static Path root, minilm, tiny;

    private static synchronized Path root() throws IOException {
        if (root == null) {
            root = Files.createTempDirectory("pt-models-");
            root.toFile().deleteOnExit();
        }
        return root;
    }

    /** The tokenizer JSON of all-MiniLM-L6-v2 (skips the test when the artifact is absent). */
    public static Path tokenizerJson(Path dir) throws IOException {
        try (InputStream in = TestModels.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            Assumptions.assumeTrue(in != null, "all-minilm-l6-v2-tokenizer.json is not on the classpath");
            Path t = dir.resolve("tokenizer.json");
            Files.copy(in, t);
            return t;
        }
    }

    /** A folder with all-MiniLM-L6-v2's model.onnx and tokenizer.json. */
    public static synchronized Path minilm() {
        try {
            if (minilm == null) {
                Path d = Files.createDirectories(root().resolve("minilm"));
                Path onnx = MiniLm.onnx();
                try {
                    Files.createSymbolicLink(d.resolve("model.onnx"), onnx);
                } catch (IOException | UnsupportedOperationException e) {
                    Files.copy(onnx, d.resolve("model.onnx"));
                }
                tokenizerJson(d);
                minilm = d;
            }
            return minilm;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static final String TINY_CONFIG = """
            {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
             "max_position_embeddings": 64, "type_vocab_size": 2, "vocab_size": 30522, "pad_token_id": 0}
            """;

    /** A folder with a tiny random BERT (seeded: the same weights every run). */
    public static synchronized Path tinyBert() {
        try {
            if (tiny == null) {
                Path d = Files.createDirectories(root().resolve("tiny-bert"));
                Random rnd = new Random(4242);
                Map<String, dev.panatron.graph.TensorData> w = new LinkedHashMap<>();
                int h = 32, f = 64;
                w.put("embeddings.word_embeddings.weight", rand(rnd, 0.5, 30522, h));
                w.put("embeddings.position_embeddings.weight", rand(rnd, 0.5, 64, h));
                w.put("embeddings.token_type_embeddings.weight", rand(rnd, 0.5, 2, h));
                w.put("embeddings.LayerNorm.weight", around(rnd, 1, h));
                w.put("embeddings.LayerNorm.bias", rand(rnd, 0.1, h));
                for (int l = 0; l < 2; l++) {
                    String p = "encoder.layer." + l + ".";
                    for (String m : new String[] {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
                        w.put(p + m + ".weight", rand(rnd, 0.3, h, h));
                        w.put(p + m + ".bias", rand(rnd, 0.1, h));
                    }
                    w.put(p + "attention.output.LayerNorm.weight", around(rnd, 1, h));
                    w.put(p + "attention.output.LayerNorm.bias", rand(rnd, 0.1, h));
                    w.put(p + "intermediate.dense.weight", rand(rnd, 0.3, f, h));
                    w.put(p + "intermediate.dense.bias", rand(rnd, 0.1, f));
                    w.put(p + "output.dense.weight", rand(rnd, 0.3, h, f));
                    w.put(p + "output.dense.bias", rand(rnd, 0.1, h));
                    w.put(p + "output.LayerNorm.weight", around(rnd, 1, h));
                    w.put(p + "output.LayerNorm.bias", rand(rnd, 0.1, h));
                }
                dev.panatron.io.SafetensorsWriter.write(d.resolve("model.safetensors"), w, Map.of("format", "pt"));
                Files.writeString(d.resolve("config.json"), TINY_CONFIG);
                tokenizerJson(d);
                tiny = d;
            }
            return tiny;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static dev.panatron.graph.TensorData rand(Random r, double scale, long... shape) {
        var t = dev.panatron.graph.TensorData.allocate(Arena.ofAuto(), DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) t.setFloat(i, (float) ((r.nextDouble() * 2 - 1) * scale));
        return t;
    }

    private static dev.panatron.graph.TensorData around(Random r, double center, long n) {
        var t = dev.panatron.graph.TensorData.allocate(Arena.ofAuto(), DType.F32, n);
        for (long i = 0; i < n; i++) t.setFloat(i, (float) (center + (r.nextDouble() - 0.5) * 0.2));
        return t;
    }
}
