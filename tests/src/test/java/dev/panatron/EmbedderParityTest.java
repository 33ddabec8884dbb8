package dev.panatron;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.panatron.models.ModelNotFoundException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Embedder on all-MiniLM-L6-v2 against an independent pipeline: HF tokenizers (Rust,
 * through DJL; truncation at 256 tokens as sentence-transformers configures this model), ONNX
 * Runtime Java on the same ONNX file, and mean pooling + L2 normalization written plainly here
 * in double precision. Over varied texts (short, past the 256-token limit, unicode, punctuation,
 * empty, a padded batch): token ids equal; every fp32 embedding within cosine >= 0.99999 and
 * max abs difference <= 1e-4; bf16 within cosine >= 0.999. Plus the API's edge cases.
 */
class EmbedderParityTest {
    static final int MAX_LEN = 256;

    static final List<String> TEXTS = List.of(
            "Hello world",
            "The quick brown fox jumps over the lazy dog.",
            "",
            "   ",
            "a",
            "What is the capital of France? Paris!!!",
            "Ünïcödé àccents, naïve café — résumé.",
            "東京は日本の首都です。北京是中国的首都。",
            "Emoji test 🚀🔥 with symbols ©®™ and math ∑∫√",
            "C++ code: for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
            "https://example.com/path?query=1&other=two#fragment",
            "Numbers 3.14159, 2,718 and 1e-9; dates 2024-09-17.",
            "MiXeD CaSe WoRdS and ALLCAPS SHOUTING",
            "\t tabs\tand\nnewlines\r\nmixed  in ",
            "Привет, как дела? Ελληνικά κείμενα. עברית. العربية.",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
            "repeat ".repeat(40).strip(),
            "The model truncates long inputs. ".repeat(60).strip(),             // ~420 tokens: truncated at 256
            "Sentence embeddings map text to vectors; similar meaning, nearby vectors.",
            "Ceci n'est pas une pipe. Das ist ein Test. Esto es una prueba.",
            "!!!???...,,,;;;:::---___+++===",
            "x".repeat(10_000),                                                   // one 10,000-character word: [UNK]
            "lorem ipsum dolor sit amet, ".repeat(358).substring(0, 10_000));     // 10,000 characters: truncated at 256

    static OrtEnvironment env;
    static OrtSession ort;
    static HuggingFaceTokenizer hf;
    static Embedder fp32, bf16;
    static List<float[]> want;          // reference embeddings (ORT + plain pooling)
    static List<float[]> wantCls;       // reference CLS vectors, normalized
    static List<long[]> hfIds;

    @BeforeAll
    static void load() throws Exception {
        Path dir = TestModels.minilm();
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(2);
        ort = env.createSession(dir.resolve("model.onnx").toString(), o);
        hf = HuggingFaceTokenizer.newInstance(dir.resolve("tokenizer.json"), Map.of("truncation", "true", "maxLength", "" + MAX_LEN, "padding", "false"));
        fp32 = Embedder.builder(dir.toString()).maxLength(MAX_LEN).threads(2).batchSize(8).build();
        bf16 = Embedder.builder(dir.toString()).maxLength(MAX_LEN).threads(2).precision(Precision.BF16).build();
        want = new ArrayList<>();
        wantCls = new ArrayList<>();
        hfIds = new ArrayList<>();
        for (String t : TEXTS) reference(t);
    }

    @AfterAll
    static void close() throws Exception {
        if (fp32 != null) fp32.close();
        if (bf16 != null) bf16.close();
        if (hf != null) hf.close();
        if (ort != null) ort.close();
    }

    /** ORT on HF's ids, one text at a time (no padding), pooled here in double precision. */
    static void reference(String text) throws Exception {
        var enc = hf.encode(text);
        long[] ids = enc.getIds(), mask = enc.getAttentionMask(), types = enc.getTypeIds();
        hfIds.add(ids);
        int n = ids.length;
        Map<String, OnnxTensor> in = new HashMap<>();
        try {
            in.put("input_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {1, n}));
            in.put("attention_mask", OnnxTensor.createTensor(env, LongBuffer.wrap(mask), new long[] {1, n}));
            in.put("token_type_ids", OnnxTensor.createTensor(env, LongBuffer.wrap(types), new long[] {1, n}));
            try (OrtSession.Result r = ort.run(in)) {
                var fb = ((OnnxTensor) r.get("last_hidden_state").orElseThrow()).getFloatBuffer();
                float[] h = new float[fb.remaining()];
                fb.get(h);
                int d = h.length / n;
                double[] sum = new double[d];
                double cnt = 0;
                for (int t = 0; t < n; t++) {
                    if (mask[t] == 0) continue;
                    cnt++;
                    for (int j = 0; j < d; j++) sum[j] += h[t * d + j];
                }
                float[] mean = new float[d], cls = new float[d];
                for (int j = 0; j < d; j++) {
                    mean[j] = (float) (sum[j] / cnt);
                    cls[j] = h[j];
                }
                want.add(unit(mean));
                wantCls.add(unit(cls));
            }
        } finally {
            for (OnnxTensor x : in.values()) x.close();
        }
    }

    static float[] unit(float[] v) {
        double s = 0;
        for (float x : v) s += (double) x * x;
        double inv = 1 / Math.max(Math.sqrt(s), 1e-12);
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) r[i] = (float) (v[i] * inv);
        return r;
    }

