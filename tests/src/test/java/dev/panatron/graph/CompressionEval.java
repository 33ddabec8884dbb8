package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.io.OnnxImporter;
import dev.panatron.tokenize.Batch;
import dev.panatron.tokenize.WordPieceTokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The accuracy harness of the model conversions (issue 5) on the real all-MiniLM-L6-v2: a
 * model = the ONNX graph, optimized, converted with {@link Compression.Options}, run by a
 * {@link Session}; embeddings mean-pooled over the mask and L2-normalized here in double; the
 * sentences, queries and documents the figures are measured on.
 */
final class CompressionEval implements AutoCloseable {
    /** 60 evaluation sentences: topics, lengths and languages varied. */
    static final List<String> SENTENCES = List.of(
            "The cat sat quietly on the warm windowsill.",
            "Quarterly revenue grew 4% year over year, beating analyst estimates.",
            "How do I reset my password if I no longer have access to my email?",
            "The mitochondria is the powerhouse of the cell.",
            "Ceci n'est pas une pipe.",
            "¿Dónde está la biblioteca más cercana?",
            "東京は日本の首都です。",
            "Привет, как дела?",
            "Der schnelle braune Fuchs springt über den faulen Hund.",
            "I love pizza!",
            "a",
            "Hello world",
            "The Treaty of Westphalia in 1648 ended the Thirty Years' War and reshaped the political map of Europe for centuries.",
            "Gradient descent iteratively moves parameters in the direction of steepest decrease of the loss.",
            "Please preheat the oven to 180 degrees Celsius before adding the bread dough.",
            "The defendant's motion to dismiss was denied by the appellate court on Tuesday.",
            "Our flight to Lisbon was delayed by three hours because of a storm over the Atlantic.",
            "Photosynthesis converts light energy, water and carbon dioxide into glucose and oxygen.",
            "He scored twice in the final minutes, and the stadium erupted.",
            "Refunds are processed within five to seven business days after the returned item arrives.",
            "The patient presented with a persistent dry cough and mild fever for two weeks.",
            "Interest rates were left unchanged as inflation eased slightly in the third quarter.",
            "Use a binary search tree when you need ordered keys with logarithmic lookups.",
            "The orchestra played Beethoven's Ninth Symphony to a sold-out hall.",
            "Glaciers in the Alps have lost more than half of their volume since 1900.",
            "My grandmother's recipe calls for a pinch of nutmeg and plenty of butter.",
            "To install the package, run the installer and restart your computer.",
            "Volcanic eruptions can cool the global climate for several years.",
            "She finished the marathon in under three hours despite the heat.",
            "The museum's new exhibition features Impressionist paintings on loan from Paris.",
            "Error 404: the page you requested could not be found.",
            "Don't stop believin', hold on to that feelin'.",
            "emoji 🤖🚀 and symbols @#$%^&*()",
            "UPPER CASE and lower case and MiXeD CaSe text",
            "numbers 3.14159 2,718 1e-9 0x1F and dates like 2024-05-17",
            "https://example.com/path?query=1&x=y is the link you need",
            "Crème brûlée, naïve café, Zürich — accents everywhere!",
            "مرحبا بالعالم، كيف حالك اليوم؟",
            "Il pleut depuis ce matin et les rues sont inondées.",
            "La economía española creció un dos por ciento el año pasado.",
            "Die Bundesregierung plant neue Investitionen in erneuerbare Energien.",
            "O Brasil é o maior produtor de café do mundo.",
            "Quantum entanglement links the states of particles regardless of the distance between them.",
            "The new smartphone has a larger battery, a brighter screen and a faster processor.",
            "Wash your hands with soap for at least twenty seconds.",
            "The stock market fell sharply after the unexpected announcement.",
            "Our team will meet on Monday to discuss the product roadmap for next year.",
            "Honey never spoils; archaeologists have found edible honey in ancient Egyptian tombs.",
            "The bridge was closed for repairs after inspectors found cracks in the supports.",
            "Kids, please put your shoes away before dinner.",
            "A very long text about many things. ".repeat(12),
            "Rust's borrow checker prevents data races at compile time by enforcing ownership rules.",
            "The recipe needs two eggs, a cup of flour, and a teaspoon of baking powder.",
            "Solar panels on the roof now cover most of the household's electricity needs.",
            "The novel follows a young sailor who is shipwrecked on a remote island.",
            "Customer support is available twenty-four hours a day, seven days a week.",
            "unbelievable unaffordable antidisestablishmentarianism",
            "The referee showed a red card after the reckless tackle.",
            "Machine translation quality improved dramatically with attention-based models.",
            "Tomorrow will be sunny with a high of 25 degrees and light winds.");

    /** Calibration sentences for the FP4 search and GPTQ (disjoint from the evaluation sentences, queries and documents). */
    static final List<String> CALIBRATION = Compression.CALIBRATION_SENTENCES;

    static final List<String> QUERIES = List.of(
            "How do plants make food from sunlight?",
            "What is the capital city of Japan?",
            "How long does it take to get my money back after returning an item?",
            "Which programming language prevents data races at compile time?",
            "What should I do about a cough that will not go away?");

