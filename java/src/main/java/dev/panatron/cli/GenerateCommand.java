package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.lm.DecoderModel;
import dev.panatron.lm.GenerationConfig;
import dev.panatron.lm.Generator;
import dev.panatron.lm.Precision;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code panatron generate}: continue a prompt with a decoder LM. */
@Command(name = "generate", description = "Generate tokens with a decoder LM (GPT-2, Llama, Mistral, Qwen2).")
final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "HF model directory (config.json + safetensors)")
    Path model;

    static final class Prompt {
        @Option(names = "--prompt", description = "prompt text (needs a tokenizer)")
        String text;
        @Option(names = "--prompt-ids", description = "prompt token ids, e.g. 1,2,3")
        String ids;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Prompt prompt;

    @Option(names = "--max-new-tokens", defaultValue = "32", description = "tokens to generate (default ${DEFAULT-VALUE})")
    int maxNew;
    @Option(names = "--greedy", description = "argmax decoding (the default when no --temperature)")
    boolean greedy;
    @Option(names = "--temperature", defaultValue = "0", description = "sampling temperature (0 = greedy)")
    float temperature;
    @Option(names = "--top-p", defaultValue = "1", description = "nucleus sampling mass (1 = off)")
    float topP;
    @Option(names = "--top-k", defaultValue = "0", description = "keep the k most likely tokens (0 = off)")
    int topK;
    @Option(names = "--repetition-penalty", defaultValue = "1", description = "HF repetition penalty (1 = off)")
    float repetitionPenalty;
    @Option(names = "--seed", defaultValue = "0", description = "sampling seed")
    long seed;
    @Option(names = "--stop-ids", description = "token ids that end generation, e.g. 2 (default: the config's eos_token_id)")
    String stopIds;
    @Option(names = "--precision", defaultValue = "fp32", description = "fp32 or bf16 weights")
    String precision;
    @Option(names = "--json", description = "print {\"ids\":[...],\"text\":...} at the end instead of streaming")
    boolean json;

    @Override
    public Integer call() throws Exception {
        if (prompt.text != null) {
            throw new IllegalArgumentException("--prompt needs a tokenizer, which this build does not have yet: give --prompt-ids");
        }
        int[] ids = DecoderCli.parseIds(prompt.ids, "--prompt-ids");
        Precision p = parsePrecision(precision);
        float temp = greedy ? 0f : temperature;
        try (DecoderModel m = DecoderCli.load(model, p, 64)) {
            int[] stops = stopIds != null ? DecoderCli.parseIds(stopIds, "--stop-ids")
                    : m.config().eosId() >= 0 ? new int[] {m.config().eosId()} : new int[0];
            GenerationConfig cfg = new GenerationConfig(maxNew, temp, topK, topP, repetitionPenalty, seed, stops);
            int[][] out = new Generator(m).generate(new int[][] {ids}, cfg, json ? null : (b, t, last) -> {
                System.out.print(t + (last ? "\n" : " "));
                System.out.flush();
            });
            if (json) {
                ObjectMapper om = new ObjectMapper();
                ObjectNode root = om.createObjectNode();
                var arr = root.putArray("ids");
                for (int t : out[0]) arr.add(t);
                root.putNull("text");
                System.out.println(om.writeValueAsString(root));
            }
        }
        return 0;
    }

    static Precision parsePrecision(String s) {
        return ModelOptions.parseDecoderPrecision(s);
    }
}