    static double cosine(float[] a, float[] b) {
        double d = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            d += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return d / Math.sqrt(na * nb);
    }

    static double maxAbs(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            assertTrue(Float.isFinite(a[i]), "non-finite value at " + i);
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    static String show(String t) { return t.length() > 40 ? t.substring(0, 37) + "... (" + t.length() + " chars)" : t; }

    @Test
    void tokenIdsEqualHfTokenizers() {
        assertTrue(TEXTS.size() >= 20);
        for (int i = 0; i < TEXTS.size(); i++) {
            var e = fp32.tokenizer().withoutPadding().encode(TEXTS.get(i));
            long[] mine = Arrays.stream(e.ids()).asLongStream().toArray();
            assertArrayEquals(hfIds.get(i), mine, "token ids of " + show(TEXTS.get(i)));
        }
        assertEquals(MAX_LEN, hfIds.get(TEXTS.size() - 1).length, "the 10,000-character text is truncated to 256 tokens");
        assertEquals(3, hfIds.get(TEXTS.size() - 2).length, "a 10,000-character word is [CLS] [UNK] [SEP]");
        assertEquals(MAX_LEN, hfIds.get(17).length, "the ~420-token text is truncated to 256 tokens");
    }

    @Test
    void fp32BatchMatchesOrt() {
        List<float[]> got = fp32.embed(TEXTS);      // packed batches of 8, sorted by length
        double worstCos = 1, worstAbs = 0;
        for (int i = 0; i < TEXTS.size(); i++) {
            float[] g = got.get(i);
            assertEquals(384, g.length);
            double c = cosine(g, want.get(i)), d = maxAbs(g, want.get(i));
            worstCos = Math.min(worstCos, c);
            worstAbs = Math.max(worstAbs, d);
            assertTrue(c >= 0.99999, "cosine " + c + " for " + show(TEXTS.get(i)));
            assertTrue(d <= 1e-4, "max abs diff " + d + " for " + show(TEXTS.get(i)));
            double norm = Math.sqrt(cosineNorm(g));
            assertEquals(1.0, norm, 1e-5, "L2-normalized");
        }
        System.out.printf("Embedder fp32 vs ORT (%d texts, batched): worst cosine %.8f, worst max abs diff %.3g%n", TEXTS.size(), worstCos, worstAbs);
    }

    static double cosineNorm(float[] v) {
        double s = 0;
        for (float x : v) s += (double) x * x;
        return s;
    }

    /** Packed batches (no padding computed; the default) and padded ones give the same embeddings, and both match ORT. */
    @Test
    void packedAndPaddedBatchesAgree() throws Exception {
        assertTrue(fp32.packed(), "all-MiniLM-L6-v2 runs packed by default: " + fp32);
        try (Embedder padded = Embedder.builder(TestModels.minilm().toString()).maxLength(MAX_LEN).threads(2).batchSize(5).packed(false).build()) {
            assertTrue(!padded.packed());
            List<float[]> a = fp32.embed(TEXTS), b = padded.embed(TEXTS);
            double worst = 0;
            for (int i = 0; i < TEXTS.size(); i++) {
                double d = maxAbs(a.get(i), b.get(i));
                worst = Math.max(worst, d);
                assertTrue(d <= 2e-6, "packed vs padded: max abs diff " + d + " for " + show(TEXTS.get(i)));
                assertTrue(cosine(b.get(i), want.get(i)) >= 0.99999, "padded vs ORT for " + show(TEXTS.get(i)));
            }
            System.out.printf("Embedder packed vs padded (%d texts): worst max abs diff %.3g%n", TEXTS.size(), worst);
        }
    }

    @Test
    void singleTextsMatchTheBatch() {
        List<float[]> batch = fp32.embed(TEXTS);
        for (int i : new int[] {0, 2, 7, 17}) {
            float[] one = fp32.embed(TEXTS.get(i));
            double d = maxAbs(one, batch.get(i));
            assertTrue(d <= 2e-6, "single vs batched: max abs diff " + d + " for " + show(TEXTS.get(i)));
        }
    }

    @Test
    void bf16StaysClose() {
        List<float[]> got = bf16.embed(TEXTS);
        double worst = 1;
        for (int i = 0; i < TEXTS.size(); i++) {
            double c = cosine(got.get(i), want.get(i));
            worst = Math.min(worst, c);
            assertTrue(c >= 0.999, "bf16 cosine " + c + " for " + show(TEXTS.get(i)));
        }
        System.out.printf("Embedder bf16 vs ORT fp32 (%d texts): worst cosine %.6f%n", TEXTS.size(), worst);
    }

    @Test
    void clsPoolingMatchesOrt() throws Exception {
        Path dir = TestModels.minilm();
        try (Embedder cls = Embedder.builder(dir.toString()).maxLength(MAX_LEN).threads(1).pooling(Embedder.Pooling.CLS).build()) {
            List<String> some = TEXTS.subList(0, 8);
            List<float[]> got = cls.embed(some);
            for (int i = 0; i < some.size(); i++) {
                double d = maxAbs(got.get(i), wantCls.get(i));
                assertTrue(d <= 1e-4, "CLS pooling: max abs diff " + d + " for " + show(some.get(i)));
            }
        }
    }

    @Test
    void edgeCases() {
        assertEquals(List.of(), fp32.embed(List.of()));
        assertThrows(NullPointerException.class, () -> fp32.embed((String) null));
        var npe = assertThrows(NullPointerException.class, () -> fp32.embed(Arrays.asList("a", null)));
        assertTrue(npe.getMessage().contains("texts[1]"), npe.getMessage());
        // the empty text is [CLS] [SEP]
        float[] empty = fp32.embed("");
        float[] ids = fp32.embedIds(new int[][] {{101, 102}}).getFirst();
        assertTrue(maxAbs(empty, ids) <= 1e-6);
        // a 10,000-character text is cut at 256 tokens: the same as its first 256 token ids
        String longText = "word ".repeat(2000);
        var enc = fp32.tokenizer().withoutPadding().encode(longText);
        assertEquals(MAX_LEN, enc.length());
        assertTrue(maxAbs(fp32.embed(longText), fp32.embedIds(new int[][] {enc.ids()}).getFirst()) <= 1e-6);
        var bad = assertThrows(IllegalArgumentException.class, () -> fp32.embedIds(new int[][] {{101, 40000, 102}}));
        assertTrue(bad.getMessage().contains("vocabulary"), bad.getMessage());
        assertThrows(IllegalArgumentException.class, () -> fp32.embedIds(new int[][] {new int[MAX_LEN + 1]}));
        assertEquals(384, fp32.dimension());
        assertEquals(MAX_LEN, fp32.maxLength());
    }

    @Test
    void badModelPathsAreClearErrors() throws Exception {
        var e = assertThrows(ModelNotFoundException.class, () -> Embedder.load("/no/such/model.onnx"));
        assertTrue(e.getMessage().contains("/no/such/model.onnx") && e.getMessage().contains("known models"), e.getMessage());
        Path empty = java.nio.file.Files.createTempDirectory("pt-empty-model");
        var e2 = assertThrows(ModelNotFoundException.class, () -> Embedder.load(empty.toString()));
        assertTrue(e2.getMessage().contains("model.onnx") && e2.getMessage().contains("model.safetensors"), e2.getMessage());
        var e3 = assertThrows(ModelNotFoundException.class, () -> Embedder.load("no-such-model-name"));
        assertTrue(e3.getMessage().contains("all-minilm-l6-v2"), e3.getMessage());
        // a truncated ONNX file beside a valid tokenizer
        Path cut = java.nio.file.Files.createTempDirectory("pt-cut-model");
        byte[] head = new byte[4096];
        try (var in = java.nio.file.Files.newInputStream(TestModels.minilm().resolve("model.onnx"))) {
            in.readNBytes(head, 0, head.length);
        }
        java.nio.file.Files.write(cut.resolve("model.onnx"), head);
        TestModels.tokenizerJson(cut);
        Exception e4 = assertThrows(Exception.class, () -> Embedder.load(cut.toString()));
        assertTrue(e4 instanceof java.io.IOException || e4 instanceof IllegalArgumentException, e4.toString());
        assertTrue(e4.getMessage().contains("model.onnx"), e4.getMessage());
    }

    @Test
    void closedEmbedderIsRefused() throws Exception {
        Embedder e = Embedder.builder(TestModels.tinyBert().toString()).threads(1).build();
        assertEquals(32, e.dimension());
        assertEquals(64, e.maxLength(), "capped at the model's 64 positions");
        e.embed("still open");
        e.close();
        e.close();
        assertThrows(IllegalStateException.class, () -> e.embed("closed"));
    }
}
