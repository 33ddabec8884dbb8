package dev.panatron.graph;

import dev.panatron.BlockSparse;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Precision;
import dev.panatron.Fp4;
import dev.panatron.QuantKernels;
import dev.panatron.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * Model conversion (issue 5): rewrites the linear layers of an optimized graph (LINEAR nodes
 * with a constant 2-D f32 weight; embeddings are GATHER tables and never touched) into
 * compressed form:
 * <ul>
 *   <li>{@link Precision#BF16}: weights left as they are here; the session rounds them to bf16
 *       when packing ({@link #sessionPrecision}).</li>
 *   <li>{@link Precision#INT8}: per-output-channel absmax int8 codes + f32 scales, run by
 *       {@link QuantKernels#matmulInt8} as LLM.int8 (outlier columns |x| >= threshold in f32),
 *       plain W8A8, or weight-only (W8A32).</li>
 *   <li>{@link Precision#FP4}: two 4-bit codes per byte + f32 scales per group of 32/64/128
 *       along K, format E2M1 by default or chosen per layer by {@link Fp4#search} (format and
 *       clipping ratio minimizing the output error on calibration activations); codes and scales
 *       by round to nearest or by {@link Gptq} ({@link Fp4Method#GPTQ}: error-compensating on the
 *       calibration inputs' second moment, same stored format and kernels).</li>
 *   <li>Sparsity S: magnitude block pruning — blocks of {@code blockN} output channels x
 *       {@code blockK} reduction indices with the smallest L2 norms are dropped, S of them per
 *       layer or S of all blocks with one global threshold. With fp32, bf16 and int8 the layer
 *       becomes a BSR weight ({@link BlockSparse}, f32 / bf16 / int8 values; int8 is then W8A8,
 *       the SpMM has no outlier decomposition) run by the block-sparse SpMM; with fp4 the pruned
 *       blocks are zeros of a dense fp4 weight (there is no fp4 SpMM).</li>
 * </ul>
 * Compressed layers become {@link Op#QLINEAR} nodes; no full-precision copy of their weight is
 * kept (the original constants are dropped). Layers whose name matches an exclude pattern stay
 * as they are.
 */
public final class Compression {
    private Compression() {}

    /** How FP4 codes and scales are chosen. */
    public enum Fp4Method {
        /** Round to nearest onto {@code clip * absmax}-scaled levels ({@link Fp4#quantize}). */
        RTN,
        /** {@link Gptq}: error-compensating, against the calibration inputs' second moment; same stored format. */
        GPTQ;

        /**
         * "rtn" or "gptq", any case.
         *
         * @throws IllegalArgumentException for anything else
         */
        public static Fp4Method parse(String s) {
            return switch (Objects.requireNonNull(s, "fp4 method").toLowerCase(Locale.ROOT)) {
                case "rtn" -> RTN;
                case "gptq" -> GPTQ;
                default -> throw new IllegalArgumentException("fp4 method '" + s + "': expected rtn or gptq");
            };
        }
    }

    /**
     * Conversion options.
     *
     * @param precision      FP32, BF16, INT8 or FP4
     * @param int8Mode       LLM (LLM.int8, default), W8A8 or WEIGHT_ONLY
     * @param threshold      LLM.int8's outlier threshold (default 6)
     * @param fp4Format      the FP4 format (default E2M1) when not searched
     * @param fp4Search      choose the format per layer on calibration activations: with
     *                       {@link Fp4Method#RTN} format and clip by {@link Fp4#search}; with
     *                       {@link Fp4Method#GPTQ} the format (of {@link #GPTQ_FORMATS}) whose GPTQ
     *                       result has the least calibration output error
     * @param fp4Method      how the FP4 codes and scales are chosen: round to nearest (default) or GPTQ
     * @param group          FP4 scale group along K: 32, 64 (default), 128, or 0 (per channel)
     * @param clip           FP4 clipping ratio in (0, 1] when not searched (default 1)
     * @param sparsity       fraction of weight blocks pruned, in [0, 1)
     * @param blockK         block size along K (reduction), default 4
     * @param blockN         block size along N (outputs), default 1
     * @param globalSparsity one magnitude threshold over all converted layers (else S per layer)
     * @param exclude        layer-name patterns left unconverted: "re:REGEX" (found anywhere in
     *                       the name), a pattern with '*' wildcards (matching the whole name), or
     *                       else a substring of the name
     */
    public record Options(Precision precision, QuantKernels.Int8Mode int8Mode, double threshold, Fp4.Format fp4Format, boolean fp4Search,
                          Fp4Method fp4Method, int group, double clip, double sparsity, int blockK, int blockN, boolean globalSparsity, List<String> exclude) {
        /** fp32, nothing converted. */
        public static final Options NONE = of(Precision.FP32);

        /**
         * @throws IllegalArgumentException naming the bad option
         * @throws NullPointerException     for a null precision, mode, format or exclude list
         */
        public Options {
            Objects.requireNonNull(precision, "precision");
            Objects.requireNonNull(int8Mode, "int8Mode");
            Objects.requireNonNull(fp4Format, "fp4Format");
            Objects.requireNonNull(fp4Method, "fp4Method");
            exclude = List.copyOf(Objects.requireNonNull(exclude, "exclude"));
            if (!(threshold > 0) || Double.isInfinite(threshold)) throw new IllegalArgumentException("threshold must be > 0 and finite, got " + threshold);
            if (group != 0 && group != 32 && group != 64 && group != 128) throw new IllegalArgumentException("group must be 0, 32, 64 or 128, got " + group);
            if (!(clip > 0 && clip <= 1)) throw new IllegalArgumentException("clip must be in (0, 1], got " + clip);
            if (!(sparsity >= 0 && sparsity < 1)) throw new IllegalArgumentException("sparsity must be in [0, 1), got " + sparsity);
            if (blockK < 1 || blockN < 1) throw new IllegalArgumentException("block " + blockN + "x" + blockK + " must be at least 1x1");
            if (precision == Precision.FP4 && fp4Method == Fp4Method.GPTQ && sparsity > 0) {
                throw new IllegalArgumentException("fp4 GPTQ with sparsity " + sparsity + " is not supported (GPTQ would fill the pruned blocks)");
            }
        }

        /** Defaults for {@code p}: LLM.int8 with threshold 6, E2M1 group 64 clip 1, dense, nothing excluded. */
        public static Options of(Precision p) {
            return new Options(p, QuantKernels.Int8Mode.LLM, 6.0, Fp4.Format.E2M1, false, Fp4Method.RTN, 64, 1.0, 0, 4, 1, false, List.of());
        }

        public Options withInt8(QuantKernels.Int8Mode mode, double thr) {
            return new Options(precision, mode, thr, fp4Format, fp4Search, fp4Method, group, clip, sparsity, blockK, blockN, globalSparsity, exclude);
        }

        public Options withFp4(Fp4.Format format, int grp, double clp) {
            return new Options(precision, int8Mode, threshold, format, false, fp4Method, grp, clp, sparsity, blockK, blockN, globalSparsity, exclude);
        }

        /** FP4 format and clip searched per layer (needs calibration inputs), with scale group {@code grp}. */
        public Options withFp4Search(int grp) {
            return new Options(precision, int8Mode, threshold, fp4Format, true, fp4Method, grp, clip, sparsity, blockK, blockN, globalSparsity, exclude);
        }

        /** FP4 codes and scales chosen by {@code m} (GPTQ needs calibration inputs). */
        public Options withFp4Method(Fp4Method m) {
            return new Options(precision, int8Mode, threshold, fp4Format, fp4Search, m, group, clip, sparsity, blockK, blockN, globalSparsity, exclude);
        }

        /** True when {@link #apply} needs calibration inputs (FP4 with the format search or GPTQ). */
        public boolean needsCalibration() { return precision == Precision.FP4 && (fp4Search || fp4Method == Fp4Method.GPTQ); }

        public Options withSparsity(double s) {
            return new Options(precision, int8Mode, threshold, fp4Format, fp4Search, fp4Method, group, clip, s, blockK, blockN, globalSparsity, exclude);
        }

        public Options withBlock(int bk, int bn, boolean global) {
            return new Options(precision, int8Mode, threshold, fp4Format, fp4Search, fp4Method, group, clip, sparsity, bk, bn, global, exclude);
        }

        public Options withExclude(List<String> patterns) {
            return new Options(precision, int8Mode, threshold, fp4Format, fp4Search, fp4Method, group, clip, sparsity, blockK, blockN, globalSparsity, patterns);
        }

        /** True when {@link #apply} changes the graph (int8, fp4, or sparsity). */
        public boolean rewrites() { return precision == Precision.INT8 || precision == Precision.FP4 || sparsity > 0; }

        /** "int8 (llm, threshold 6.0), sparsity 0.50 (4x1 blocks, per layer)". */
        public String describe() {
            StringBuilder sb = new StringBuilder(precision.name().toLowerCase(Locale.ROOT));
            if (precision == Precision.INT8) {
                sb.append(" (").append(int8Mode.name().toLowerCase(Locale.ROOT));
                if (int8Mode == QuantKernels.Int8Mode.LLM) sb.append(", threshold ").append(threshold);
                sb.append(')');
            }
            if (precision == Precision.FP4) {
                sb.append(" (").append(fp4Method == Fp4Method.GPTQ ? "gptq, " : "")
                        .append(fp4Search ? (fp4Method == Fp4Method.GPTQ ? "searched format" : "searched format/clip") : fp4Format + (clip < 1 ? ", clip " + clip : ""))
                        .append(", group ").append(group == 0 ? "per-channel" : group).append(')');
            }
            if (sparsity > 0) {
                sb.append(String.format(Locale.ROOT, ", sparsity %.2f (%dx%d blocks along KxN, %s)", sparsity, blockK, blockN, globalSparsity ? "global" : "per layer"));
            }
            if (!exclude.isEmpty()) sb.append(", excluding ").append(exclude);
            return sb.toString();
        }

        boolean excluded(String name) {
            for (String p : exclude) {
                if (p.startsWith("re:")) {
                    if (Pattern.compile(p.substring(3)).matcher(name).find()) return true;
                } else if (p.contains("*")) {
                    StringBuilder re = new StringBuilder();
                    for (String part : p.split("\\*", -1)) re.append(re.isEmpty() ? "" : ".*").append(Pattern.quote(part));
                    if (name.matches(re.toString())) return true;
                } else if (name.contains(p)) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * One layer of the report.
     *
     * @param name        the node's name
     * @param n           output features
     * @param k           input features
     * @param scheme      "fp32", "bf16", "llm_int8", "w8a8", "w8a32", "fp4/E2M1/g64", or "skipped: why"
     * @param sparsity    fraction of weights that are zero after pruning
     * @param bytesBefore f32 weight bytes
     * @param bytesAfter  bytes of the stored weight (codes + scales; dense for fp32/bf16)
     * @param bsrBytes    bytes as BSR (values of the kept blocks + 4-byte column index per block +
     *                    row pointers) when pruned, else bytesAfter
     */
    public record Layer(String name, long n, long k, String scheme, double sparsity, long bytesBefore, long bytesAfter, long bsrBytes) {}

    /** The conversion report: one row per linear layer, and the totals. */
    public record Report(Options options, List<Layer> layers) {
        public long bytesBefore() { return layers.stream().mapToLong(Layer::bytesBefore).sum(); }

        public long bytesAfter() { return layers.stream().mapToLong(Layer::bytesAfter).sum(); }

        public long bsrBytes() { return layers.stream().mapToLong(Layer::bsrBytes).sum(); }

        /** A table: layer, shape, scheme, sparsity, bytes before/after (and as BSR), then the totals. */
        public String table() {
            StringBuilder sb = new StringBuilder();
            sb.append("conversion: ").append(options.describe()).append('\n');
            sb.append(String.format(Locale.ROOT, "%-48s %-11s %-22s %8s %12s %12s %12s%n", "layer", "[N, K]", "scheme", "sparsity", "bytes_before", "bytes_after", "as_bsr"));
            for (Layer l : layers) {
                sb.append(String.format(Locale.ROOT, "%-48s %-11s %-22s %8.3f %12d %12d %12d%n", l.name(), "[" + l.n() + ", " + l.k() + "]", l.scheme(),
                        l.sparsity(), l.bytesBefore(), l.bytesAfter(), l.bsrBytes()));
            }
            sb.append(String.format(Locale.ROOT, "%-48s %-11s %-22s %8s %12d %12d %12d   (x%.2f smaller; x%.2f as BSR)%n", "total (" + layers.size() + " layers)", "", "", "",
                    bytesBefore(), bytesAfter(), bsrBytes(), bytesBefore() / (double) Math.max(1, bytesAfter()),
                    bytesBefore() / (double) Math.max(1, bsrBytes())));
            return sb.toString();
        }

        @Override
        public String toString() { return table(); }
    }

    /** The session precision that goes with {@code o}: BF16 for {@link Precision#BF16}, else F32. */
    public static DType sessionPrecision(Options o) { return o.precision() == Precision.BF16 ? DType.BF16 : DType.F32; }

    /** FP4 formats the search tries. */
    static final Set<Fp4.Format> SEARCH_FORMATS = EnumSet.of(Fp4.Format.E2M1, Fp4.Format.E1M2, Fp4.Format.E3M0, Fp4.Format.NF4);
    /** Clipping ratios the search tries. */
    static final float[] SEARCH_CLIPS = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.7f};
    /**
     * Calibration sentences for the FP4 format search and GPTQ (varied topics, lengths and
     * languages; disjoint from the evaluation sentences, queries and documents of the accuracy
     * harness, which a test checks). The first 8 are the format search's original set.
     */
    public static final List<String> CALIBRATION_SENTENCES = List.of(
            "The committee approved the budget after a long debate.",
            "Researchers measured the temperature of the ocean at different depths.",
            "Can you recommend a good restaurant near the train station?",
            "Les enfants jouent dans le parc après l'école.",
            "The software update fixes several security vulnerabilities.",
            "She adopted a small dog from the local shelter last spring.",
            "Heavy rain caused flooding in several low-lying neighborhoods.",
            "The algorithm sorts the list in linear time when the keys are small integers.",
            "What time does the pharmacy on Main Street close on Sundays?",
            "The city council voted to extend the bicycle lanes along the river.",
            "Neural networks learn representations by adjusting millions of weights.",
            "My laptop battery drains quickly when I watch videos.",
            "The lighthouse keeper lit the lamp every evening at dusk.",
            "Add salt to the boiling water before you put in the pasta.",
            "The central bank raised its key rate by a quarter of a percentage point.",
            "A hash table gives constant-time lookups on average.",
            "The hikers reached the summit just before the fog rolled in.",
            "Please send me the invoice by the end of the week.",
            "The vaccine trial enrolled more than ten thousand volunteers.",
            "Jupiter has dozens of moons, the largest of which is Ganymede.",
            "Our landlord finally fixed the broken heating in the apartment.",
            "The goalkeeper saved a penalty in the last minute of the match.",
            "Wie spät ist es bitte?",
            "Ich habe meinen Regenschirm im Zug vergessen.",
            "El museo abre de martes a domingo a las diez.",
            "Me gustaría reservar una mesa para cuatro personas.",
            "Nous avons visité le château pendant les vacances d'été.",
            "La réunion est reportée à jeudi prochain.",
            "A reunião foi cancelada por causa da greve.",
            "Сегодня в Москве идёт снег.",
            "私は毎朝コーヒーを飲みます。",
            "今日はとても暑いですね。",
            "北京是中国的首都。",
            "أحب قراءة الكتب في المساء.",
            "OK",
            "thanks!",
            "yes or no?",
            "Version 2.3.1 was released on 2023-11-04 with 17 bug fixes.",
            "Call +1 (555) 010-9999 or write to support@example.org for help.",
            "The total comes to $1,249.99 including tax and shipping.",
            "x = (-b ± sqrt(b^2 - 4ac)) / 2a solves the quadratic equation.",
            "def add(a, b): return a + b  # a tiny Python function",
            "SELECT name, age FROM users WHERE age > 30 ORDER BY name;",
            "😀😀 great news!!! 🎉",
            "#MondayMotivation keep going, you're doing great",
            "LOL that was the funniest thing I've seen all week",
            "Terms and conditions apply; see the website for details.",
            "The contract may be terminated by either party with thirty days' written notice.",
            "Symptoms include headache, fatigue and a loss of appetite.",
            "The telescope captured images of a galaxy thirteen billion light years away.",
            "Farmers are worried that the drought will ruin this year's harvest.",
            "The train to Edinburgh departs from platform nine at half past seven.",
            "Students must submit their essays before the deadline on Friday.",
            "The painter mixed blue and yellow to get a bright green.",
            "Electric cars are becoming cheaper as battery prices fall.",
            "He apologized for the misunderstanding and offered to pay for the damage.",
            "In the beginning the universe was created; this has made a lot of people very angry and been widely regarded as a bad move.",
            "After months of negotiations, the two companies announced a merger that will create the largest logistics firm in the region, "
                    + "although regulators are expected to review the deal closely before it can be completed next year.",
            "To configure the server, edit the configuration file, set the port to 8080, enable logging, restart the service, "
                    + "and then check the status page to make sure every component reports that it is healthy.",
            "The old fisherman told us stories about storms, shipwrecks and the strange lights he had seen over the water on winter nights, "
                    + "and we listened until the fire burned down and the stars came out above the harbour.",
            "Le gouvernement a présenté un projet de loi visant à réduire les émissions de gaz à effet de serre de moitié d'ici 2035, "
                    + "mais plusieurs associations estiment que les mesures proposées restent insuffisantes.",
            "La inteligencia artificial está cambiando la forma en que trabajamos, aprendemos y nos comunicamos, "
                    + "y plantea preguntas importantes sobre la privacidad y el empleo.",
            "Die Wissenschaftler untersuchten die Auswirkungen des Klimawandels auf die Artenvielfalt in den Alpen über einen Zeitraum von zwanzig Jahren.",
            "Shopping list: milk, bread, apples, cheese, tomatoes, rice, coffee, and batteries for the remote control.");

    /** FP4 formats GPTQ tries when the format is searched (the one with the least calibration error is kept). */
    static final List<Fp4.Format> GPTQ_FORMATS = List.of(Fp4.Format.E2M1, Fp4.Format.NF4);
    /** GPTQ's settings in {@link #apply}. */
    static final Gptq.Params GPTQ_PARAMS = Gptq.Params.DEFAULT;
    /** Calibration rows kept per layer for the search. */
    static final int CALIBRATION_ROWS = 256;

    /** The linear layers {@link #apply} would convert: LINEAR nodes with a constant 2-D f32 weight. */
    public static List<Node> linearLayers(Graph g) {
        List<Node> r = new ArrayList<>();
        for (Node n : g.nodes()) {
            if (n.op() != Op.LINEAR) continue;
            Value w = n.input(1);
            if (w != null && w.isConstant() && w.constantData().rank() == 2 && w.dtype() == DType.F32) r.add(n);
        }
        return r;
    }

    /**
     * Converts the linear layers of {@code g} (optimized by {@link Passes#optimize}) in place.
     *
     * @param ctx         the context the quantization kernels (and the calibration run) use
     * @param calibration inputs (by graph input name) run through the unconverted graph to
     *                    collect each layer's activations for the FP4 search or GPTQ (may be
     *                    batches: rows where an integer input named "*mask*" [batch, seq] is 0
     *                    are padding and left out); may be empty otherwise
     * @return the report (weight bytes per layer, before and after)
     * @throws IllegalArgumentException when the FP4 search or GPTQ is asked for without calibration inputs
     * @throws GraphException           when the graph has no shapes inferred
     */
    public static Report apply(Graph g, Context ctx, Options o, List<Map<String, TensorData>> calibration) {
        Objects.requireNonNull(g, "graph");
        Objects.requireNonNull(ctx, "context");
        Objects.requireNonNull(o, "options");
        Objects.requireNonNull(calibration, "calibration");
        List<Node> all = linearLayers(g);
        List<Node> targets = new ArrayList<>();
        List<Layer> rows = new ArrayList<>();
        Map<Node, Layer> skipped = new IdentityHashMap<>();
        for (Node n : all) {
            if (o.excluded(n.name())) skipped.put(n, layerOf(n, "skipped: excluded", 0));
            else targets.add(n);
        }
        boolean gptq = o.precision() == Precision.FP4 && o.fp4Method() == Fp4Method.GPTQ;
        boolean search = o.precision() == Precision.FP4 && o.fp4Search() && !gptq;
        if (o.needsCalibration() && calibration.isEmpty()) {
            throw new IllegalArgumentException("the FP4 " + (gptq ? "GPTQ conversion" : "format search") + " needs calibration inputs");
        }
        Map<Node, float[]> acts = search ? capture(g, ctx, targets, calibration) : Map.of();
        Map<Node, double[]> hessians = gptq ? captureHessians(g, ctx, targets, calibration) : Map.of();
        Map<double[], Gptq.Factor> factors = new IdentityHashMap<>();

        // weights as [N, K] floats
        Map<Node, float[]> w = new IdentityHashMap<>();
        for (Node n : targets) w.put(n, weightNK(n));
        // magnitude block pruning
        Map<Node, Double> zeroFrac = new IdentityHashMap<>();
        Map<Node, boolean[]> keep = new IdentityHashMap<>();
        if (o.sparsity() > 0) prune(targets, w, o, zeroFrac, keep);

        try (Arena tmp = Arena.ofConfined()) {
            for (Node n : all) {
                if (skipped.containsKey(n)) {
                    rows.add(skipped.get(n));
                    continue;
                }
                float[] wnk = w.get(n);
                long nOut = outFeatures(n), k = inFeatures(n);
                double zf = zeroFrac.getOrDefault(n, 0.0);
                boolean blocksFit = nOut % o.blockN() == 0 && k % o.blockK() == 0;
                if (keep.containsKey(n) && o.precision() != Precision.FP4) {     // block-sparse: BSR through BlockSparse's SpMM
                    Tensor wt = Tensor.allocate(tmp, DType.F32, nOut, k);
                    wt.copyFrom(wnk);
                    DType dt = switch (o.precision()) {
                        case BF16 -> DType.BF16;
                        case INT8 -> DType.I8;
                        default -> DType.F32;
                    };
                    byte[] blob;
                    try (BlockSparse.Weight bw = BlockSparse.fromMask(ctx, wt, true, o.blockK(), o.blockN(), keep.get(n), dt)) {
                        blob = bw.toByteArray();
                    }
                    TensorData codes = TensorData.allocate(g.arena(), DType.U8, blob.length);
                    MemorySegment.copy(blob, 0, codes.segment(), ValueLayout.JAVA_BYTE, 0, blob.length);
                    Map<String, Object> attrs = new LinkedHashMap<>();
                    attrs.put("scheme", "bsr");
                    attrs.put("n", nOut);
                    attrs.put("block", o.blockK() + "x" + o.blockN());
                    replaceWithQLinear(g, n, codes, null, k, attrs);
                    String scheme = "bsr/" + dt.name().toLowerCase(Locale.ROOT) + (dt == DType.I8 ? " (w8a8)" : "") + "/" + o.blockK() + "x" + o.blockN();
                    rows.add(new Layer(n.name(), nOut, k, scheme, zf, nOut * k * 4, blob.length, blob.length));
                    continue;
                }
                switch (o.precision()) {
                    case FP32, BF16 -> {
                        if (o.sparsity() > 0) replaceDenseWeight(g, n, wnk);
                        int es = o.precision() == Precision.BF16 ? 2 : 4;
                        long after = nOut * k * es;
                        rows.add(new Layer(n.name(), nOut, k, o.precision().name().toLowerCase(Locale.ROOT), zf, nOut * k * 4, after,
                                o.sparsity() > 0 && blocksFit ? bsrBytes(nOut, k, zf, o, es) : after));
                    }
                    case INT8 -> {
                        Tensor wt = Tensor.allocate(tmp, DType.F32, nOut, k);
                        wt.copyFrom(wnk);
                        TensorData codes = TensorData.allocate(g.arena(), DType.I8, nOut, k);
                        TensorData scales = TensorData.allocate(g.arena(), DType.F32, nOut);
                        QuantKernels.quantizeInt8Weight(ctx, wt, codes.asTensor(), scales.asTensor());
                        String scheme = switch (o.int8Mode()) {
                            case LLM -> "llm_int8";
                            case W8A8 -> "w8a8";
                            case WEIGHT_ONLY -> "w8a32";
                        };
                        Map<String, Object> attrs = new LinkedHashMap<>();
                        attrs.put("scheme", scheme);
                        attrs.put("threshold", o.threshold());
                        replaceWithQLinear(g, n, codes, scales, k, attrs);
                        long after = nOut * k + 4 * nOut;
                        rows.add(new Layer(n.name(), nOut, k, scheme, zf, nOut * k * 4, after,
                                o.sparsity() > 0 && blocksFit ? bsrBytes(nOut, k, zf, o, 1) + 4 * nOut : after));
                    }
                    case FP4 -> {
                        int group = o.group();
                        if (k % 2 != 0 || (group != 0 && k % group != 0)) {
                            if (o.sparsity() > 0) replaceDenseWeight(g, n, wnk);
                            rows.add(layerOf(n, "skipped: K=" + k + " not a multiple of group " + group, zf));
                            continue;
                        }
                        Tensor wt = Tensor.allocate(tmp, DType.F32, nOut, k);
                        wt.copyFrom(wnk);
                        Fp4.Format format = o.fp4Format();
                        float clip = (float) o.clip();
                        if (search) {
                            float[] a = acts.get(n);
                            Tensor xt = Tensor.allocate(tmp, DType.F32, a.length / k, k);
                            xt.copyFrom(a);
                            Fp4.SearchResult r = Fp4.search(ctx, wt, xt, group, SEARCH_FORMATS, SEARCH_CLIPS);
                            format = r.format();
                            clip = r.clip();
                        }
                        long groups = group == 0 ? 1 : k / group;
                        TensorData codes = TensorData.allocate(g.arena(), DType.U8, nOut, k / 2);
                        TensorData scales = TensorData.allocate(g.arena(), DType.F32, nOut, groups);
                        if (gptq) {
                            double[] h = hessians.get(n);
                            if (h == null) {            // never reached by the calibration run: no compensation (H = I)
                                h = new double[(int) (k * k)];
                                for (int i = 0; i < k; i++) h[(int) (i * k + i)] = 1;
                            }
                            Gptq.Factor f = factors.computeIfAbsent(h, hh -> Gptq.factor(hh, (int) k, GPTQ_PARAMS));
                            Gptq.Result best = null;
                            for (Fp4.Format fm : o.fp4Search() ? GPTQ_FORMATS : List.of(format)) {
                                Gptq.Result r = Gptq.quantize(wnk, (int) nOut, (int) k, f, Fp4.levels(fm), group, GPTQ_PARAMS);
                                if (best == null || r.loss() < best.loss()) {
                                    best = r;
                                    format = fm;
                                }
                            }
                            MemorySegment.copy(best.codes(), 0, codes.segment(), ValueLayout.JAVA_BYTE, 0, best.codes().length);
                            MemorySegment.copy(best.scales(), 0, scales.segment(), ValueLayout.JAVA_FLOAT, 0, best.scales().length);
                            clip = 1f;
                        } else {
                            Fp4.quantize(ctx, wt, format, group, clip, null, Tensor.wrap(codes.segment(), DType.U4, nOut, k), scales.asTensor());
                        }
                        Map<String, Object> attrs = new LinkedHashMap<>();
                        attrs.put("scheme", "fp4");
                        attrs.put("format", format.name());
                        attrs.put("group", (long) group);
                        attrs.put("clip", (double) clip);
                        if (gptq) attrs.put("method", "gptq");
                        replaceWithQLinear(g, n, codes, scales, k, attrs);
                        long after = nOut * k / 2 + 4 * nOut * groups;
                        rows.add(new Layer(n.name(), nOut, k, "fp4/" + format + "/g" + group + (clip < 1 ? String.format(Locale.ROOT, "/c%.2f", clip) : "")
                                + (gptq ? "/gptq" : ""), zf,
                                nOut * k * 4, after, after));
                    }
                }
            }
        }
        Passes.eliminateDeadCode(g);
        g.validate();
        return new Report(o, rows);
    }

    private static Layer layerOf(Node n, String scheme, double zf) {
        long nOut = outFeatures(n), k = inFeatures(n);
        return new Layer(n.name(), nOut, k, scheme, zf, nOut * k * 4, nOut * k * 4, nOut * k * 4);
    }

    private static long bsrBytes(long nOut, long k, double zeroFrac, Options o, int elemBytes) {
        long blocks = (nOut / o.blockN()) * (k / o.blockK());
        long kept = Math.round(blocks * (1 - zeroFrac));
        return kept * o.blockN() * o.blockK() * elemBytes + kept * 4 + (nOut / o.blockN() + 1) * 4;
    }

    static boolean transB(Node n) { return n.attrLong("transB", 0) != 0; }

    static long outFeatures(Node n) { return n.input(1).constantData().dim(transB(n) ? 0 : 1); }

    static long inFeatures(Node n) { return n.input(1).constantData().dim(transB(n) ? 1 : 0); }

    /** The weight of LINEAR {@code n} as a row-major [N, K] float array. */
    static float[] weightNK(Node n) {
        TensorData w = n.input(1).constantData();
        int nOut = (int) outFeatures(n), k = (int) inFeatures(n);
        float[] src = w.toFloatArray();
        if (transB(n)) return src;
        float[] r = new float[src.length];
        for (int i = 0; i < k; i++) for (int j = 0; j < nOut; j++) r[j * k + i] = src[i * nOut + j];
        return r;
    }

    /** Zeroes the smallest-norm blocks of each weight; records the zero fraction per layer. */
    private static void prune(List<Node> targets, Map<Node, float[]> w, Options o, Map<Node, Double> zeroFrac, Map<Node, boolean[]> keep) {
        int bk = o.blockK(), bn = o.blockN();
        Map<Node, double[]> norms = new IdentityHashMap<>();
        List<double[]> allNorms = new ArrayList<>();
        for (Node n : targets) {
            long nOut = outFeatures(n), k = inFeatures(n);
            if (nOut % bn != 0 || k % bk != 0) continue;
            float[] a = w.get(n);
            int rb = (int) (nOut / bn), cb = (int) (k / bk);
            double[] nm = new double[rb * cb];
            for (int r = 0; r < nOut; r++) {
                for (int c = 0; c < k; c++) {
                    double v = a[(int) (r * k + c)];
                    nm[(r / bn) * cb + c / bk] += v * v;
                }
            }
            norms.put(n, nm);
            allNorms.add(nm);
        }
        double globalThr = Double.NaN;
        if (o.globalSparsity()) {
            int total = 0;
            for (double[] nm : allNorms) total += nm.length;
            double[] cat = new double[total];
            int p = 0;
            for (double[] nm : allNorms) {
                System.arraycopy(nm, 0, cat, p, nm.length);
                p += nm.length;
            }
            globalThr = kthSmallest(cat, (int) Math.round(o.sparsity() * total));
        }
        for (Node n : targets) {
            double[] nm = norms.get(n);
            if (nm == null) continue;
            long k = inFeatures(n), nOut = outFeatures(n);
            int cb = (int) (k / bk);
            float[] a = w.get(n);
            boolean[] drop = new boolean[nm.length];
            if (o.globalSparsity()) {
                for (int i = 0; i < nm.length; i++) drop[i] = nm[i] <= globalThr;
            } else {
                int cut = (int) Math.round(o.sparsity() * nm.length);
                Integer[] idx = new Integer[nm.length];
                for (int i = 0; i < idx.length; i++) idx[i] = i;
                Arrays.sort(idx, (x, y) -> Double.compare(nm[x], nm[y]));
                for (int i = 0; i < cut; i++) drop[idx[i]] = true;
            }
            for (int r = 0; r < nOut; r++) {
                for (int c = 0; c < k; c++) if (drop[(r / bn) * cb + c / bk]) a[(int) (r * k + c)] = 0f;
            }
            long zeros = 0;
            for (float v : a) if (v == 0f) zeros++;
            zeroFrac.put(n, zeros / (double) a.length);
            // BlockSparse's mask: keep[kb * NB + nb] over the [K/blockK, N/blockN] grid
            int nb = (int) (nOut / bn);
            boolean[] kp = new boolean[drop.length];
            for (int r = 0; r < nb; r++) for (int c = 0; c < cb; c++) kp[c * nb + r] = !drop[r * cb + c];
            keep.put(n, kp);
        }
    }

    /** The value with {@code count} values at or below it (count 0: below everything). */
    private static double kthSmallest(double[] v, int count) {
        if (count <= 0) return Double.NEGATIVE_INFINITY;
        double[] s = v.clone();
        Arrays.sort(s);
        return s[Math.min(count, s.length) - 1];
    }

    /** Gives LINEAR {@code n} a new f32 weight constant holding {@code wnk} (its orientation kept). */
    private static void replaceDenseWeight(Graph g, Node n, float[] wnk) {
        TensorData old = n.input(1).constantData();
        TensorData nw = TensorData.allocate(g.arena(), DType.F32, old.shape());
        long nOut = outFeatures(n), k = inFeatures(n);
        MemorySegment s = nw.segment();
        boolean tb = transB(n);
        for (long r = 0; r < nOut; r++) {
            for (long c = 0; c < k; c++) s.setAtIndex(ValueLayout.JAVA_FLOAT, tb ? r * k + c : c * nOut + r, wnk[(int) (r * k + c)]);
        }
        n.setInput(1, g.addConstant(g.freshName(n.input(1).name() + "_pruned"), nw));
    }

    private static void replaceWithQLinear(Graph g, Node n, TensorData codes, TensorData scales, long k, Map<String, Object> attrs) {
        String base = n.name().isEmpty() ? n.output(0).name() : n.name();
        Value c = g.addConstant(g.freshName(base + ".codes"), codes);
        Value s = scales == null ? null : g.addConstant(g.freshName(base + ".scales"), scales);
        attrs.put("k", k);
        attrs.put("activation", n.attrString("activation", "none"));
        if (n.hasAttr("dtype")) attrs.put("dtype", n.attr("dtype"));
        List<Value> in = new ArrayList<>(java.util.Arrays.asList(n.input(0), c, s));
        in.add(n.input(2));
        in.add(n.input(3));
        while (!in.isEmpty() && in.getLast() == null) in.removeLast();
        Node q = new Node(Op.QLINEAR, n.name(), in, n.outputs(), attrs);
        int at = g.indexOf(n);
        g.removeNodes(List.of(n));
        g.insertNode(at, q);
    }

    // ================================================================ calibration

    /**
     * Runs the (unconverted) graph on each calibration input and keeps, for every target layer,
     * up to {@link #CALIBRATION_ROWS} rows of its input activations [rows, K].
     */
    static Map<Node, float[]> capture(Graph g, Context ctx, List<Node> targets, List<Map<String, TensorData>> calibration) {
        Map<Node, List<float[]>> rows = new IdentityHashMap<>();
        eachTargetInput(g, ctx, targets, calibration, (n, x, mask, input) -> {
            List<float[]> l = rows.computeIfAbsent(n, key -> new ArrayList<>());
            int k = (int) x.dim(1);
            float[] all = realRows(x, mask);
            for (int r = 0; r < all.length / k && l.size() < CALIBRATION_ROWS; r++) l.add(Arrays.copyOfRange(all, r * k, (r + 1) * k));
        });
        Map<Node, float[]> out = new IdentityHashMap<>();
        for (Map.Entry<Node, List<float[]>> e : rows.entrySet()) {
            List<float[]> l = e.getValue();
            int k = l.getFirst().length;
            float[] a = new float[l.size() * k];
            for (int i = 0; i < l.size(); i++) System.arraycopy(l.get(i), 0, a, i * k, k);
            out.put(e.getKey(), a);
        }
        return out;
    }

    /**
     * Runs the (unconverted) graph on each calibration input and sums, for every target layer,
     * the second moment of its input activations H = sum over tokens of x xᵀ [K, K] (double;
     * layers reading the same value share one array). The products run through {@link Kernels#matmul}.
     */
    static Map<Node, double[]> captureHessians(Graph g, Context ctx, List<Node> targets, List<Map<String, TensorData>> calibration) {
        Map<Value, double[]> byValue = new IdentityHashMap<>();
        Map<Value, Integer> lastInput = new IdentityHashMap<>(); // a value shared by layers is summed once per input
        Map<Node, double[]> out = new IdentityHashMap<>();
        eachTargetInput(g, ctx, targets, calibration, (n, x, mask, input) -> {
            Value key = n.input(0);
            int k = (int) x.dim(1);
            double[] h = byValue.computeIfAbsent(key, v -> new double[k * k]);
            out.put(n, h);
            Integer seen = lastInput.put(key, input);
            if (seen == null || seen != input) {
                float[] rowsX = realRows(x, mask);
                if (rowsX.length > 0) addGram(ctx, rowsX, rowsX.length / k, k, h);
            }
        });
        return out;
    }

    /** What {@link #eachTargetInput} hands over: a target layer, its input [rows, K], the token mask, the input's index. */
    private interface TargetInput {
        void accept(Node n, TensorData x, boolean[] mask, int input);
    }

    /** Runs the (unconverted) graph on each calibration input; right before each target layer runs, visits its input. */
    private static void eachTargetInput(Graph g, Context ctx, List<Node> targets, List<Map<String, TensorData>> calibration, TargetInput visit) {
        Set<Node> want = Graph.identitySet(targets);
        try (Session s = Session.create(g, ctx)) {
            for (int c = 0; c < calibration.size(); c++) {
                Map<String, TensorData> in = calibration.get(c);
                Plan p = s.plan(s.bind(in));
                for (Value v : g.inputs()) {
                    TensorData src = in.get(v.name()), dst = p.view(v);
                    if (src.dtype() == dst.dtype()) src.copyTo(dst);
                    else for (long i = 0; i < src.numel(); i++) dst.setLong(i, src.getLong(i));
                }
                Runnable[] bound = p.bound(s);
                List<Plan.Step> steps = p.steps();
                boolean[] mask = tokenMask(in);
                for (int i = 0; i < bound.length; i++) {
                    Node n = steps.get(i).node();
                    if (want.contains(n)) visit.accept(n, steps.get(i).in()[0].asMatrix(), mask, c);
                    bound[i].run();
                }
            }
        }
    }

    /**
     * The real (not padding) tokens of a calibration input: an integer 2-D input whose name
     * contains "mask" (a transformer's attention_mask [batch, seq]), nonzero = real; null when
     * there is none (every row counts).
     */
    static boolean[] tokenMask(Map<String, TensorData> in) {
        for (Map.Entry<String, TensorData> e : in.entrySet()) {
            TensorData t = e.getValue();
            if (!e.getKey().toLowerCase(Locale.ROOT).contains("mask") || t.rank() != 2 || t.dtype().isFloat()) continue;
            boolean[] m = new boolean[(int) t.numel()];
            for (int i = 0; i < m.length; i++) m[i] = t.getLong(i) != 0;
            return m;
        }
        return null;
    }

    /** The rows of x [rows, K] that are real tokens (all of them when the mask is null or does not match the row count). */
    private static float[] realRows(TensorData x, boolean[] mask) {
        float[] all = x.toFloatArray();
        int rows = (int) x.dim(0), k = (int) x.dim(1);
        if (mask == null || mask.length != rows) return all;
        int kept = 0;
        for (boolean b : mask) if (b) kept++;
        if (kept == rows) return all;
        float[] r = new float[kept * k];
        int o = 0;
        for (int i = 0; i < rows; i++) {
            if (!mask[i]) continue;
            System.arraycopy(all, i * k, r, o * k, k);
            o++;
        }
        return r;
    }

    /** h += xᵀ x for x [rows, K] (f32 products by the GEMM, accumulated in double). */
    private static void addGram(Context ctx, float[] x, int rows, int k, double[] h) {
        float[] xt = new float[k * rows];
        for (int r = 0; r < rows; r++) for (int c = 0; c < k; c++) xt[c * rows + r] = x[r * k + c];
        try (Arena a = Arena.ofConfined()) {
            Tensor at = Tensor.allocate(a, DType.F32, k, rows);
            at.copyFrom(xt);
            Tensor c = Tensor.allocate(a, DType.F32, k, k);
            dev.panatron.Kernels.matmul(ctx, at, at, null, c, dev.panatron.Kernels.MatmulOptions.LINEAR);
            float[] cv = c.toFloatArray();
            for (int i = 0; i < cv.length; i++) h[i] += cv[i];
        }
    }

    // ================================================================ save / load

    /** The {@code panatron.format} metadata value of converted-layer files. */
    public static final String FILE_FORMAT = "panatron-compressed-linear/1";

    /**
     * Saves the converted linear layers of {@code g} (QLINEAR codes and scales, and pruned dense
     * weights) to {@code file}, a safetensors file: tensors {@code <layer>.codes} (I8 [N, K] for
     * int8, U8 [N, K/2] two fp4 codes per byte, low nibble first), {@code <layer>.scales} (F32
     * [N] or [N, K/group]) and {@code <layer>.weight} (F32 [N, K], pruned fp32/bf16 layers);
     * {@code __metadata__} holds {@code panatron.format} = {@value #FILE_FORMAT},
     * {@code panatron.source} (the model the layers belong to), {@code panatron.options},
     * {@code panatron.layers} (names, one per line), {@code <layer>#attrs} (scheme, k, format,
     * group, clip, threshold as {@code key=value;...}) and {@code <tensor>#crc32}. The rest of the
     * model (embeddings, norms, attention) is the source model's, which {@link #load} is given.
     * Written to a temporary file in the same folder, then renamed over {@code file}.
     *
     * @throws java.io.IOException when the file cannot be written
     */
    public static void save(Graph g, Path file, String source, Options options) throws java.io.IOException {
        Objects.requireNonNull(g, "graph");
        Objects.requireNonNull(file, "file");
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("panatron.format", FILE_FORMAT);
        meta.put("panatron.source", source == null ? "" : source);
        meta.put("panatron.options", options == null ? "" : options.describe());
        StringBuilder names = new StringBuilder();
        for (Node n : g.nodes()) {
            if (n.op() == Op.QLINEAR) {
                StringBuilder attrs = new StringBuilder();
                for (String key : List.of("scheme", "k", "format", "group", "clip", "threshold", "method")) {
                    if (n.hasAttr(key)) attrs.append(key).append('=').append(n.attr(key)).append(';');
                }
                if (n.hasAttr("n")) attrs.append("n=").append(n.attr("n")).append(';');
                meta.put(n.name() + "#attrs", attrs.toString());
                if (n.attrString("scheme", "").equals("bsr")) {
                    tensors.put(n.name() + ".bsr", n.input(1).constantData());
                } else {
                    tensors.put(n.name() + ".codes", n.input(1).constantData());
                    tensors.put(n.name() + ".scales", n.input(2).constantData());
                }
            } else if (n.op() == Op.LINEAR && n.input(1).isConstant() && n.input(1).name().contains("_pruned")) {
                meta.put(n.name() + "#attrs", "scheme=dense;k=" + inFeatures(n) + ";");
                float[] w = weightNK(n);
                TensorData t = TensorData.allocate(Arena.ofAuto(), DType.F32, outFeatures(n), inFeatures(n));
                MemorySegment.copy(w, 0, t.segment(), ValueLayout.JAVA_FLOAT, 0, w.length);
                tensors.put(n.name() + ".weight", t);
            } else {
                continue;
            }
            if (n.name().isEmpty() || n.name().contains("\n")) throw new IllegalArgumentException("layer " + n + " has no usable name");
            names.append(names.isEmpty() ? "" : "\n").append(n.name());
        }
        meta.put("panatron.layers", names.toString());
        for (Map.Entry<String, TensorData> e : tensors.entrySet()) meta.put(e.getKey() + "#crc32", Long.toString(crc(e.getValue().segment())));

        com.fasterxml.jackson.databind.ObjectMapper om = new com.fasterxml.jackson.databind.ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode root = om.createObjectNode();
        com.fasterxml.jackson.databind.node.ObjectNode m = root.putObject("__metadata__");
        meta.forEach(m::put);
        long off = 0;
        for (Map.Entry<String, TensorData> e : tensors.entrySet()) {
            TensorData t = e.getValue();
            com.fasterxml.jackson.databind.node.ObjectNode o = root.putObject(e.getKey());
            o.put("dtype", switch (t.dtype()) {
                case F32 -> "F32";
                case I8 -> "I8";
                case U8 -> "U8";
                default -> throw new IllegalStateException("unexpected dtype " + t.dtype());
            });
            var sh = o.putArray("shape");
            for (long d : t.shape()) sh.add(d);
            var dof = o.putArray("data_offsets");
            dof.add(off);
            dof.add(off + t.byteSize());
            off += t.byteSize();
        }
        byte[] header = om.writeValueAsBytes(root);
        int pad = (int) ((8 - (header.length % 8)) % 8);
        Path dir = file.toAbsolutePath().getParent();
        java.nio.file.Files.createDirectories(dir);
        Path tmpFile = java.nio.file.Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        try {
            try (var ch = java.nio.channels.FileChannel.open(tmpFile, java.nio.file.StandardOpenOption.WRITE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
                java.nio.ByteBuffer len = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(header.length + pad).flip();
                writeFully(ch, len);
                writeFully(ch, java.nio.ByteBuffer.wrap(header));
                writeFully(ch, java.nio.ByteBuffer.wrap(" ".repeat(pad).getBytes(java.nio.charset.StandardCharsets.US_ASCII)));
                for (TensorData t : tensors.values()) writeFully(ch, t.segment().asByteBuffer());
                ch.force(true);
            }
            java.nio.file.Files.move(tmpFile, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } finally {
            java.nio.file.Files.deleteIfExists(tmpFile);
        }
    }

    private static void writeFully(java.nio.channels.FileChannel ch, java.nio.ByteBuffer b) throws java.io.IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    private static long crc(MemorySegment s) {
        java.util.zip.CRC32 c = new java.util.zip.CRC32();
        c.update(s.asByteBuffer());
        return c.getValue();
    }

    /**
     * Applies the layers saved by {@link #save} to {@code g}, the source model's graph optimized
     * by {@link Passes#optimize} (not converted): each named LINEAR becomes the saved QLINEAR
     * (or gets the saved pruned weight). The file stays mapped until the graph is closed.
     *
     * @return the options description stored in the file
     * @throws java.io.IOException                  when the file cannot be read
     * @throws dev.panatron.io.ModelFormatException when it is not such a file, a tensor is
     *         missing, has the wrong dtype or shape for the layer, or fails its checksum (the
     *         message names the file, the tensor and its offsets)
     */
    public static String load(Graph g, Path file) throws java.io.IOException {
        Objects.requireNonNull(g, "graph");
        dev.panatron.io.Safetensors st = dev.panatron.io.Safetensors.open(file);
        boolean ok = false;
        try {
            Map<String, String> meta = st.metadata();
            if (!FILE_FORMAT.equals(meta.get("panatron.format"))) {
                throw new dev.panatron.io.ModelFormatException(file, "not a converted-layers file: __metadata__ panatron.format is "
                        + (meta.get("panatron.format") == null ? "absent" : "'" + meta.get("panatron.format") + "'") + ", expected '" + FILE_FORMAT + "'");
            }
            Map<String, Node> linear = new LinkedHashMap<>();
            for (Node n : linearLayers(g)) linear.put(n.name(), n);
            String layers = meta.getOrDefault("panatron.layers", "");
            for (String name : layers.isEmpty() ? List.<String>of() : List.of(layers.split("\n"))) {
                Node n = linear.get(name);
                if (n == null) {
                    throw new dev.panatron.io.ModelFormatException(file, "layer '" + name + "' is not an unconverted linear layer of graph '" + g.name()
                            + "' (saved from " + meta.get("panatron.source") + ")");
                }
                Map<String, String> attrs = new LinkedHashMap<>();
                for (String kv : meta.getOrDefault(name + "#attrs", "").split(";")) {
                    int eq = kv.indexOf('=');
                    if (eq > 0) attrs.put(kv.substring(0, eq), kv.substring(eq + 1));
                }
                String scheme = attrs.get("scheme");
                if (scheme == null) throw new dev.panatron.io.ModelFormatException(file, "layer '" + name + "': __metadata__ '" + name + "#attrs' has no scheme");
                long nOut = outFeatures(n), k = inFeatures(n);
                if (!Long.toString(k).equals(attrs.get("k"))) {
                    throw new dev.panatron.io.ModelFormatException(file, "layer '" + name + "': saved for K=" + attrs.get("k") + " but the graph's layer has K=" + k);
                }
                if (scheme.equals("dense")) {
                    TensorData w = checked(st, file, name + ".weight", DType.F32, nOut, k);
                    float[] a = w.toFloatArray();
                    replaceDenseWeight(g, n, a);
                    continue;
                }
                if (scheme.equals("bsr")) {
                    if (!st.contains(name + ".bsr")) throw new dev.panatron.io.ModelFormatException(file, "tensor '" + name + ".bsr' is missing");
                    if (st.entry(name + ".bsr").shape().length != 1) throw new dev.panatron.io.ModelFormatException(file, "tensor '" + name + ".bsr' must be 1-D U8");
                    TensorData blob = checked(st, file, name + ".bsr", DType.U8, st.entry(name + ".bsr").shape());
                    try (BlockSparse.Weight bw = BlockSparse.load(blob.segment())) {
                        if (bw.k() != k || bw.n() != nOut) {
                            throw new dev.panatron.io.ModelFormatException(file, "tensor '" + name + ".bsr' holds a [" + bw.k() + ", " + bw.n()
                                    + "] weight, the layer is [" + k + ", " + nOut + "] (K, N)");
                        }
                    } catch (dev.panatron.PanatronException e) {
                        throw new dev.panatron.io.ModelFormatException(file, "tensor '" + name + ".bsr' is not a valid BSR weight: " + e.getMessage());
                    }
                    Map<String, Object> ba = new LinkedHashMap<>();
                    ba.put("scheme", "bsr");
                    ba.put("n", nOut);
                    replaceWithQLinear(g, n, blob, null, k, ba);
                    continue;
                }
                boolean fp4 = scheme.equals("fp4");
                if (!fp4 && !List.of("llm_int8", "w8a8", "w8a32").contains(scheme)) {
                    throw new dev.panatron.io.ModelFormatException(file, "layer '" + name + "': unknown scheme '" + scheme + "'");
                }
                long groups = 1;
                Map<String, Object> qa = new LinkedHashMap<>();
                qa.put("scheme", scheme);
                try {
                    if (fp4) {
                        Fp4.Format.valueOf(attrs.get("format"));
                        long group = Long.parseLong(attrs.get("group"));
                        if (group != 0 && group != 32 && group != 64 && group != 128 || group != 0 && k % group != 0) throw new NumberFormatException("group " + group);
                        groups = group == 0 ? 1 : k / group;
                        qa.put("format", attrs.get("format"));
                        qa.put("group", group);
                        qa.put("clip", Double.parseDouble(attrs.getOrDefault("clip", "1")));
                    } else {
                        qa.put("threshold", Double.parseDouble(attrs.getOrDefault("threshold", "6")));
                    }
                } catch (RuntimeException e) {
                    throw new dev.panatron.io.ModelFormatException(file, "layer '" + name + "': bad attributes '" + meta.get(name + "#attrs") + "': " + e.getMessage());
                }
                TensorData codes = fp4 ? checked(st, file, name + ".codes", DType.U8, nOut, k / 2) : checked(st, file, name + ".codes", DType.I8, nOut, k);
                TensorData scales = fp4 ? checked(st, file, name + ".scales", DType.F32, nOut, groups) : checked(st, file, name + ".scales", DType.F32, nOut);
                replaceWithQLinear(g, n, codes, scales, k, qa);
            }
            Passes.eliminateDeadCode(g);
            g.validate();
            g.own(st);
            ok = true;
            return meta.getOrDefault("panatron.options", "");
        } finally {
            if (!ok) st.close();
        }
    }

    private static TensorData checked(dev.panatron.io.Safetensors st, Path file, String name, DType dt, long... shape) {
        if (!st.contains(name)) throw new dev.panatron.io.ModelFormatException(file, "tensor '" + name + "' is missing");
        dev.panatron.io.Safetensors.Entry e = st.entry(name);
        String where = "tensor '" + name + "' (data_offsets [" + e.begin() + ", " + e.end() + "])";
        if (dev.panatron.io.Safetensors.dtypeOf(e.dtype()) != dt || !Arrays.equals(e.shape(), shape)) {
            throw new dev.panatron.io.ModelFormatException(file, where + " is " + e.dtype() + Arrays.toString(e.shape()) + ", expected "
                    + dt + Arrays.toString(shape));
        }
        TensorData t = st.tensor(name);
        String want = st.metadata().get(name + "#crc32");
        if (want == null) throw new dev.panatron.io.ModelFormatException(file, where + " has no '" + name + "#crc32' checksum in __metadata__");
        long got = crc(t.segment());
        if (!want.equals(Long.toString(got))) {
            throw new dev.panatron.io.ModelFormatException(file, where + " fails its checksum (crc32 " + got + ", saved " + want + "): the file is corrupt");
        }
        return t;
    }
}
