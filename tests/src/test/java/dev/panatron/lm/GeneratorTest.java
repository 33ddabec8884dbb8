package dev.panatron.lm;

import dev.panatron.Precision;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Batching, sampling, stop tokens, streaming and bf16 on the tiny Llama. */
class GeneratorTest {
    @Test
    void batchSamplingStopsStreamingAndBf16() throws Exception {
        var dir = DecoderParityTest.model("llama");
        var e = DecoderParityTest.Expected.read(dir);
        try (DecoderModel m = DecoderModel.load(dir, Precision.FP32, DecoderParityTest.CTX, 8)) {
            Generator g = new Generator(m);
            // several prompts of different lengths at once = each alone; the HF prompt still gives HF's tokens
            int[][] prompts = {{7, 8, 9}, e.prompt(), {300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311}};
            GenerationConfig greedy = GenerationConfig.greedy(12);
            int[][] together = g.generate(prompts, greedy, null);
            for (int b = 0; b < prompts.length; b++) {
                assertArrayEquals(g.generate(new int[][] {prompts[b]}, greedy, null)[0], together[b], "prompt " + b);
            }
            assertArrayEquals(java.util.Arrays.copyOf(e.greedy(), 12), together[1]);

            // streaming sees every token in order and flags the last
            List<Integer> seen = new ArrayList<>();
            boolean[] lastSeen = new boolean[1];
            int[] out = g.generate(new int[][] {e.prompt()}, greedy, (b, t, last) -> {
                seen.add(t);
                if (last) lastSeen[0] = true;
            })[0];
            assertEquals(out.length, seen.size());
            assertTrue(lastSeen[0]);

            // a stop token ends the sequence (kept in the output)
            int stop = e.greedy()[3];
            int[] stopped = g.generate(new int[][] {e.prompt()}, greedy.withStopTokens(stop), null)[0];
            assertEquals(stop, stopped[stopped.length - 1]);
            assertTrue(stopped.length <= 4);

            // sampling: same seed, same tokens; top-k 1 is greedy; a high temperature varies with the seed
            GenerationConfig s1 = GenerationConfig.sample(16, 1.5f, 0, 0.95f, 11);
            assertArrayEquals(g.generate(new int[][] {e.prompt()}, s1, null)[0], g.generate(new int[][] {e.prompt()}, s1, null)[0]);
            int[] s2 = g.generate(new int[][] {e.prompt()}, GenerationConfig.sample(16, 1.5f, 0, 0.95f, 12), null)[0];
            assertFalse(java.util.Arrays.equals(g.generate(new int[][] {e.prompt()}, s1, null)[0], s2));
            assertArrayEquals(java.util.Arrays.copyOf(e.greedy(), 12),
                    g.generate(new int[][] {e.prompt()}, GenerationConfig.sample(12, 0.7f, 1, 1f, 5), null)[0]);
            // a strong repetition penalty changes the repetitive greedy output
            int[] pen = g.generate(new int[][] {e.prompt()}, GenerationConfig.greedy(32).withRepetitionPenalty(5f), null)[0];
            assertFalse(java.util.Arrays.equals(e.greedy(), pen));
        }
        // bf16 weights: logits close to fp32 HF (bf16 rounding of weights and linear inputs)
        try (DecoderModel m = DecoderModel.load(dir, Precision.BF16, DecoderParityTest.CTX, 16)) {
            float[][] got = m.forwardAll(e.ids());
            int v = m.config().vocab();
            double worst = 0;
            for (int t = 0; t < got.length; t++) for (int j = 0; j < v; j++) worst = Math.max(worst, Math.abs(got[t][j] - e.logits()[t * v + j]));
            System.out.printf("llama bf16: max |logit diff| vs HF fp32 = %.3g%n", worst);
            assertTrue(worst < 0.1, "bf16 max diff " + worst);
        }
    }
}
