package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.lm.DecoderModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code panatron forward --model DIR --ids 1,2,3 --json}: logits at every position (decoder models). */
@Command(name = "forward", description = "Run a model over token ids and print its outputs (decoder LMs: logits per position).")
final class ForwardCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "HF model directory")
    Path model;
    @Option(names = "--ids", required = true, description = "token ids, e.g. 1,2,3")
    String ids;
    @Option(names = "--precision", defaultValue = "fp32", description = "linear-layer weights: fp32, bf16, int8 or fp4")
    String precision;
    @Option(names = "--json", description = "print JSON (the only format)")
    boolean json;

    @Override
    public Integer call() throws Exception {
        // decoder models only on this branch; encoders get their own dispatch here
        int[] tokens = DecoderCli.parseIds(ids, "--ids");
        try (DecoderModel m = DecoderCli.load(model, GenerateCommand.parsePrecision(precision), 64)) {
            float[][] logits = m.forwardAll(tokens);
            ObjectMapper om = new ObjectMapper();
            ObjectNode root = om.createObjectNode();
            ArrayNode all = root.putArray("logits");
            for (float[] row : logits) {
                ArrayNode a = all.addArray();
                for (float f : row) a.add(f);
            }
            System.out.println(om.writeValueAsString(root));
        }
        return 0;
    }
}
