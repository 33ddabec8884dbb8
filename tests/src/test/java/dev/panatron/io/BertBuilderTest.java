package dev.panatron.io;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.graph.Graph;
import dev.panatron.graph.MiniLm;
import dev.panatron.graph.Node;
import dev.panatron.graph.Op;
import dev.panatron.graph.Passes;
import dev.panatron.graph.Session;
import dev.panatron.graph.TensorData;
import dev.panatron.graph.Value;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The BERT builder: MiniLM's ONNX initializers exported to a safetensors file under Hugging
 * Face names (MatMul weights found by their node names and transposed to PyTorch's [out, in])
 * plus a config.json; the graph built from them must give the ONNX graph's outputs.
 */
class BertBuilderTest {
    @TempDir
    static Path dir;

    static Graph onnx;
    static Context ctx;
    static Map<String, TensorData> hfWeights;
    static final Map<String, TensorData> INPUT = MiniLm.batch(0, 1, 3);
    static float[] want;

    static final String CONFIG = """
            {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
             "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
             "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522, "pad_token_id": 0}
            """;

    @BeforeAll
    static void export() throws IOException {
        onnx = OnnxImporter.load(MiniLm.onnx());
        ctx = Context.create(2);
        hfWeights = new LinkedHashMap<>();
        for (Value c : onnx.constants()) {
            if (c.name().startsWith("embeddings.") && !c.name().equals("embeddings.position_ids") || c.name().startsWith("encoder.")) {
                hfWeights.put(c.name(), c.constantData());
            }
        }
        for (Node n : onnx.nodes()) {          // "/encoder/layer.0/attention/self/query/MatMul" -> "encoder.layer.0.attention.self.query.weight"
            if (n.op() != Op.MATMUL || !n.input(1).isConstant()) continue;
            String hf = n.name().substring(1).replaceAll("/MatMul$", "").replace('/', '.') + ".weight";
            hfWeights.put(hf, transpose(n.input(1).constantData()));
        }
        Passes.optimize(onnx);
        want = run(onnx, INPUT);
    }

    @AfterAll
    static void close() {
        onnx.close();
        ctx.close();
    }

    static TensorData transpose(TensorData w) {
        long k = w.dim(0), n = w.dim(1);
        TensorData t = TensorData.allocate(Arena.ofAuto(), DType.F32, n, k);
        for (long i = 0; i < k; i++) for (long j = 0; j < n; j++) t.setFloat(j * k + i, w.getFloat(i * n + j));
        return t;
    }

    /** A model folder with the weights whose HF names pass {@code keep}, renamed. */
    static Path modelDir(String name, UnaryOperator<String> rename, java.util.function.Predicate<String> keep, String config) throws IOException {
        Path d = Files.createDirectories(dir.resolve(name));
        Map<String, TensorData> w = new LinkedHashMap<>();
        hfWeights.forEach((k, v) -> {
            if (keep.test(k)) w.put(rename.apply(k), v);
        });
        SafetensorsWriter.write(d.resolve("model.safetensors"), w, Map.of("format", "pt"));
        Files.writeString(d.resolve("config.json"), config);
        return d;
    }

    static float[] run(Graph g, Map<String, TensorData> in) {
        try (Session s = Session.create(g, ctx)) {
            return s.run(in).get("last_hidden_state").toFloatArray();
        }
    }

    static void sameOutputs(Graph built) {
        float[] got = run(built, INPUT);
        double max = 0;
        for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
        System.out.printf("BERT builder (safetensors) vs ONNX import: max abs diff %.3g%n", max);
        assertTrue(max <= 2e-5, "max abs diff " + max);
    }

    @Test
    void safetensorsAndConfigGiveTheOnnxOutputs() throws IOException {
        Path d = modelDir("minilm", k -> k, k -> true, CONFIG);
        try (Graph g = BertBuilder.load(d)) {
            assertEquals(36, g.opCounts().get(Op.LINEAR));
            assertEquals(6, g.opCounts().get(Op.ATTENTION));
            assertTrue(g.constants().stream().filter(c -> c.name().endsWith("query.weight")).allMatch(c -> c.constantData().segment().isReadOnly()),
                    "Linear weights are used in place from the mapping");
            sameOutputs(g);
            Passes.optimize(g);                 // the residual adds fuse into the GEMMs, as in the ONNX graph
            for (Op op : new Op[] {Op.LINEAR, Op.ATTENTION, Op.LAYER_NORM, Op.ADD, Op.GATHER}) {
                assertEquals(onnx.opCounts().get(op), g.opCounts().get(op), op + ": ONNX graph\n" + onnx.dump() + "\nbuilt graph\n" + g.dump());
            }
            sameOutputs(g);
        }
    }

    @Test
    void prefixedAndLegacyNamesLoadToo() throws IOException {
        Path d = modelDir("prefixed", k -> "bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"), k -> true, CONFIG);
        try (Graph g = BertBuilder.load(d)) {
            sameOutputs(g);
        }
    }

    @Test
    void missingOrMisshapenWeightsAreNamed() throws IOException {
        // small files: the embeddings and layer 0 only
        java.util.function.Predicate<String> small = k -> k.startsWith("embeddings.") || k.startsWith("encoder.layer.0.");
        Path d = modelDir("missing", k -> k, small.and(k -> !k.equals("encoder.layer.0.output.dense.bias")), CONFIG);
        var e = assertThrows(ModelFormatException.class, () -> BertBuilder.load(d).close());
        assertTrue(e.getMessage().contains("missing weight 'encoder.layer.0.output.dense.bias'"), e.getMessage());
        Path d2 = modelDir("wrongcfg", k -> k, small, CONFIG.replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024"));
        var e2 = assertThrows(ModelFormatException.class, () -> BertBuilder.load(d2).close());
        assertTrue(e2.getMessage().contains("expected [1024, 384]"), e2.getMessage());
        Path d3 = Files.createDirectories(dir.resolve("nocfg"));
        var e3 = assertThrows(ModelFormatException.class, () -> BertBuilder.load(d3).close());
        assertTrue(e3.getMessage().contains("config.json"), e3.getMessage());
    }
}
