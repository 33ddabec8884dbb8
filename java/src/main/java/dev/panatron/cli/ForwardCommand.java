package dev.panatron.cli;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.Embedder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.StringWriter;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code panatron forward --model PATH|NAME --ids 1,2,3 [--mask 1,1,0] --json}: the encoder's
 * last hidden state for given token ids, for debugging and cross-checks.
 */
@Command(name = "forward", description = {"The encoder's last hidden state for the token ids (no tokenizer, no pooling).",
        "With --json: {\"hidden\":[[...] per position]}."})
final class ForwardCommand implements Callable<Integer> {
    @ParentCommand
    Main main;

    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions model;

    @Option(names = "--ids", required = true, paramLabel = "ID,ID,...", split = ",", description = "token ids, comma-separated")
    int[] ids;

    @Option(names = "--mask", paramLabel = "M,M,...", split = ",", description = "attention mask (1 = attend, 0 = padding), one per id; default all 1")
    int[] mask;

    @Option(names = "--json", description = "print JSON")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (mask != null) {
            if (mask.length != ids.length) throw new IllegalArgumentException("--mask has " + mask.length + " values but --ids has " + ids.length);
            for (int m : mask) if (m != 0 && m != 1) throw new IllegalArgumentException("--mask values must be 0 or 1, got " + m);
        }
        String result;
        try (Embedder e = model.load(Embedder.Pooling.MEAN, 1, main.err)) {
            float[][] h = e.lastHiddenState(ids, mask);
            if (json) {
                StringWriter w = new StringWriter();
                try (JsonGenerator g = new ObjectMapper().getFactory().createGenerator(w)) {
                    g.writeStartObject();
                    g.writeStringField("model", e.modelName());
                    g.writeArrayFieldStart("hidden");
                    for (float[] row : h) {
                        g.writeStartArray();
                        for (float x : row) g.writeNumber(x);
                        g.writeEndArray();
                    }
                    g.writeEndArray();
                    g.writeEndObject();
                }
                result = w + System.lineSeparator();
            } else {
                StringBuilder sb = new StringBuilder();
                String nl = System.lineSeparator();
                sb.append(String.format(Locale.ROOT, "%s: last hidden state [%d, %d]%s", e.modelName(), h.length, e.dimension(), nl));
                for (int t = 0; t < h.length; t++) {
                    sb.append(String.format(Locale.ROOT, "  %3d  id %-6d", t, ids[t]));
                    for (int j = 0; j < Math.min(6, h[t].length); j++) sb.append(String.format(Locale.ROOT, " %9.5f", h[t][j]));
                    sb.append(" ...").append(nl);
                }
                result = sb.toString();
            }
        }
        spec.commandLine().getOut().print(result);
        spec.commandLine().getOut().flush();
        return 0;
    }
}
