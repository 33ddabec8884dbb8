package dev.panatron;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.panatron.graph.MiniLm;
import dev.panatron.tokenize.Batch;
import dev.panatron.tokenize.WordPieceTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Embedder (our tokenizer, fused graph, kernels, pooling) against ONNX Runtime on the same
 * ONNX file with the same token ids, pooled plainly here in double precision: every fp32
 * embedding has cosine >= 0.99999 and max abs difference <= 1e-4; bf16 cosine >= 0.999.
 */
class EmbedderParityTest {
    static final List<String> TEXTS = List.of(
            "Hello world", "The quick brown fox jumps over the lazy dog.", "", "a",
            "Quarterly revenue grew 4% year over year, beating estimates.",
            "Crème brûlée, naïve café, Zürich — accents everywhere!",
            "東京は日本の首都です。", "Ceci n'est pas une pipe.", "¿Dónde está la biblioteca?",
            "emoji 🤖🚀 and symbols @#$%^&*()", "   leading and trailing spaces   ",
            "UPPER CASE and lower case and MiXeD", "numbers 3.14159 2,718 1e-9 0x1F",
            "A very long text. ".repeat(120), "tabs\tand\nnewlines\r\nmixed",
            "Don't stop believin'", "Привет, как дела?", "مرحبا بالعالم", "unbelievable unaffordable antidisestablishmentarianism",
            "[CLS] inside text [SEP] and [MASK]", "https://example.com/path?query=1&x=y", "pneumonoultramicroscopicsilicovolcanoconiosis");

    static Path dir;
    static Embedder fp32, bf16;
    static OrtEnvironment env;
    static OrtSession ort;
    static WordPieceTokenizer tok;

    @BeforeAll
    static void setUp() throws Exception {
        Path onnx = MiniLm.onnx();
        dir = Files.createTempDirectory("embedder-test");
        Files.createSymbolicLink(dir.resolve("model.onnx"), onnx.toAbsolutePath());
        try (InputStream in = EmbedderParityTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve("tokenizer.json"), StandardCopyOption.REPLACE_EXISTING);
        }
        fp32 = Embedder.load(dir.toString(), Embedder.Options.DEFAULT.withThreads(2));
        bf16 = Embedder.load(dir.toString(), Embedder.Options.DEFAULT.withThreads(2).withPrecision(DType.BF16));
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(2);
        ort = env.createSession(onnx.toString(), o);
        tok = WordPieceTokenizer.fromFile(dir.resolve("tokenizer.json")).withMaxLength(256).withPaddingToLongest();
    }

    @AfterAll
    static void tearDown() throws Exception {
        if (fp32 != null) fp32.close();
        if (bf16 != null) bf16.close();
        if (ort != null) ort.close();
    }

    /** ORT's last hidden state for one text, mean-pooled over the mask and L2-normalized in double. */
    static double[] reference(String text) throws Exception {
        Batch b = tok.encodeBatch(List.of(text));
        long[] shape = {1, b.length()};
        try (OnnxTensor ids = OnnxTensor.createTensor(env, LongBuffer.wrap(b.idsAsLong()), shape);
             OnnxTensor mask = OnnxTensor.createTensor(env, LongBuffer.wrap(b.attentionMaskAsLong()), shape);
             OnnxTensor types = OnnxTensor.createTensor(env, LongBuffer.wrap(b.typeIdsAsLong()), shape);
             OrtSession.Result r = ort.run(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types))) {
            float[][][] h = (float[][][]) r.get("last_hidden_state").orElseThrow().getValue();
            int dim = h[0][0].length;
            double[] acc = new double[dim];
            int[] m = b.attentionMask();
            int n = 0;
            for (int t = 0; t < b.length(); t++) {
                if (m[t] == 0) continue;
                n++;
                for (int d = 0; d < dim; d++) acc[d] += h[0][t][d];
            }
            double norm = 0;
            for (int d = 0; d < dim; d++) norm += (acc[d] / n) * (acc[d] / n);
            for (int d = 0; d < dim; d++) acc[d] = acc[d] / n / Math.sqrt(norm);
            return acc;
        }
    }

    static double cos(float[] a, double[] b) {
        double d = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) { d += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
        return d / Math.sqrt(na * nb);
    }

    @Test
    void fp32AndBf16MatchOnnxRuntime() throws Exception {
        float[][] batched = fp32.embed(TEXTS);          // one padded batch
        float[][] lowp = bf16.embed(TEXTS);
        assertEquals(384, fp32.dimension());
        double worstCos = 1, worstAbs = 0, worstBf16 = 1;
        for (int i = 0; i < TEXTS.size(); i++) {
            double[] want = reference(TEXTS.get(i));
            float[] single = fp32.embed(TEXTS.get(i));  // alone, no padding
            for (float[] got : new float[][] {batched[i], single}) {
                assertEquals(want.length, got.length);
                double c = cos(got, want), m = 0;
                for (int d = 0; d < want.length; d++) m = Math.max(m, Math.abs(got[d] - want[d]));
                worstCos = Math.min(worstCos, c);
                worstAbs = Math.max(worstAbs, m);
                assertTrue(c >= 0.99999, "text " + i + ": cosine " + c);
                assertTrue(m <= 1e-4, "text " + i + ": max abs diff " + m);
            }
            double cb = cos(lowp[i], want);
            worstBf16 = Math.min(worstBf16, cb);
            assertTrue(cb >= 0.999, "text " + i + " bf16: cosine " + cb);
        }
        System.out.printf("Embedder vs ORT over %d texts: fp32 min cosine %.7f, max abs %.2e; bf16 min cosine %.5f%n",
                TEXTS.size(), worstCos, worstAbs, worstBf16);
    }

    @Test
    void badInputIsAClearError() {
        assertThrows(NullPointerException.class, () -> fp32.embed((String) null));
        List<String> withNull = new ArrayList<>(List.of("a"));
        withNull.add(null);
        assertThrows(NullPointerException.class, () -> fp32.embed(withNull));
        var e = assertThrows(java.io.IOException.class, () -> Embedder.load(dir.resolve("no-such-model").toString()));
        assertTrue(e.getMessage().contains("no-such-model"), e.getMessage());
        assertEquals(0, fp32.embed(List.of()).length);
    }
}
