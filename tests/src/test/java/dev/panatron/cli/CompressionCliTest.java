package dev.panatron.cli;

import dev.panatron.Precision;
import com.fasterxml.jackson.databind.JsonNode;
import dev.panatron.Embedder;
import dev.panatron.graph.Compression;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.panatron.cli.CliTest.JSON;
import static dev.panatron.cli.CliTest.fails;
import static dev.panatron.cli.CliTest.run;
import static dev.panatron.cli.CliTest.tiny;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The conversion flags of the model commands (issue 5) on the tiny BERT: {@code --precision
 * int8|fp4}, {@code --sparsity}, {@code --exclude}, {@code --save-converted} / {@code --converted},
 * against fp32 and the Java API, and their bad values.
 */
class CompressionCliTest {
    static float[][] embeddings(String... args) throws Exception {
        CliTest.Result r = run("", args);
        assertEquals(0, r.rc(), String.join(" ", args) + ": " + r.err());
        JsonNode e = JSON.readTree(r.out()).get("embeddings");
        float[][] v = new float[e.size()][];
        for (int i = 0; i < v.length; i++) {
            v[i] = new float[e.get(i).size()];
            for (int k = 0; k < v[i].length; k++) v[i][k] = (float) e.get(i).get(k).asDouble();
        }
        return v;
    }

    static double cos(float[] a, float[] b) {
        double d = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            d += a[i] * b[i];
            na += a[i] * a[i];
            nb += b[i] * b[i];
        }
        return d / Math.sqrt(na * nb);
    }

    @Test
    void precisionsSparsityAndSavedLayers(@TempDir Path dir) throws Exception {
        String[] texts = {"first text", "a second, longer text about something else"};
        float[][] fp32 = embeddings(cat(new String[] {"embed", "--model", tiny(), "--threads", "1", "--json"}, texts));
        float[][] int8 = embeddings(cat(new String[] {"embed", "--model", tiny(), "--threads", "1", "--json", "--precision", "int8"}, texts));
        float[][] fp4 = embeddings(cat(new String[] {"embed", "--model", tiny(), "--threads", "1", "--json", "--precision", "fp4", "--fp4-group", "32"}, texts));
        Path saved = dir.resolve("tiny-int8-s50.safetensors");
        CliTest.Result sv = run("", cat(new String[] {"embed", "--model", tiny(), "--threads", "1", "--json", "--precision", "int8", "--int8", "w8a8",
                "--sparsity", "0.5", "--exclude", "re:layer\\.1", "--save-converted", saved.toString()}, texts));
        assertEquals(0, sv.rc(), sv.err());
        assertTrue(sv.err().contains("converted") && Files.size(saved) > 0, sv.err());
        float[][] loaded = embeddings(cat(new String[] {"embed", "--model", tiny(), "--threads", "1", "--json", "--converted", saved.toString()}, texts));
        float[][] sparse = embeddings(cat(new String[] {"embed", "--model", tiny(), "--threads", "1", "--json", "--precision", "int8", "--int8", "w8a8",
                "--sparsity", "0.5", "--exclude", "re:layer\\.1"}, texts));
        for (int i = 0; i < texts.length; i++) {
            assertTrue(cos(int8[i], fp32[i]) > 0.99, "int8 vs fp32: " + cos(int8[i], fp32[i]));
            assertTrue(cos(fp4[i], fp32[i]) > 0.8, "fp4 vs fp32: " + cos(fp4[i], fp32[i]));
            for (int k = 0; k < sparse[i].length; k++) assertEquals(sparse[i][k], loaded[i][k], 0f, "saved layers load back bit-exact");
        }
        // the Java API gives the CLI's vectors
        try (Embedder e = Embedder.builder(tiny()).threads(1).precision(Precision.INT8).build()) {
            List<float[]> v = e.embed(List.of(texts));
            for (int i = 0; i < texts.length; i++) for (int k = 0; k < v.get(i).length; k++) assertEquals(v.get(i)[k], int8[i][k], 1e-6);
            Compression.Report rep = e.conversionReport();
            assertTrue(rep.bytesAfter() * 3 < rep.bytesBefore(), rep.table());
        }
        CliTest.Result b = run("", "bench", "embed", "--model", tiny(), "--batch", "2", "--seq", "16", "--threads", "1", "--seconds", "0.2", "--json",
                "--precision", "fp4", "--sparsity", "0.3");
        assertEquals(0, b.rc(), b.err());
    }

    @Test
    void badConversionFlags() {
        fails(1, "--sparsity", "", "embed", "--model", tiny(), "--sparsity", "1.5", "text");
        fails(1, "--int8", "", "embed", "--model", tiny(), "--precision", "int8", "--int8", "w4a4", "text");
        fails(1, "--fp4", "", "embed", "--model", tiny(), "--precision", "fp4", "--fp4", "e5m2", "text");
        fails(1, "--fp4-group", "", "embed", "--model", tiny(), "--precision", "fp4", "--fp4-group", "48", "text");
        fails(1, "--fp4-method", "", "embed", "--model", tiny(), "--precision", "fp4", "--fp4-method", "awq", "text");
        fails(1, "--fp4-method gptq does not combine with --sparsity", "", "embed", "--model", tiny(), "--precision", "fp4", "--fp4-method", "gptq",
                "--sparsity", "0.3", "text");
        fails(1, "no/such.safetensors", "", "embed", "--model", tiny(), "--converted", "/no/such.safetensors", "text");
    }

    static String[] cat(String[] a, String[] b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
