package dev.panatron.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panatron.Embedder;
import dev.panatron.TestModels;
import dev.panatron.graph.BertWeights;
import dev.panatron.tokenize.Encoding;

import java.io.ByteArrayOutputStream;
import java.io.ByteArrayInputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * all-MiniLM-L6-v2 on the GPU ({@link CudaEmbedder}) against the CPU fp32 {@link Embedder} and
 * against a plain double-precision BERT forward written here from the weights
 * {@link BertWeights} reads back from the CPU model's graph. The reference test runs everywhere
 * the model is (it checks the weight read-back the GPU path relies on); the GPU tests skip where
 * no GPU is. The model: {@code -Dpanatron.test.minilm=DIR} (an ONNX or safetensors folder with
 * tokenizer.json: the device run carries a bf16 copy), else the langchain4j artifact on the test
 * class path (skipped when absent).
 */
class CudaEmbedderTest extends GpuTest {
    /** Varied: short, long, punctuation, digits, accents, an empty text, a repeated word. */
    static final List<String> TEXTS = List.of(
            "hello world",
            "The quick brown fox jumps over the lazy dog.",
            "A man is playing a guitar on the stage while the crowd sings along to every single word of the chorus.",
            "",
            "Ça coûte 42,50 € — naïve café résumé?",
            "GPU kernels: flash attention, cuBLASLt GEMMs & LayerNorm in bf16 (sm_90a).",
            "dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog dog",
            "Paris is the capital of France.");

    private static Embedder cpu;

    @BeforeAll
    static void load() throws Exception {
        String dir = System.getProperty("panatron.test.minilm");
        cpu = Embedder.builder(dir != null ? dir : TestModels.minilm().toString()).threads(2).build();
    }

    @AfterAll
    static void close() {
        if (cpu != null) cpu.close();
    }

