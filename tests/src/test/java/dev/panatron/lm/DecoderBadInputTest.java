package dev.panatron.lm;

import dev.panatron.Precision;

import dev.panatron.io.ModelFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad models and bad prompts give clear errors. */
class DecoderBadInputTest {
    @TempDir
    Path tmp;

    /** A copy of a tiny model with one config.json substring replaced. */
    private Path variant(String name, String from, String to) throws IOException {
        Path src = DecoderParityTest.model(name), dst = tmp.resolve(name);
        Files.createDirectories(dst);
        try (var files = Files.list(src)) {
            for (Path f : files.toList()) Files.copy(f, dst.resolve(f.getFileName()));
        }
        Path cfg = dst.resolve("config.json");
        String s = Files.readString(cfg);
        assertTrue(s.contains(from), from);
        Files.writeString(cfg, s.replace(from, to));
        return dst;
    }

    private String loadError(Path dir) {
        return assertThrows(ModelFormatException.class, () -> DecoderModel.load(dir, Precision.FP32, DecoderParityTest.CTX, 8).close()).getMessage();
    }

    @Test
    void unknownArchitecture() throws IOException {
        String m = loadError(variant("qwen2", "\"model_type\": \"qwen2\"", "\"model_type\": \"falcon\""));
        assertTrue(m.contains("unknown decoder architecture") && m.contains("falcon"), m);
    }

    @Test
    void shapeContradictsConfig() throws IOException {
        String m = loadError(variant("llama", "\"intermediate_size\": 128", "\"intermediate_size\": 96"));
        assertTrue(m.contains("mlp.gate_proj.weight") && m.contains("[128, 64]") && m.contains("[96, 64]"), m);
    }

    @Test
    void missingTensor() throws IOException {
        String m = loadError(variant("gpt2", "\"n_layer\": 2", "\"n_layer\": 3"));
        assertTrue(m.contains("missing tensor 'transformer.h.2.ln_1.weight'"), m);
    }

    @Test
    void extraTensors() throws IOException {
        String m = loadError(variant("mistral", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1"));
        assertTrue(m.contains("unexpected tensor") && m.contains("model.layers.1."), m);
    }

    @Test
    void kvHeadsNotDividingHeads() throws IOException {
        String m = loadError(variant("llama", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"));
        assertTrue(m.contains("num_key_value_heads 3"), m);
    }

    @Test
    void noWeights() throws IOException {
        Path d = tmp.resolve("empty");
        Files.createDirectories(d);
        Files.copy(DecoderParityTest.model("gpt2").resolve("config.json"), d.resolve("config.json"));
        assertTrue(loadError(d).contains("no model.safetensors"));
    }

    @Test
    void badPrompts() throws IOException {
        try (DecoderModel m = DecoderModel.load(DecoderParityTest.model("gpt2"), Precision.FP32, DecoderParityTest.CTX, 8)) {
            Generator g = new Generator(m);
            String tooLong = assertThrows(IllegalArgumentException.class,
                    () -> g.generate(new int[][] {new int[129]}, GenerationConfig.greedy(1), null)).getMessage();
            assertTrue(tooLong.contains("longer than the context window of 128"), tooLong);
            String tooMany = assertThrows(IllegalArgumentException.class,
                    () -> g.generate(new int[][] {new int[100]}, GenerationConfig.greedy(40), null)).getMessage();
            assertTrue(tooMany.contains("exceeds the context window"), tooMany);
            String badId = assertThrows(IllegalArgumentException.class,
                    () -> g.generate(new int[][] {{1, 512}}, GenerationConfig.greedy(1), null)).getMessage();
            assertTrue(badId.contains("token id 512"), badId);
            assertThrows(IllegalArgumentException.class, () -> g.generate(new int[][] {{}}, GenerationConfig.greedy(1), null));
            assertThrows(IllegalArgumentException.class, () -> new GenerationConfig(1, -1f, 0, 1f, 1f, 0, null));
            assertThrows(IllegalArgumentException.class, () -> new GenerationConfig(1, 1f, 0, 0f, 1f, 0, null));
        }
    }
}