    /** 20 documents; the intended answer of query i is document {@link #ANSWERS}[i]. */
    static final List<String> DOCUMENTS = List.of(
            "Photosynthesis converts light energy, water and carbon dioxide into glucose and oxygen in plant leaves.",
            "Tokyo is the capital of Japan and its largest city.",
            "Refunds are processed within five to seven business days after we receive the returned item.",
            "Rust's ownership model and borrow checker rule out data races before the program runs.",
            "A persistent cough lasting more than three weeks should be checked by a doctor.",
            "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
            "Regular exercise improves cardiovascular health and mood.",
            "The stock market closed higher on Friday after strong earnings reports.",
            "Python is a popular language for data science and scripting.",
            "Mount Everest is the highest mountain above sea level.",
            "Our store opens at nine in the morning and closes at six in the evening.",
            "The Amazon rainforest produces a significant share of the world's oxygen.",
            "Shipping is free for orders over fifty dollars.",
            "Garbage collection frees memory that a program no longer uses.",
            "Vaccines train the immune system to recognize pathogens.",
            "The Great Wall of China stretches thousands of kilometres.",
            "Coffee contains caffeine, which is a mild stimulant.",
            "Kyoto was the imperial capital of Japan for more than a thousand years.",
            "Plants absorb water through their roots.",
            "C and C++ give programmers manual control over memory.");

    static final int[] ANSWERS = {0, 1, 2, 3, 4};

    private static Path tokenizerPath;

    /** tokenizer.json of all-MiniLM-L6-v2 (a test resource), copied to a temporary file once. */
    static synchronized WordPieceTokenizer tokenizer() {
        try {
            if (tokenizerPath == null) {
                Path p = Files.createTempFile("minilm-tokenizer-", ".json");
                p.toFile().deleteOnExit();
                try (InputStream in = CompressionEval.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
                    if (in == null) throw new IllegalStateException("all-minilm-l6-v2-tokenizer.json is not on the test classpath");
                    Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
                }
                tokenizerPath = p;
            }
            return WordPieceTokenizer.fromFile(tokenizerPath).withMaxLength(256).withPaddingToLongest();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    final Graph graph;
    final Session session;
    final Compression.Report report;
    private final WordPieceTokenizer tok;

    /** Loads MiniLM from {@code onnx}, optimizes, converts with {@code o} (calibrating on {@link #CALIBRATION}). */
    CompressionEval(Path onnx, Context ctx, Compression.Options o) throws IOException {
        this.tok = tokenizer();
        Graph g = OnnxImporter.load(onnx);
        try {
            Passes.optimize(g);
            List<Map<String, TensorData>> calib = new ArrayList<>();
            if (o.needsCalibration()) {     // batches of 8 (padding rows are left out by the mask)
                for (int i = 0; i < CALIBRATION.size(); i += 8) calib.add(inputs(tok.encodeBatch(CALIBRATION.subList(i, Math.min(CALIBRATION.size(), i + 8)))));
            }
            this.report = Compression.apply(g, ctx, o, calib);
            this.session = Session.create(g, ctx, Session.Options.DEFAULT.withPrecision(Compression.sessionPrecision(o)));
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
        this.graph = g;
    }

    /** Wraps an already converted graph. */
    CompressionEval(Graph g, Context ctx, Compression.Options o) {
        this.tok = tokenizer();
        this.graph = g;
        this.report = null;
        this.session = Session.create(g, ctx, Session.Options.DEFAULT.withPrecision(Compression.sessionPrecision(o)));
    }

    static Map<String, TensorData> inputs(Batch b) {
        Map<String, TensorData> in = new HashMap<>();
        in.put("input_ids", TensorData.ofLongs(b.idsAsLong(), b.size(), b.length()));
        in.put("attention_mask", TensorData.ofLongs(b.attentionMaskAsLong(), b.size(), b.length()));
        in.put("token_type_ids", TensorData.ofLongs(b.typeIdsAsLong(), b.size(), b.length()));
        return in;
    }

    /** Embeddings of {@code texts} (batches of 8), mean-pooled and L2-normalized in double. */
    double[][] embed(List<String> texts) {
        double[][] out = new double[texts.size()][];
        for (int from = 0; from < texts.size(); from += 8) {
            List<String> part = texts.subList(from, Math.min(texts.size(), from + 8));
            Batch b = tok.encodeBatch(part);
            TensorData h = session.run(inputs(b)).get("last_hidden_state");
            int len = b.length(), dim = (int) h.dim(2);
            float[] hs = h.toFloatArray();
            int[] mask = b.attentionMask();
            for (int s = 0; s < part.size(); s++) {
                double[] acc = new double[dim];
                int cnt = 0;
                for (int t = 0; t < len; t++) {
                    if (mask[s * len + t] == 0) continue;
                    for (int d = 0; d < dim; d++) acc[d] += hs[(s * len + t) * dim + d];
                    cnt++;
                }
                double nrm = 0;
                for (int d = 0; d < dim; d++) {
                    acc[d] /= Math.max(1, cnt);
                    nrm += acc[d] * acc[d];
                }
                nrm = Math.sqrt(nrm);
                for (int d = 0; d < dim; d++) acc[d] /= Math.max(nrm, 1e-12);
                out[from + s] = acc;
            }
        }
        return out;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    /** Mean and min cosine between rows of {@code a} and {@code ref}. */
    static double[] cosines(double[][] a, double[][] ref) {
        double sum = 0, min = 1;
        for (int i = 0; i < a.length; i++) {
            double c = dot(a[i], ref[i]);
            sum += c;
            min = Math.min(min, c);
        }
        return new double[] {sum / a.length, min};
    }

    /** Index of the best document for each query. */
    int[] retrieve() {
        double[][] q = embed(QUERIES), d = embed(DOCUMENTS);
        int[] best = new int[q.length];
        for (int i = 0; i < q.length; i++) {
            double b = -2;
            for (int j = 0; j < d.length; j++) {
                double s = dot(q[i], d[j]);
                if (s > b) {
                    b = s;
                    best[i] = j;
                }
            }
        }
        return best;
    }

    @Override
    public void close() {
        session.close();
        graph.close();
    }
}