    static double cosine(float[] a, double[] b) {
        double d = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            d += a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += b[i] * b[i];
        }
        return d / Math.sqrt(na * nb);
    }

    static double[] toDouble(float[] v) {
        double[] r = new double[v.length];
        for (int i = 0; i < v.length; i++) r[i] = v[i];
        return r;
    }

    // ------------------------------------------------------------------ everywhere

    @Test
    void weightsReadBackGiveTheCpuEmbeddings() {
        BertWeights w = cpu.encoderWeights();
        assertEquals(384, w.hidden());
        assertEquals(12, w.heads());
        assertEquals(1536, w.intermediate());
        assertEquals(6, w.layers().size());
        List<float[]> got = cpu.embed(TEXTS.subList(0, 3));
        for (int i = 0; i < 3; i++) {
            double[] ref = reference(w, cpu.tokenizer().withoutPadding().encode(TEXTS.get(i)));
            double c = cosine(got.get(i), ref);
            assertTrue(c >= 0.99999, "text " + i + ": CPU fp32 vs the double reference from the read-back weights: cosine " + c);
        }
    }

    @Test
    void cudaDeviceWithoutAGpuIsAClearError() {
        assumeTrue(!Cuda.isAvailable(), "a GPU is present");
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int rc = dev.panatron.cli.Main.execute(new String[] {"bench", "kernels", "--device", "cuda", "--quick"},
                new ByteArrayInputStream(new byte[0]), new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        String e = err.toString(StandardCharsets.UTF_8);
        assertTrue(rc != 0, "exit code " + rc);
        assertTrue(e.contains("--device cuda") && e.contains("no usable CUDA GPU"), e);
    }

    // ------------------------------------------------------------------ on the GPU

    @Test
    void gpuEmbeddingsEqualTheCpuPath() {
        gpu();
        List<float[]> want = cpu.embed(TEXTS);
        BertWeights w = cpu.encoderWeights();
        try (CudaEmbedder g = new CudaEmbedder(ctx, cpu, 32)) {
            List<float[]> got = g.embed(TEXTS);
            assertEquals(TEXTS.size(), got.size());
            for (int i = 0; i < TEXTS.size(); i++) {
                float[] v = got.get(i);
                assertEquals(384, v.length);
                double n = 0;
                for (float x : v) {
                    assertTrue(Float.isFinite(x), "text " + i + ": non-finite value");
                    n += (double) x * x;
                }
                assertEquals(1, Math.sqrt(n), 1e-5, "text " + i + ": not L2-normalized");
                double c = cosine(v, toDouble(want.get(i)));
                assertTrue(c >= 0.999, "text " + i + " '" + TEXTS.get(i) + "': GPU bf16 vs CPU fp32 cosine " + c);
                double r = cosine(v, reference(w, cpu.tokenizer().withoutPadding().encode(TEXTS.get(i))));
                assertTrue(r >= 0.999, "text " + i + ": GPU vs the double reference cosine " + r);
            }
            // batching (packed sequences) does not change a text's embedding beyond bf16 noise
            try (CudaEmbedder small = new CudaEmbedder(ctx, cpu, 3)) {
                List<float[]> again = small.embed(TEXTS);
                for (int i = 0; i < TEXTS.size(); i++) {
                    double c = cosine(again.get(i), toDouble(got.get(i)));
                    assertTrue(c >= 0.9999, "text " + i + ": batch 3 vs batch 32 cosine " + c);
                }
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.embedIds(new int[][] {{101, 1 << 20, 102}}));
            assertTrue(e.getMessage().contains("vocabulary"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> g.embedIds(new int[][] {{}}));
            assertTrue(g.embed(List.of()).isEmpty());
        }
    }

    @Test
    void gpuEmbedIdsMatchesEmbed() {
        gpu();
        try (CudaEmbedder g = new CudaEmbedder(ctx, cpu, 8)) {
            List<int[]> ids = new ArrayList<>();
            for (String t : TEXTS) ids.add(cpu.tokenizer().withoutPadding().encode(t).ids());
            List<float[]> a = g.embedIds(ids.toArray(new int[0][])), b = g.embed(TEXTS);
            for (int i = 0; i < TEXTS.size(); i++) assertTrue(cosine(a.get(i), toDouble(b.get(i))) >= 0.9999, "text " + i);
        }
    }

    // ------------------------------------------------------------------ the reference

    /** BERT (post-LN, GELU erf) in double from the read-back weights, mean pooling, L2 normalization. */
    static double[] reference(BertWeights w, Encoding enc) {
        int h = w.hidden(), nh = w.heads(), d = h / nh, t = enc.length(), f = w.intermediate();
        double[][] x = new double[t][h];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < h; j++) x[i][j] = (double) w.word()[enc.id(i) * h + j] + w.position()[i * h + j] + w.tokenType()[j];
            x[i] = ln(x[i], w.embGamma(), w.embBeta(), w.eps());
        }
        for (BertWeights.Layer l : w.layers()) {
            double[][] q = lin(x, l.wq(), l.bq(), h), k = lin(x, l.wk(), l.bk(), h), v = lin(x, l.wv(), l.bv(), h);
            double[][] ctxv = new double[t][h];
            for (int hd = 0; hd < nh; hd++) {
                for (int i = 0; i < t; i++) {
                    double[] s = new double[t];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < t; j++) {
                        double acc = 0;
                        for (int c = 0; c < d; c++) acc += q[i][hd * d + c] * k[j][hd * d + c];
                        s[j] = acc / Math.sqrt(d);
                        mx = Math.max(mx, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < t; j++) sum += s[j] = Math.exp(s[j] - mx);
                    for (int j = 0; j < t; j++) for (int c = 0; c < d; c++) ctxv[i][hd * d + c] += s[j] / sum * v[j][hd * d + c];
                }
            }
            double[][] o = lin(ctxv, l.wo(), l.bo(), h);
            for (int i = 0; i < t; i++) {
                for (int j = 0; j < h; j++) o[i][j] += x[i][j];
                x[i] = ln(o[i], l.ln1Gamma(), l.ln1Beta(), w.eps());
            }
            double[][] u = lin(x, l.w1(), l.b1(), f);
            for (double[] row : u) for (int j = 0; j < f; j++) row[j] = 0.5 * row[j] * (1 + erf(row[j] / Math.sqrt(2)));
            double[][] y = lin(u, l.w2(), l.b2(), h);
            for (int i = 0; i < t; i++) {
                for (int j = 0; j < h; j++) y[i][j] += x[i][j];
                x[i] = ln(y[i], l.ln2Gamma(), l.ln2Beta(), w.eps());
            }
        }
        double[] p = new double[h];
        for (double[] row : x) for (int j = 0; j < h; j++) p[j] += row[j] / t;
        double n = 0;
        for (double v : p) n += v * v;
        n = Math.sqrt(n);
        for (int j = 0; j < h; j++) p[j] /= n;
        return p;
    }

    /** x [t, in] @ w^T ([out, in]) + b. */
    static double[][] lin(double[][] x, float[] w, float[] b, int out) {
        int in = x[0].length;
        double[][] y = new double[x.length][out];
        for (int i = 0; i < x.length; i++) {
            for (int o = 0; o < out; o++) {
                double acc = b[o];
                for (int c = 0; c < in; c++) acc += x[i][c] * w[o * in + c];
                y[i][o] = acc;
            }
        }
        return y;
    }

    static double[] ln(double[] x, float[] g, float[] b, double eps) {
        double m = 0, v = 0;
        for (double a : x) m += a / x.length;
        for (double a : x) v += (a - m) * (a - m) / x.length;
        double[] r = new double[x.length];
        for (int j = 0; j < x.length; j++) r[j] = (x[j] - m) / Math.sqrt(v + eps) * g[j] + b[j];
        return r;
    }

    /** erf by its Taylor series (|x| < 3) or the asymptotic complement: |error| < 1e-12 where it matters here. */
    static double erf(double x) {
        double ax = Math.abs(x);
        if (ax >= 6) return Math.signum(x);
        if (ax < 3) {
            double term = ax, sum = ax;
            for (int n = 1; n < 200; n++) {
                term *= -ax * ax / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17) break;
            }
            return Math.signum(x) * 2 / Math.sqrt(Math.PI) * sum;
        }
        // continued fraction for erfc (Lentz), accurate for x >= 3
        double tiny = 1e-300, fcf = ax, c = ax, dd = 0;
        for (int n = 1; n < 200; n++) {
            double an = n / 2.0;
            dd = ax + an * dd;
            dd = dd == 0 ? tiny : 1 / dd;
            c = ax + an / c;
            if (c == 0) c = tiny;
            double delta = c * dd;
            fcf *= delta;
            if (Math.abs(delta - 1) < 1e-16) break;
        }
        double erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / fcf;
        return Math.signum(x) * (1 - erfc);
    }
}
