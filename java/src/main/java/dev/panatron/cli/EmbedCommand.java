package dev.panatron.cli;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.Embedder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code panatron embed [--model NAME|PATH] [--pooling mean|cls] [--precision fp32|bf16]
 * [--threads T] [--json] [TEXT ...]}: sentence embeddings of the texts (or of each line of
 * stdin), as JSON or as a short summary with the pairwise cosine similarities.
 */
@Command(name = "embed", description = {"Sentence embeddings (L2-normalized) of the TEXTs, or of each line of stdin.",
        "With --json: {\"model\":..., \"dim\":N, \"embeddings\":[[...], ...]}; else the dimension and a cosine-similarity table."})
final class EmbedCommand implements Callable<Integer> {
    @ParentCommand
    Main main;

    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions model;

    @Option(names = "--pooling", paramLabel = "mean|cls", defaultValue = "mean", description = "mean over the tokens (default) or the [CLS] vector")
    Embedder.Pooling pooling;

    @Option(names = "--json", description = "print JSON")
    boolean json;

    @Option(names = "--device", paramLabel = "cpu|cuda", defaultValue = "cpu",
            description = "cpu (default), or cuda: GPU 0, the encoder in bf16 (tokenizer, embeddings and pooling as on the CPU)")
    String device;

    @Parameters(paramLabel = "TEXT", arity = "0..*", description = "texts to embed (default: one per line of stdin)")
    List<String> texts = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        List<String> in = texts;
        if (in.isEmpty()) {
            java.io.Console con = System.console();
            if (main.in == System.in && con != null && con.isTerminal()) {
                throw new IllegalArgumentException("no texts: give TEXT arguments or pipe one text per line on stdin");
            }
            in = new ArrayList<>();
            try (BufferedReader r = new BufferedReader(new InputStreamReader(main.in, StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) in.add(line);
            }
            if (in.isEmpty()) throw new IllegalArgumentException("no texts: stdin was empty (give TEXT arguments or one text per line on stdin)");
        }
        String result;
        boolean cuda = DecoderCli.isCuda(device);
        if (cuda) requireGpuModel(model);
        try (dev.panatron.cuda.CudaContext cctx = cuda ? DecoderCli.cudaContext() : null;
             Embedder e = model.load(pooling, 32, main.err)) {
            List<float[]> vs;
            if (cctx != null) {
                try (dev.panatron.cuda.CudaEmbedder g = new dev.panatron.cuda.CudaEmbedder(cctx, e, 32)) {
                    vs = g.embed(in);
                }
            } else {
                vs = e.embed(in);
            }
            String prec = cctx != null ? "bf16 on cuda" : e.precision().name().toLowerCase(Locale.ROOT);
            result = json ? json(e, vs, prec) : summary(e, in, vs, prec);
        }
        spec.commandLine().getOut().print(result);
        spec.commandLine().getOut().flush();
        return 0;
    }

    /**
     * --device cuda runs the model's own weights in bf16: a conversion (int8, fp4, sparsity) is CPU only.
     *
     * @throws IllegalArgumentException naming the option
     */
    static void requireGpuModel(ModelOptions m) {
        if (m.precision != dev.panatron.Precision.FP32 && m.precision != dev.panatron.Precision.BF16) {
            throw new IllegalArgumentException("--device cuda runs the encoder in bf16: --precision " + m.precision.name().toLowerCase(Locale.ROOT)
                    + " is CPU only (use fp32 or bf16)");
        }
        if (m.sparsity != 0 || m.converted != null) throw new IllegalArgumentException("--device cuda: --sparsity and --converted are CPU only");
    }

    static String json(Embedder e, List<float[]> vs, String precision) throws Exception {
        StringWriter w = new StringWriter();
        try (JsonGenerator g = new ObjectMapper().getFactory().createGenerator(w)) {
            g.writeStartObject();
            g.writeStringField("model", e.modelName());
            g.writeNumberField("dim", e.dimension());
            g.writeStringField("pooling", e.pooling().name().toLowerCase(Locale.ROOT));
            g.writeStringField("precision", precision);
            g.writeArrayFieldStart("embeddings");
            for (float[] v : vs) {
                g.writeStartArray();
                for (float x : v) g.writeNumber(x);
                g.writeEndArray();
            }
            g.writeEndArray();
            g.writeEndObject();
        }
        return w + System.lineSeparator();
    }

    static String summary(Embedder e, List<String> texts, List<float[]> vs, String precision) {
        StringBuilder sb = new StringBuilder();
        String nl = System.lineSeparator();
        sb.append(String.format(Locale.ROOT, "%s: %d text%s, dimension %d (%s pooling, %s, L2-normalized)%s", e.modelName(), vs.size(),
                vs.size() == 1 ? "" : "s", e.dimension(), e.pooling().name().toLowerCase(Locale.ROOT), precision, nl));
        for (int i = 0; i < texts.size(); i++) {
            String t = texts.get(i).replaceAll("\\s+", " ");
            if (t.length() > 60) t = t.substring(0, 57) + "...";
            sb.append(String.format(Locale.ROOT, "  [%d] %s%s", i + 1, t.isEmpty() ? "(empty)" : t, nl));
        }
        if (vs.size() == 1) {
            float[] v = vs.getFirst();
            sb.append("  first values:");
            for (int j = 0; j < Math.min(8, v.length); j++) sb.append(String.format(Locale.ROOT, " %.4f", v[j]));
            sb.append(" ...").append(nl);
            return sb.toString();
        }
        int n = Math.min(vs.size(), 12);
        sb.append("cosine similarity").append(vs.size() > n ? " (first " + n + ")" : "").append(':').append(nl).append("      ");
        for (int j = 0; j < n; j++) sb.append(String.format(Locale.ROOT, "%7s", "[" + (j + 1) + "]"));
        sb.append(nl);
        for (int i = 0; i < n; i++) {
            sb.append(String.format(Locale.ROOT, "%6s", "[" + (i + 1) + "]"));
            for (int j = 0; j < n; j++) sb.append(String.format(Locale.ROOT, "%7.3f", cosine(vs.get(i), vs.get(j))));
            sb.append(nl);
        }
        return sb.toString();
    }

    static double cosine(float[] a, float[] b) {
        double d = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            d += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return d / Math.max(Math.sqrt(na * nb), 1e-30);
    }
}
