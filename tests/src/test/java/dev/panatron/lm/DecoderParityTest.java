package dev.panatron.lm;

import dev.panatron.Precision;

import dev.panatron.graph.TensorData;
import dev.panatron.io.Safetensors;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Parity with HF transformers on tiny random-weight models made by
 * tests/models/make_tiny_models.py: fp32 logits at every position within 1e-4, and the same
 * 32-token greedy continuation as HF generate.
 */
class DecoderParityTest {
    /** One thread: the tiny models are latency-bound and the test machine is shared. */
    static final dev.panatron.Context CTX = dev.panatron.Context.create(1);

    static Path model(String name) {
        try {
            return Path.of(DecoderParityTest.class.getResource("/tiny-models/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new AssertionError(e);
        }
    }

    /** input_ids, logits, prompt_ids, greedy_ids of a model's expected.safetensors. */
    record Expected(int[] ids, float[] logits, int[] prompt, int[] greedy) {
        static Expected read(Path dir) throws Exception {
            try (Safetensors st = Safetensors.open(dir.resolve("expected.safetensors"))) {
                return new Expected(longs(st.tensor("input_ids")), st.tensor("logits").asTensor().toFloatArray(),
                        longs(st.tensor("prompt_ids")), longs(st.tensor("greedy_ids")));
            }
        }

        static int[] longs(TensorData t) {
            long n = t.segment().byteSize() / 8;
            int[] r = new int[(int) n];
            for (int i = 0; i < n; i++) r[i] = Math.toIntExact(t.segment().getAtIndex(ValueLayout.JAVA_LONG, i));
            return r;
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama", "llama_linear_tied", "mistral", "qwen2"})
    void logitsMatchHfAtEveryPosition(String name) throws Exception {
        Path dir = model(name);
        Expected e = Expected.read(dir);
        // 16 rows per forward call: the 48-token input runs as three prefill chunks, so both
        // the flash-attention (first chunk) and the decode-attention (later chunks) paths count
        try (DecoderModel m = DecoderModel.load(dir, Precision.FP32, CTX, 16)) {
            int v = m.config().vocab();
            float[][] got = m.forwardAll(e.ids());
            assertEquals(e.ids().length, got.length);
            double worst = 0;
            for (int t = 0; t < got.length; t++) {
                for (int j = 0; j < v; j++) {
                    float want = e.logits()[t * v + j];
                    double d = Math.abs(got[t][j] - want);
                    assertTrue(d <= 1e-4, name + ": position " + t + " token " + j + ": got " + got[t][j] + ", HF " + want);
                    worst = Math.max(worst, d);
                }
            }
            System.out.printf("%s: max |logit diff| = %.3g over %d positions%n", name, worst, got.length);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2", "llama", "llama_linear_tied", "mistral", "qwen2"})
    void greedyContinuationMatchesHf(String name) throws Exception {
        Path dir = model(name);
        Expected e = Expected.read(dir);
        try (DecoderModel m = DecoderModel.load(dir, Precision.FP32, CTX, 8)) {
            Generator g = new Generator(m);
            int[][] out = g.generate(new int[][] {e.prompt()}, GenerationConfig.greedy(e.greedy().length), null);
            assertArrayEquals(e.greedy(), out[0], name + ": ours " + Arrays.toString(out[0]) + " vs HF " + Arrays.toString(e.greedy()));
        }
    }
}
