package dev.panatron;

import dev.panatron.graph.Compression;
import dev.panatron.graph.Dim;
import dev.panatron.graph.Graph;
import dev.panatron.graph.Packing;
import dev.panatron.graph.Passes;
import dev.panatron.graph.Plan;
import dev.panatron.graph.Session;
import dev.panatron.graph.TensorData;
import dev.panatron.graph.Value;
import dev.panatron.io.BertBuilder;
import dev.panatron.io.HfConfig;
import dev.panatron.io.OnnxImporter;
import dev.panatron.io.Safetensors;
import dev.panatron.models.ModelFiles;
import dev.panatron.models.ModelRegistry;
import dev.panatron.tokenize.WordPieceTokenizer;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Sentence embeddings: texts in, L2-normalized vectors out, from a BERT-family encoder
 * (all-MiniLM-L6-v2 and the like) run on Panatron's kernels.
 *
 * <pre>{@code
 * try (Embedder e = Embedder.load("all-minilm-l6-v2")) {
 *     float[] v = e.embed("The quick brown fox");            // 384 floats, ||v|| = 1
 *     List<float[]> vs = e.embed(List.of("a cat", "a dog"));
 * }
 * }</pre>
 *
 * <p>The pipeline is sentence-transformers' for such models: WordPiece tokens ([CLS] text
 * [SEP], truncated to {@link #maxLength()} tokens), the encoder's last hidden state, mean
 * pooling over the attention mask (or the [CLS] vector, {@link Pooling#CLS}), L2
 * normalization. Texts are encoded in batches of up to {@link Builder#batchSize} of similar
 * length (sorted by token count). A batch runs packed by default ({@link Builder#packed}): its
 * sequences laid end to end as one row, attention kept within each sequence by cumulative
 * offsets, so no padding token is computed; or padded to its longest text (the padding masked
 * out of attention and pooling). Results do not depend on how texts are batched.
 *
 * <p>Models ({@link Builder#build()}): a known name ({@code "all-minilm-l6-v2"}, resolved by
 * {@link ModelRegistry}: from {@code ~/.m2} or Maven Central, cached under
 * {@code ~/.cache/panatron/models}), an ONNX file or folder with its {@code tokenizer.json},
 * or a folder with {@code model.safetensors} + {@code config.json} + {@code tokenizer.json}
 * (Hugging Face layout). Precision: {@link Precision#FP32}, or {@link Precision#BF16} (weights
 * rounded to bf16, the linear layers on AMX-BF16 where the CPU has it; activations f32).
 *
 * <p>An instance owns its native resources (one arena for its buffers, the model's weights,
 * the packed weights, the kernel context): {@link #close()} frees them (twice is harmless); a
 * closed instance throws {@link IllegalStateException}. Calls on one instance are serialized
 * (it is thread-safe; use one instance per thread for parallel throughput).
 */
public final class Embedder implements AutoCloseable {

    /** How token vectors become one sentence vector (then L2-normalized). */
    public enum Pooling {
        /** The mean over the tokens the attention mask keeps, [CLS] and [SEP] included (sentence-transformers' default). */
        MEAN,
        /** The first token's ([CLS]) vector. */
        CLS
    }

    /** The output the encoder is read from. */
    private static final String[] HIDDEN_NAMES = {"last_hidden_state", "token_embeddings", "hidden_states"};

    private final String modelName;
    private final Path modelPath;
    private final Pooling pooling;
    private final Precision precision;
    private final Compression.Options conversion;
    private Compression.Report conversionReport;
    private final int maxLength;
    private final int batchSize;
    private final WordPieceTokenizer tokenizer;
    private final Graph graph;
    private final Context ctx;
    private final Session session;
    private final String idsName, maskName, typesName, hiddenName, batchSym, seqSym;
    private final String posName;        // the position-ids input (made by Packing), or null: folded at plan time
    private final boolean packed;        // batches run packed (no padding computed)
    private final int dim;
    private final long vocab;
    private final Arena arena = Arena.ofShared();
    private MemorySegment mask32 = MemorySegment.NULL, pooled = MemorySegment.NULL;
    private boolean closed;

    // ------------------------------------------------------------------ construction

    /**
     * Loads a model with the defaults (mean pooling, fp32, every core, progress silent).
     *
     * @param nameOrPath a known model name ("all-minilm-l6-v2") or a path
     * @throws dev.panatron.models.ModelNotFoundException when it is neither (the message lists
     *         the known names, or the files looked for)
     * @throws IOException  when a file cannot be read or downloaded
     * @throws IllegalArgumentException when a model or tokenizer file is truncated or corrupt, or
     *         the model is not an encoder this class can run
     */
    public static Embedder load(String nameOrPath) throws IOException { return builder(nameOrPath).build(); }

    /** A builder for the model {@code nameOrPath} (a known name or a path). */
    public static Builder builder(String nameOrPath) {
        return new Builder(Objects.requireNonNull(nameOrPath, "nameOrPath: give a model name or path"));
    }

    /** Options of an {@link Embedder}; {@link #build()} loads the model. */
    public static final class Builder {
        private final String model;
        private Pooling pooling = Pooling.MEAN;
        private Precision precision = Precision.FP32;
        private int threads = 0;
        private int batchSize = 32;
        private int maxLength = 0;
        private boolean packed = true;
        private PrintStream progress;
        private ModelRegistry registry;
        private double sparsity;
        private List<String> exclude = List.of();
        private Compression.Options compression;
        private Path convertedLayers;

        private Builder(String model) { this.model = model; }

        /** Mean (default) or CLS pooling. */
        public Builder pooling(Pooling p) {
            this.pooling = Objects.requireNonNull(p, "pooling");
            return this;
        }

        /**
         * FP32 (default), BF16, INT8 (linear layers LLM.int8) or FP4 (linear layers E2M1, group
         * 64); other int8/fp4 variants through {@link #compression}.
         */
        public Builder precision(Precision p) {
            this.precision = Objects.requireNonNull(p, "precision");
            return this;
        }

        /**
         * Threads the kernels use; 0 (default) = every online core.
         *
         * @throws IllegalArgumentException when negative
         */
        public Builder threads(int t) {
            if (t < 0) throw new IllegalArgumentException("threads must be >= 0 (0 = all cores), got " + t);
            this.threads = t;
            return this;
        }

        /**
         * Most texts run through the encoder at once (default 32).
         *
         * @throws IllegalArgumentException when below 1
         */
        public Builder batchSize(int n) {
            if (n < 1) throw new IllegalArgumentException("batchSize must be >= 1, got " + n);
            this.batchSize = n;
            return this;
        }

        /**
         * Tokens per text, [CLS] and [SEP] included; longer texts are truncated. Default: the
         * model's {@code sentence_bert_config.json} max_seq_length when present (256 for the
         * all-MiniLM-L6-v2 names), else the encoder's position limit (512 for BERT).
         *
         * @throws IllegalArgumentException when below 2
         */
        public Builder maxLength(int n) {
            if (n < 2) throw new IllegalArgumentException("maxLength must be >= 2 ([CLS] and [SEP]), got " + n);
            this.maxLength = n;
            return this;
        }

        /**
         * Packed variable-length batches (default true: no padding token computed), or false:
         * each batch padded to its longest text. Models whose graph cannot run packed (an
         * attention mask other than a key-padding mask, position ids not found) run padded.
         */
        public Builder packed(boolean p) {
            this.packed = p;
            return this;
        }

        /**
         * Magnitude block pruning of the linear layers (4x1 blocks, per layer) to this fraction of
         * zero blocks, without retraining; the pruned layers run on the block-sparse SpMM.
         *
         * @throws IllegalArgumentException when not in [0, 1)
         */
        public Builder sparsity(double s) {
            if (!(s >= 0 && s < 1)) throw new IllegalArgumentException("sparsity must be in [0, 1), got " + s);
            this.sparsity = s;
            return this;
        }

        /** Linear layers left unconverted, by name pattern ('*' wildcard, else a substring), e.g. "*.output.dense". */
        public Builder exclude(List<String> patterns) {
            this.exclude = List.copyOf(Objects.requireNonNull(patterns, "patterns"));
            return this;
        }

        /**
         * Full control of the conversion (int8 mode and threshold, fp4 format / search / group /
         * clip, sparsity blocks, global pruning, excludes); replaces {@link #precision},
         * {@link #sparsity} and {@link #exclude}. An FP4 search calibrates on a few built-in sentences.
         */
        public Builder compression(Compression.Options o) {
            this.compression = Objects.requireNonNull(o, "options");
            return this;
        }

        /**
         * Loads converted linear layers saved by {@link Embedder#saveConverted} (for this same
         * model) instead of converting at load time.
         */
        public Builder convertedLayers(Path file) {
            this.convertedLayers = Objects.requireNonNull(file, "file");
            return this;
        }

        /** The conversion this builder asks for. */
        Compression.Options conversion() {
            if (compression != null) return compression;
            return Compression.Options.of(precision).withSparsity(sparsity).withExclude(exclude);
        }

        /** Where loading reports progress (download, extraction, loading, weight packing); null = silent (default). */
        public Builder progress(PrintStream out) {
            this.progress = out;
            return this;
        }

        /** The registry resolving names (default {@link ModelRegistry#defaults()}, with this builder's progress). */
        public Builder registry(ModelRegistry r) {
            this.registry = r;
            return this;
        }

        /**
         * Resolves and loads the model, builds and optimizes its graph, packs its weights.
         *
         * @throws dev.panatron.models.ModelNotFoundException when the name or path leads to no model
         *         (the message lists what was looked for)
         * @throws IOException when a file cannot be read or downloaded
         * @throws IllegalArgumentException when a model or tokenizer file is truncated or corrupt
         *         ({@link dev.panatron.io.ModelFormatException}, naming the file), or the model is
         *         not a BERT-family encoder this class can run
         */
        public Embedder build() throws IOException {
            ModelRegistry reg = registry != null ? registry : ModelRegistry.defaults().withProgress(progress);
            ModelFiles files = reg.resolve(model);
            return new Embedder(files, this);
        }
    }

    private Embedder(ModelFiles files, Builder b) throws IOException {
        this.modelName = files.name();
        this.modelPath = files.weights();
        this.pooling = b.pooling;
        this.precision = b.compression != null ? Precision.valueOf(b.compression.precision().name()) : b.precision;
        this.conversion = b.conversion();
        this.batchSize = b.batchSize;
        long t0 = System.nanoTime();
        say(b.progress, "panatron: loading " + files.format().name().toLowerCase(Locale.ROOT) + " model " + files.weights());
        Graph g = files.format() == ModelFiles.Format.ONNX ? OnnxImporter.load(files.weights())
                : BertBuilder.build(Safetensors.open(files.weights()), HfConfig.read(files.config()));
        Context c = null;
        Session s = null;
        try {
            Passes.optimize(g);
            Value ids = input(g, "input_ids");
            if (ids == null || ids.shape().rank() != 2 || ids.dtype().isFloat()) {
                throw new IllegalArgumentException("model " + files.weights() + " has no integer input_ids [batch, sequence] (inputs: "
                        + g.inputs().stream().map(Value::typeString).toList() + ")");
            }
            this.idsName = ids.name();
            this.maskName = input(g, "attention_mask") != null ? "attention_mask" : null;
            this.typesName = input(g, "token_type_ids") != null ? "token_type_ids" : null;
            Dim bd = ids.shape().dim(0), sd = ids.shape().dim(1);
            if (bd.symbol() == null || sd.symbol() == null) {
                throw new IllegalArgumentException("model " + files.weights() + ": input_ids must have symbolic [batch, sequence] dims, got " + ids.typeString());
            }
            this.batchSym = bd.symbol();
            this.seqSym = sd.symbol();
            Value hidden = null;
            for (String n : HIDDEN_NAMES) for (Value o : g.outputs()) if (hidden == null && o.name().equals(n)) hidden = o;
            if (hidden == null) for (Value o : g.outputs()) if (hidden == null && o.shape().rank() == 3) hidden = o;
            if (hidden == null || hidden.shape().rank() != 3 || hidden.dtype() != DType.F32 || !hidden.shape().dim(2).isStatic()) {
                throw new IllegalArgumentException("model " + files.weights() + " has no f32 [batch, sequence, hidden] output (outputs: "
                        + g.outputs().stream().map(Value::typeString).toList() + ")");
            }
            this.hiddenName = hidden.name();
            this.dim = Math.toIntExact(hidden.shape().dim(2).value());
            long v = 0;
            for (var n : g.nodes()) {
                if (n.op() == dev.panatron.graph.Op.GATHER && n.input(1) == ids && n.input(0).isConstant()) v = n.input(0).shape().dim(0).value();
            }
            this.vocab = v;
            long posLimit = Long.MAX_VALUE;
            for (Graph.Constraint k : g.constraints()) if (k.dim().equals(sd)) posLimit = Math.min(posLimit, k.max());
            int want = b.maxLength > 0 ? b.maxLength : defaultMaxLength(files);
            if (posLimit != Long.MAX_VALUE && want > posLimit) {
                if (b.maxLength > 0) throw new IllegalArgumentException("maxLength " + want + " exceeds the model's limit of " + posLimit + " positions");
                want = (int) posLimit;
            }
            this.maxLength = want;
            this.posName = Packing.positionIdsAsInput(g);
            this.packed = b.packed && posName != null && Packing.attentionPackable(g);
            WordPieceTokenizer tok = WordPieceTokenizer.fromFile(files.tokenizer());
            this.tokenizer = tok.withMaxLength(maxLength).withPaddingToLongest();
            c = Context.create(b.threads);
            convert(g, c, b);
            s = Session.create(g, c, Session.Options.DEFAULT.withPrecision(Compression.sessionPrecision(conversion)));
            this.graph = g;
            this.ctx = c;
            this.session = s;
            say(b.progress, String.format(Locale.ROOT, "panatron: model ready in %.1f s (%d nodes, dim %d, max %d tokens, %s, %d threads); packing weights%s",
                    (System.nanoTime() - t0) / 1e9, g.nodes().size(), dim, maxLength, precision.name().toLowerCase(Locale.ROOT), c.threads(),
                    precision == Precision.BF16 ? " as bf16" : ""));
            long t1 = System.nanoTime();
            synchronized (s) {
                s.plan(Map.of(batchSym, 1L, seqSym, 8L));     // binds a first plan: packs the weights now, not on the first call
            }
            say(b.progress, String.format(Locale.ROOT, "panatron: weights packed in %.1f s (%.1f MiB)", (System.nanoTime() - t1) / 1e9,
                    s.packedWeightBytes() / 1048576.0));
        } catch (RuntimeException | IOException e) {
            if (s != null) s.close();
            if (c != null) c.close();
            g.close();
            arena.close();
            throw e;
        }
    }

    /** Applies the builder's conversion (or the saved converted layers) to the optimized graph. */
    private void convert(Graph g, Context c, Builder b) throws IOException {
        long t0 = System.nanoTime();
        if (b.convertedLayers != null) {
            String what = Compression.load(g, b.convertedLayers);
            say(b.progress, String.format(Locale.ROOT, "panatron: converted layers (%s) loaded from %s in %.1f s", what, b.convertedLayers,
                    (System.nanoTime() - t0) / 1e9));
            return;
        }
        if (!conversion.rewrites()) return;
        List<Map<String, TensorData>> calib = new ArrayList<>();
        if (conversion.needsCalibration()) {
            // batches of 8 when the model takes a mask (its padding rows are left out), else one sentence per run
            List<String> all = Compression.CALIBRATION_SENTENCES;
            int per = maskName != null ? 8 : 1;
            for (int i = 0; i < all.size(); i += per) {
                dev.panatron.tokenize.Batch bt = tokenizer.encodeBatch(all.subList(i, Math.min(all.size(), i + per)));
                Map<String, TensorData> in = new java.util.HashMap<>();
                in.put(idsName, TensorData.ofLongs(bt.idsAsLong(), bt.size(), bt.length()));
                if (maskName != null) in.put(maskName, TensorData.ofLongs(bt.attentionMaskAsLong(), bt.size(), bt.length()));
                if (typesName != null) in.put(typesName, TensorData.ofLongs(bt.typeIdsAsLong(), bt.size(), bt.length()));
                if (posName != null) {          // positions 0 .. len-1 (of each row), as fillPositions does for a padded plan
                    int rank = 1;
                    for (dev.panatron.graph.Value v : g.inputs()) if (v.name().equals(posName)) rank = v.shape().rank();
                    long[] pos = new long[rank == 2 ? bt.size() * bt.length() : bt.length()];
                    for (int j = 0; j < pos.length; j++) pos[j] = j % bt.length();
                    in.put(posName, rank == 2 ? TensorData.ofLongs(pos, bt.size(), bt.length()) : TensorData.ofLongs(pos, bt.length()));
                }
                calib.add(in);
            }
        }
        conversionReport = Compression.apply(g, c, conversion, calib);
        say(b.progress, String.format(Locale.ROOT, "panatron: converted %d linear layers to %s in %.1f s: weights %.1f -> %.1f MiB",
                conversionReport.layers().size(), conversion.describe(), (System.nanoTime() - t0) / 1e9,
                conversionReport.bytesBefore() / 1048576.0, conversionReport.bytesAfter() / 1048576.0));
    }

    /** The conversion of the linear layers (options as given to the builder). */
    public Compression.Options conversion() { return conversion; }

    /** The conversion report (weight bytes per linear layer before/after), or null when nothing was converted here. */
    public Compression.Report conversionReport() { return conversionReport; }

    /**
     * Saves the converted linear layers to {@code file} ({@link Compression#save}); load them
     * again with {@link Builder#convertedLayers}.
     *
     * @throws IOException           when the file cannot be written
     * @throws IllegalStateException when closed
     */
    public synchronized void saveConverted(Path file) throws IOException {
        if (closed) throw new IllegalStateException("embedder " + modelName + " is closed");
        Compression.save(graph, file, modelName, conversion);
    }

    private static Value input(Graph g, String name) {
        for (Value v : g.inputs()) if (v.name().equals(name)) return v;
        return null;
    }

    /** sentence_bert_config.json's max_seq_length beside the files, 256 for the all-MiniLM-L6-v2 names, else 512. */
    private static int defaultMaxLength(ModelFiles files) {
        for (Path dir : new Path[] {files.directory(), files.tokenizer().toAbsolutePath().getParent()}) {
            Path sb = dir == null ? null : dir.resolve("sentence_bert_config.json");
            if (sb != null && Files.isRegularFile(sb)) {
                try {
                    Matcher m = Pattern.compile("\"max_seq_length\"\\s*:\\s*(\\d+)").matcher(Files.readString(sb, StandardCharsets.UTF_8));
                    if (m.find()) return Math.max(2, Integer.parseInt(m.group(1)));
                } catch (IOException | NumberFormatException ignored) {
                    // fall through to the defaults
                }
            }
        }
        if (files.name().toLowerCase(Locale.ROOT).startsWith("all-minilm-l6-v2")) return 256;
        return 512;
    }

    private static void say(PrintStream out, String msg) {
        if (out != null) out.println(msg);
    }

    // ------------------------------------------------------------------ accessors

    /**
     * The encoder's weights as f32 host arrays in PyTorch layout, read back from the loaded graph
     * (for running the same model on another device, e.g. {@link dev.panatron.cuda.CudaEmbedder}).
     *
     * @throws IllegalArgumentException when the model is not a plain post-LN BERT encoder or was
     *         converted to int8/fp4
     * @throws IllegalStateException    when the embedder is closed
     */
    public synchronized dev.panatron.graph.BertWeights encoderWeights() {
        checkOpen();
        return dev.panatron.graph.BertWeights.of(graph);
    }

    /** The model's name (a known name, or the file or folder name of a path). */
    public String modelName() { return modelName; }

    /** The model's weight file. */
    public Path modelPath() { return modelPath; }

    /** The embedding dimension (the encoder's hidden size: 384 for MiniLM-L6). */
    public int dimension() { return dim; }

    /** Tokens per text after truncation, [CLS] and [SEP] included. */
    public int maxLength() { return maxLength; }

    public Pooling pooling() { return pooling; }

    public Precision precision() { return precision; }

    /** True when batches run packed (no padding computed; see {@link Builder#packed}). */
    public boolean packed() { return packed; }

    /** Threads the kernels use. */
    public int threads() { return ctx.threads(); }

    /** The tokenizer (truncating to {@link #maxLength()}, padding batches to their longest). */
    public WordPieceTokenizer tokenizer() { return tokenizer; }

    // ------------------------------------------------------------------ embedding

    /**
     * The embedding of one text: {@link #dimension()} floats of L2 norm 1. An empty text is
     * embedded as [CLS] [SEP]; a text longer than {@link #maxLength()} tokens is truncated.
     *
     * @throws NullPointerException  when text is null
     * @throws IllegalStateException when the embedder is closed
     */
    public float[] embed(String text) {
        Objects.requireNonNull(text, "text: the text to embed must not be null");
        return embed(List.of(text)).getFirst();
    }

    /**
     * The embeddings of {@code texts}, in order (an empty list gives an empty list).
     *
     * @throws NullPointerException  when the list or one of its texts is null (nothing is computed)
     * @throws IllegalStateException when the embedder is closed
     */
    public List<float[]> embed(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        for (int i = 0; i < texts.size(); i++) Objects.requireNonNull(texts.get(i), "texts[" + i + "] is null");
        synchronized (this) {
            checkOpen();
            if (texts.isEmpty()) return List.of();
            return embedEncodings(tokenizer.withoutPadding().encodeAll(texts));
        }
    }

    /**
     * The embeddings of already tokenized sequences (each a whole model input: [CLS] ... [SEP]
     * for BERT), pooled and normalized as {@link #embed(List)} does; for benchmarks and callers
     * with their own tokenizer.
     *
     * @param ids one sequence of token ids per row, each 1 to {@link #maxLength()} ids in [0,
     *            vocabulary size)
     * @throws NullPointerException     when ids or a row is null
     * @throws IllegalArgumentException when a row is empty or too long, or an id is out of range
     * @throws IllegalStateException    when the embedder is closed
     */
    public List<float[]> embedIds(int[][] ids) {
        Objects.requireNonNull(ids, "ids");
        List<dev.panatron.tokenize.Encoding> enc = new ArrayList<>(ids.length);
        for (int r = 0; r < ids.length; r++) {
            int[] row = Objects.requireNonNull(ids[r], "ids[" + r + "] is null");
            if (row.length == 0 || row.length > maxLength) {
                throw new IllegalArgumentException("ids[" + r + "] has " + row.length + " ids; give 1 to " + maxLength);
            }
            for (int t = 0; t < row.length; t++) {
                if (row[t] < 0 || (vocab > 0 && row[t] >= vocab)) {
                    throw new IllegalArgumentException("ids[" + r + "][" + t + "] = " + row[t] + " is outside the vocabulary [0, " + vocab + ")");
                }
            }
            int[] ones = new int[row.length];
            Arrays.fill(ones, 1);
            enc.add(new dev.panatron.tokenize.Encoding(row.clone(), ones, new int[row.length], new int[2 * row.length]));
        }
        synchronized (this) {
            checkOpen();
            if (enc.isEmpty()) return List.of();
            return embedEncodings(enc);
        }
    }

    /** Sorted by token count (as sentence-transformers does: batches of similar length pad little), batched, pooled. */
    private List<float[]> embedEncodings(List<dev.panatron.tokenize.Encoding> enc) {
        {
            float[][] out = new float[enc.size()][];
            Integer[] order = new Integer[enc.size()];
            for (int i = 0; i < order.length; i++) order[i] = i;
            Arrays.sort(order, (x, y) -> Integer.compare(enc.get(y).length(), enc.get(x).length()));
            for (int lo = 0; lo < order.length; lo += batchSize) {
                int hi = Math.min(order.length, lo + batchSize);
                List<dev.panatron.tokenize.Encoding> part = new ArrayList<>(hi - lo);
                for (int i = lo; i < hi; i++) part.add(enc.get(order[i]));
                float[][] vs = embedEncoded(part);
                for (int i = lo; i < hi; i++) out[order[i]] = vs[i - lo];
            }
            return Arrays.asList(out);
        }
    }

    /** One batch of unpadded encodings through the encoder and the pooling. */
    private float[][] embedEncoded(List<dev.panatron.tokenize.Encoding> part) {
        if (packed) return embedPacked(part);
        int n = part.size(), longest = 0;
        for (var e : part) longest = Math.max(longest, e.length());
        // pad to a multiple of 8 (fewer distinct plans; padded keys are masked, pooling ignores them)
        int len = Math.min(Math.max(longest, (longest + 7) / 8 * 8), Math.max(longest, maxLength));
        Plan plan = session.plan(Map.of(batchSym, (long) n, seqSym, (long) len));
        ensureBuffers(n, len);
        MemorySegment m32 = mask32.asSlice(0, (long) n * len * 4);
        synchronized (session) {
            TensorData ids = plan.view(idsName);
            TensorData mask = maskName == null ? null : plan.view(maskName);
            TensorData types = typesName == null ? null : plan.view(typesName);
            fillPositions(plan, len);
            for (int r = 0; r < n; r++) {
                var e = part.get(r);
                for (int t = 0; t < len; t++) {
                    boolean real = t < e.length() && e.attentionMask()[t] != 0;
                    long i = (long) r * len + t;
                    ids.setLong(i, t < e.length() ? e.id(t) : 0);
                    if (mask != null) mask.setLong(i, real ? 1 : 0);
                    if (types != null) types.setLong(i, t < e.length() ? e.typeIds()[t] : 0);
                    m32.setAtIndex(ValueLayout.JAVA_INT, i, real ? 1 : 0);
                }
            }
            session.execute(plan);
            TensorData hidden = plan.view(hiddenName);
            float[][] out = new float[n][];
            if (pooling == Pooling.MEAN) {
                MemorySegment ps = pooled.asSlice(0, (long) n * dim * 4);
                Kernels.meanPool(ctx, hidden.asTensor(), Tensor.wrap(m32, DType.I32, n, len), true, Tensor.wrap(ps, DType.F32, n, dim));
                for (int r = 0; r < n; r++) {
                    out[r] = new float[dim];
                    MemorySegment.copy(ps, ValueLayout.JAVA_FLOAT, (long) r * dim * 4, out[r], 0, dim);
                }
            } else {
                for (int r = 0; r < n; r++) {
                    float[] v = new float[dim];
                    MemorySegment.copy(hidden.segment(), ValueLayout.JAVA_FLOAT, (long) r * len * dim * 4, v, 0, dim);
                    out[r] = normalize(v);
                }
            }
            return out;
        }
    }

    /**
     * One batch packed: the sequences end to end (rounded up to a multiple of 16 tokens by one
     * more sequence of [PAD] tokens, so that few distinct plans are made), attention within each
     * sequence through the plan's cumulative offsets, mean pooling per sequence.
     */
    private float[][] embedPacked(List<dev.panatron.tokenize.Encoding> part) {
        int n = part.size();
        long real = 0;
        for (var e : part) real += e.length();
        long t = (real + 15) / 16 * 16;
        Plan plan = session.planPacked(Map.of(batchSym, 1L, seqSym, t), batchSize + 1);
        ensureBuffers(n, 1);
        synchronized (session) {
            TensorData ids = plan.view(idsName);
            TensorData mask = maskName == null ? null : plan.view(maskName);
            TensorData types = typesName == null ? null : plan.view(typesName);
            TensorData pos = plan.view(posName);
            TensorData cu = plan.packedSeqlens();
            long[] start = new long[n + 1];
            long off = 0;
            cu.setLong(0, 0);
            for (int r = 0; r < n; r++) {
                var e = part.get(r);
                start[r] = off;
                for (int j = 0; j < e.length(); j++) {
                    ids.setLong(off + j, e.id(j));
                    if (types != null) types.setLong(off + j, e.typeIds()[j]);
                    pos.setLong(off + j, j);
                }
                off += e.length();
                cu.setLong(r + 1, off);
            }
            start[n] = off;
            for (long j = off; j < t; j++) {          // the filler: one more sequence
                ids.setLong(j, 0);
                if (types != null) types.setLong(j, 0);
                pos.setLong(j, j - off);
            }
            for (long i = n + 1; i < cu.numel(); i++) cu.setLong(i, t);
            if (mask != null) for (long j = 0; j < t; j++) mask.setLong(j, 1);
            session.execute(plan);
            MemorySegment h = plan.view(hiddenName).segment();
            float[][] out = new float[n][];
            long row = (long) dim * 4;
            for (int r = 0; r < n; r++) {
                long len = start[r + 1] - start[r];
                if (pooling == Pooling.MEAN) {
                    MemorySegment ps = pooled.asSlice((long) r * row, row);
                    Kernels.meanPool(ctx, Tensor.wrap(h.asSlice(start[r] * row, len * row), DType.F32, 1, len, dim), null, true,
                            Tensor.wrap(ps, DType.F32, 1, dim));
                    out[r] = new float[dim];
                    MemorySegment.copy(ps, ValueLayout.JAVA_FLOAT, 0, out[r], 0, dim);
                } else {
                    float[] v = new float[dim];
                    MemorySegment.copy(h, ValueLayout.JAVA_FLOAT, start[r] * row, v, 0, dim);
                    out[r] = normalize(v);
                }
            }
            return out;
        }
    }

    /** Positions 0 .. len-1 of every row into the position-ids input of a padded plan (when the graph has one). */
    private void fillPositions(Plan plan, long len) {
        if (posName == null) return;
        TensorData pos = plan.view(posName);
        for (long i = 0; i < pos.numel(); i++) pos.setLong(i, i % len);
    }

    private void ensureBuffers(int n, int len) {
        long m = (long) n * len * 4, p = (long) n * dim * 4;
        if (mask32.byteSize() < m) mask32 = arena.allocate(Math.max(m, 4096), 64);
        if (pooled.byteSize() < p) pooled = arena.allocate(Math.max(p, 4096), 64);
    }

    /** x / max(||x||, 1e-12) (sentence-transformers' Normalize), in place. */
    static float[] normalize(float[] x) {
        double s = 0;
        for (float v : x) s += (double) v * v;
        double inv = 1 / Math.max(Math.sqrt(s), 1e-12);
        for (int i = 0; i < x.length; i++) x[i] = (float) (x[i] * inv);
        return x;
    }

    // ------------------------------------------------------------------ raw encoder output

    /**
     * The encoder's last hidden state for one sequence of token ids (no tokenizer, no
     * pooling): {@code [ids.length][dimension()]}, for debugging and cross-checks.
     *
     * @param ids  token ids, each in [0, vocabulary size)
     * @param mask the attention mask (1 = attend, 0 = padding), ids' length; null = all ones
     * @throws NullPointerException     when ids is null
     * @throws IllegalArgumentException when ids is empty or longer than the model's position
     *         limit, an id is out of the vocabulary, or mask's length differs
     * @throws IllegalStateException    when the embedder is closed
     */
    public synchronized float[][] lastHiddenState(int[] ids, int[] mask) {
        Objects.requireNonNull(ids, "ids");
        checkOpen();
        if (ids.length == 0) throw new IllegalArgumentException("ids: give at least one token id");
        if (mask != null && mask.length != ids.length) {
            throw new IllegalArgumentException("mask has " + mask.length + " values but ids has " + ids.length + " (one per token)");
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || (vocab > 0 && ids[i] >= vocab)) {
                throw new IllegalArgumentException("ids[" + i + "] = " + ids[i] + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        int len = ids.length;
        Plan plan = session.plan(Map.of(batchSym, 1L, seqSym, (long) len));
        synchronized (session) {
            TensorData ti = plan.view(idsName);
            TensorData tm = maskName == null ? null : plan.view(maskName);
            TensorData tt = typesName == null ? null : plan.view(typesName);
            fillPositions(plan, len);
            for (int t = 0; t < len; t++) {
                ti.setLong(t, ids[t]);
                if (tm != null) tm.setLong(t, mask == null ? 1 : mask[t]);
                if (tt != null) tt.setLong(t, 0);
            }
            session.execute(plan);
            TensorData h = plan.view(hiddenName);
            float[][] out = new float[len][dim];
            for (int t = 0; t < len; t++) MemorySegment.copy(h.segment(), ValueLayout.JAVA_FLOAT, (long) t * dim * 4, out[t], 0, dim);
            return out;
        }
    }

    /** Bytes of the planner's arena for a batch of {@code batch} texts of {@code tokens} tokens. */
    public synchronized long plannedBytes(int batch, int tokens) {
        checkOpen();
        return session.plan(Map.of(batchSym, (long) batch, seqSym, (long) tokens)).peakBytes();
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("embedder is closed");
    }

    /** Frees the model, its packed weights, the kernel context and the buffers. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        session.close();
        ctx.close();
        graph.close();
        arena.close();
    }

    @Override
    public String toString() {
        return "Embedder[" + modelName + ", dim " + dim + ", " + pooling.name().toLowerCase(Locale.ROOT) + " pooling, "
                + precision.name().toLowerCase(Locale.ROOT) + ", max " + maxLength + " tokens, " + (packed ? "packed" : "padded") + " batches]";
    }
}
