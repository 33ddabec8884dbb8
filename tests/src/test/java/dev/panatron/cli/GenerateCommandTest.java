package dev.panatron.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.Context;
import dev.panatron.lm.DecoderModel;
import dev.panatron.lm.GenerationConfig;
import dev.panatron.lm.Generator;
import dev.panatron.Precision;
import dev.panatron.tokenize.BpeTokenizer;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code panatron generate --prompt TEXT} on the tiny models, streamed and as JSON. */
class GenerateCommandTest {
    static Path model(String name) {
        try {
            return Path.of(GenerateCommandTest.class.getResource("/tiny-models/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new AssertionError(e);
        }
    }

    /** Runs the command with System.out captured; returns {exit code, stdout}. */
    static Object[] run(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            int rc = new CommandLine(new GenerateCommand()).execute(args);
            return new Object[] {rc, buf.toString(StandardCharsets.UTF_8)};
        } finally {
            System.setOut(old);
        }
    }

    @Test
    void promptTextJsonMatchesTheLibrary() throws Exception {
        Path dir = model("qwen2");
        String prompt = "The quick brown fox";
        Object[] r = run("--model", dir.toString(), "--prompt", prompt, "--max-new-tokens", "10", "--json");
        assertEquals(0, r[0], (String) r[1]);
        JsonNode j = new ObjectMapper().readTree((String) r[1]);
        int[] ids = new int[j.get("ids").size()];
        for (int i = 0; i < ids.length; i++) ids[i] = j.get("ids").get(i).asInt();
        try (DecoderModel m = DecoderModel.load(dir, Precision.FP32, Context.shared(), 64)) {
            BpeTokenizer tok = m.tokenizer();
            int[] want = new Generator(m).generate(new int[][] {tok.encodeToIds(prompt, true)},
                    GenerationConfig.greedy(10).withStopTokens(m.stopTokens()), null)[0];
            assertArrayEquals(want, ids);
            assertEquals(tok.decode(want, true), j.get("text").asText());
        }
    }

    @Test
    void streamedTextEqualsJsonText() {
        Path dir = model("gpt2");
        for (String p : new String[] {"fp32", "int8", "fp4"}) {
            Object[] js = run("--model", dir.toString(), "--prompt", "Panatron runs", "--max-new-tokens", "12", "--temperature", "0.9", "--seed", "3",
                    "--precision", p, "--json");
            Object[] st = run("--model", dir.toString(), "--prompt", "Panatron runs", "--max-new-tokens", "12", "--temperature", "0.9", "--seed", "3",
                    "--precision", p);
            assertEquals(0, js[0], (String) js[1]);
            assertEquals(0, st[0], (String) st[1]);
            String text = ((String) js[1]).contains("\"text\"") ? jsonText((String) js[1]) : null;
            assertEquals(text + System.lineSeparator(), st[1], p);
        }
    }

    private static String jsonText(String s) {
        try {
            return new ObjectMapper().readTree(s).get("text").asText();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void badPrecisionAndTooLongPrompt() {
        Path dir = model("gpt2");
        Object[] r = run("--model", dir.toString(), "--prompt", "x", "--precision", "int4");
        assertNotEquals(0, r[0]);
        String longPrompt = "the fox ".repeat(200);
        Object[] r2 = run("--model", dir.toString(), "--prompt", longPrompt, "--max-new-tokens", "4");
        assertNotEquals(0, r2[0]);
        assertTrue(((String) r2[1]).isEmpty(), (String) r2[1]);
    }

    /** --device cuda without a GPU (as in CI) fails with a message, and an unknown device is an error. */
    @Test
    void deviceCudaWithoutAGpuFailsClearly() {
        Path dir = model("gpt2");
        Object[] bad = run("--model", dir.toString(), "--prompt-ids", "1,2", "--device", "tpu");
        assertNotEquals(0, bad[0]);
        org.junit.jupiter.api.Assumptions.assumeFalse(dev.panatron.cuda.Cuda.isAvailable(), "a GPU is present");
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            Object[] r = run("--model", dir.toString(), "--prompt-ids", "1,2", "--device", "cuda");
            assertNotEquals(0, r[0]);
        } finally {
            System.setErr(old);
        }
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("no usable CUDA GPU"), err.toString(StandardCharsets.UTF_8));
    }
}
