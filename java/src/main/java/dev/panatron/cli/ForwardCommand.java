package dev.panatron.cli;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.Embedder;
import dev.panatron.lm.DecoderModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code panatron forward --model PATH|NAME --ids 1,2,3 [--mask 1,1,0] --json}: a model's raw
 * outputs for given token ids, for debugging and cross-checks. Encoders (BERT family): the last
 * hidden state, {@code {"hidden":[[...] per position]}}. Decoder LMs (a folder whose config.json
 * names gpt2, llama, mistral or qwen2; handled by {@link DecoderCli}): the logits at every
 * position, {@code {"logits":[[...] per position]}}.
 */
@Command(name = "forward", description = {"A model's raw outputs for the token ids (no tokenizer, no pooling).",
        "Encoders: the last hidden state, with --json {\"hidden\":[[...] per position]}.",
        "Decoder LMs (HF folder with a gpt2/llama/mistral/qwen2 config.json): {\"logits\":[[...] per position]}."})
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
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0) throw new IllegalArgumentException("--ids: token id " + ids[i] + " at position " + i + " is negative");
        }
        if (model.isDecoder()) return decoder();
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

    /** A decoder LM: the logits at every position (causal; no mask). */
    private int decoder() throws Exception {
        if (mask != null) throw new IllegalArgumentException("--mask applies to encoders only; " + model.model + " is a decoder LM (causal attention)");
        main.err.println("panatron: loading decoder " + model.model + " ...");
        String result;
        try (DecoderModel m = DecoderCli.load(Path.of(model.model), model.decoderPrecision(), Math.max(64, ids.length))) {
            int v = m.config().vocab();
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] >= v) throw new IllegalArgumentException("--ids: token id " + ids[i] + " at position " + i + " is outside the vocabulary [0, " + v + ")");
            }
            float[][] logits = m.forwardAll(ids);
            StringWriter w = new StringWriter();
            try (JsonGenerator g = new ObjectMapper().getFactory().createGenerator(w)) {
                g.writeStartObject();
                g.writeArrayFieldStart("logits");
                for (float[] row : logits) {
                    g.writeStartArray();
                    for (float x : row) g.writeNumber(x);
                    g.writeEndArray();
                }
                g.writeEndArray();
                g.writeEndObject();
            }
            result = w + System.lineSeparator();
        }
        spec.commandLine().getOut().print(result);
        spec.commandLine().getOut().flush();
        return 0;
    }
}
