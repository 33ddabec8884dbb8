package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.DType;
import dev.panatron.Embedder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code panatron embed [--model NAME|PATH] [--pooling mean|cls] [--precision fp32|bf16] [--json] [TEXT ...]}:
 * sentence embeddings of the texts given as arguments, or of each line of standard input.
 */
@Command(name = "embed", description = "Sentence embeddings (L2-normalized) of TEXTs, or of each stdin line.")
final class EmbedCommand implements Callable<Integer> {
    @Option(names = "--model", description = "model name (all-minilm-l6-v2) or path; default: ${DEFAULT-VALUE}", defaultValue = "all-minilm-l6-v2")
    String model;

    @Option(names = "--pooling", description = "mean (default) or cls", defaultValue = "mean")
    String pooling;

    @Option(names = "--precision", description = "fp32 (default) or bf16", defaultValue = "fp32")
    String precision;

    @Option(names = "--threads", description = "kernel threads (0: every core)", defaultValue = "0")
    int threads;

    @Option(names = "--json", description = "print {\"model\", \"dim\", \"embeddings\"} as JSON")
    boolean json;

    @Parameters(description = "texts (default: one per line of standard input)")
    List<String> texts = new ArrayList<>();

    @Override
    public Integer call() throws Exception {
        Embedder.Pooling pool = switch (pooling.toLowerCase()) {
            case "mean" -> Embedder.Pooling.MEAN;
            case "cls" -> Embedder.Pooling.CLS;
            default -> throw new IllegalArgumentException("--pooling must be mean or cls, got '" + pooling + "'");
        };
        DType prec = switch (precision.toLowerCase()) {
            case "fp32", "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new IllegalArgumentException("--precision must be fp32 or bf16, got '" + precision + "'");
        };
        List<String> in = new ArrayList<>(texts);
        if (in.isEmpty()) {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) in.add(line);
            }
        }
        if (in.isEmpty()) throw new IllegalArgumentException("no text: give TEXT arguments or lines on standard input");
        System.err.println("panatron: loading " + model + " ...");
        long t0 = System.nanoTime();
        float[][] v;
        String name;
        int dim;
        try (Embedder e = Embedder.load(model, Embedder.Options.DEFAULT.withPooling(pool).withPrecision(prec).withThreads(threads))) {
            System.err.printf("panatron: loaded in %.1f s; embedding %d text(s)%n", (System.nanoTime() - t0) * 1e-9, in.size());
            v = e.embed(in);
            name = e.name();
            dim = e.dimension();
        }
        // everything is computed before anything is printed: an error leaves stdout empty
        StringBuilder out = new StringBuilder();
        if (json) {
            ObjectMapper om = new ObjectMapper();
            ObjectNode root = om.createObjectNode();
            root.put("model", name);
            root.put("dim", dim);
            ArrayNode arr = root.putArray("embeddings");
            for (float[] row : v) {
                ArrayNode a = arr.addArray();
                for (float x : row) a.add(x);
            }
            out.append(om.writeValueAsString(root)).append('\n');
        } else {
            out.append(String.format("model %s, %d text(s), dimension %d, %s pooling%n", name, v.length, dim, pool.name().toLowerCase()));
            if (v.length > 1) {
                out.append("cosine similarity:\n      ");
                for (int j = 0; j < v.length; j++) out.append(String.format(" [%d]   ", j));
                out.append('\n');
                for (int i = 0; i < v.length; i++) {
                    out.append(String.format("  [%d] ", i));
                    for (int j = 0; j < v.length; j++) out.append(String.format(" %6.3f ", Embedder.cosine(v[i], v[j])));
                    out.append('\n');
                }
            }
            for (int i = 0; i < in.size(); i++) {
                String t = in.get(i);
                out.append(String.format("  [%d] %s%n", i, t.length() > 70 ? t.substring(0, 67) + "..." : t));
            }
        }
        System.out.print(out);
        System.out.flush();
        return 0;
    }
}
