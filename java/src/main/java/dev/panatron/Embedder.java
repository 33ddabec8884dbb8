package dev.panatron;

import dev.panatron.graph.Graph;
import dev.panatron.graph.Passes;
import dev.panatron.graph.Session;
import dev.panatron.graph.TensorData;
import dev.panatron.io.BertBuilder;
import dev.panatron.io.OnnxImporter;
import dev.panatron.models.ModelFiles;
import dev.panatron.models.ModelRegistry;
import dev.panatron.tokenize.Batch;
import dev.panatron.tokenize.WordPieceTokenizer;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Sentence embeddings from a BERT-family encoder: text in, L2-normalized vectors out.
 *
 * <pre>{@code
 * try (Embedder e = Embedder.load("all-minilm-l6-v2")) {
 *     float[][] v = e.embed(List.of("a sentence", "another one"));
 * }
 * }</pre>
 *
 * Texts are tokenized with the model's tokenizer.json (truncated to {@link Options#maxLength}),
 * batched with padding to the longest text, run through the fused graph on our kernels, and
 * pooled over the attention mask (mean, sentence-transformers' default) or taken at [CLS].
 * An instance owns its graph, session and context; {@link #close()} frees them (twice is
 * harmless) and a closed embedder throws {@link IllegalStateException}.
 */
public final class Embedder implements AutoCloseable {
    /** How token vectors become one sentence vector. */
    public enum Pooling { MEAN, CLS }

    /**
     * Loading options.
     *
     * @param pooling   mean over the mask, or the [CLS] token
     * @param threads   kernel threads (0: every core)
     * @param precision {@link DType#F32} or {@link DType#BF16} (weights rounded once; f32 activations)
     * @param maxLength tokens per text including [CLS]/[SEP] (sentence-transformers uses 256 for MiniLM)
     */
    public record Options(Pooling pooling, int threads, DType precision, int maxLength) {
        public static final Options DEFAULT = new Options(Pooling.MEAN, 0, DType.F32, 256);

        public Options {
            Objects.requireNonNull(pooling, "pooling");
            Objects.requireNonNull(precision, "precision");
            if (threads < 0) throw new IllegalArgumentException("threads must be >= 0, got " + threads);
            if (precision != DType.F32 && precision != DType.BF16) throw new IllegalArgumentException("precision must be F32 or BF16, got " + precision);
            if (maxLength < 2) throw new IllegalArgumentException("maxLength must be >= 2, got " + maxLength);
        }

        public Options withPooling(Pooling p) { return new Options(p, threads, precision, maxLength); }
        public Options withThreads(int t) { return new Options(pooling, t, precision, maxLength); }
        public Options withPrecision(DType p) { return new Options(pooling, threads, p, maxLength); }
    }

    private final String name;
    private final Options options;
    private final WordPieceTokenizer tokenizer;
    private final Graph graph;
    private final Context ctx;
    private final Session session;
    private final int dim;
    private volatile boolean closed;

    private Embedder(String name, Options options, WordPieceTokenizer tokenizer, Graph graph) {
        this.name = name;
        this.options = options;
        this.tokenizer = tokenizer;
        this.graph = graph;
        Context c = null;
        try {
            c = Context.create(options.threads());
            this.ctx = c;
            this.session = Session.create(graph, c, Session.Options.DEFAULT.withPrecision(options.precision()));
            this.dim = (int) session.run(inputs(tokenizer.encodeBatch(List.of("")))).get("last_hidden_state").shape()[2];
        } catch (RuntimeException e) {
            if (c != null) c.close();
            graph.close();
            throw e;
        }
    }

    /** Loads a model by name (e.g. "all-minilm-l6-v2") or path with default options. */
    public static Embedder load(String nameOrPath) throws IOException { return load(nameOrPath, Options.DEFAULT); }

    /**
     * Loads a model by name or path: an ONNX file (tokenizer.json beside it), or a folder
     * holding model.onnx or model.safetensors + config.json, with tokenizer.json.
     *
     * @throws IOException              when the model cannot be found, read or parsed (the message
     *                                  says what was looked for)
     * @throws IllegalArgumentException for bad options
     */
    public static Embedder load(String nameOrPath, Options options) throws IOException {
        Objects.requireNonNull(nameOrPath, "nameOrPath");
        Objects.requireNonNull(options, "options");
        ModelFiles files = ModelRegistry.defaults().resolve(nameOrPath);
        WordPieceTokenizer tok = WordPieceTokenizer.fromFile(files.tokenizer()).withMaxLength(options.maxLength()).withPaddingToLongest();
        Graph g = files.format() == ModelFiles.Format.ONNX ? OnnxImporter.load(files.weights()) : BertBuilder.load(files.directory());
        try {
            Passes.optimize(g);
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
        return new Embedder(files.name(), options, tok, g);
    }

    /** The model's name (or path). */
    public String name() { return name; }

    /** The embedding dimension. */
    public int dimension() { return dim; }

    /** The options this embedder was loaded with. */
    public Options options() { return options; }

    /** One text's embedding (L2-normalized). @throws NullPointerException for a null text */
    public float[] embed(String text) {
        Objects.requireNonNull(text, "text");
        return embed(List.of(text))[0];
    }

    /**
     * Embeddings of several texts, one row each (L2-normalized), computed as one padded batch.
     *
     * @throws NullPointerException  for a null list or text
     * @throws IllegalStateException when closed
     */
    public synchronized float[][] embed(List<String> texts) {
        if (closed) throw new IllegalStateException("embedder " + name + " is closed");
        Objects.requireNonNull(texts, "texts");
        for (int i = 0; i < texts.size(); i++) Objects.requireNonNull(texts.get(i), "text " + i + " is null");
        if (texts.isEmpty()) return new float[0][];
        Batch b = tokenizer.encodeBatch(texts);
        float[] hidden = session.run(inputs(b)).get("last_hidden_state").toFloatArray();
        int n = b.size(), len = b.length();
        int[] mask = b.attentionMask();
        float[][] out = new float[n][dim];
        for (int s = 0; s < n; s++) {
            double[] acc = new double[dim];
            int count = 0;
            for (int t = 0; t < len; t++) {
                if (options.pooling() == Pooling.CLS ? t != 0 : mask[s * len + t] == 0) continue;
                int base = (s * len + t) * dim;
                for (int d = 0; d < dim; d++) acc[d] += hidden[base + d];
                count++;
            }
            double norm = 0;
            for (int d = 0; d < dim; d++) {
                acc[d] /= Math.max(1, count);
                norm += acc[d] * acc[d];
            }
            double inv = 1.0 / Math.max(Math.sqrt(norm), 1e-12);
            for (int d = 0; d < dim; d++) out[s][d] = (float) (acc[d] * inv);
        }
        return out;
    }

    private static Map<String, TensorData> inputs(Batch b) {
        Map<String, TensorData> in = new HashMap<>();
        in.put("input_ids", TensorData.ofLongs(b.idsAsLong(), b.size(), b.length()));
        in.put("attention_mask", TensorData.ofLongs(b.attentionMaskAsLong(), b.size(), b.length()));
        in.put("token_type_ids", TensorData.ofLongs(b.typeIdsAsLong(), b.size(), b.length()));
        return in;
    }

    /** Cosine similarity of two vectors of the same length. */
    public static double cosine(float[] a, float[] b) {
        if (a.length != b.length) throw new IllegalArgumentException("lengths differ: " + a.length + " vs " + b.length);
        double d = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            d += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return d / Math.max(Math.sqrt(na * nb), 1e-30);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        session.close();
        graph.close();
        ctx.close();
    }
}
