package dev.panatron.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panatron.lm.GenerationConfig;
import dev.panatron.Precision;
import dev.panatron.lm.TextStreamer;
import dev.panatron.tokenize.BpeTokenizer;
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
        @Option(names = "--prompt", description = "prompt text, encoded with the model directory's tokenizer.json")
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
    @Option(names = "--stop-ids", description = "token ids that end generation, e.g. 2 (default: eos_token_id of generation_config.json, else config.json)")
    String stopIds;
    @Option(names = "--precision", defaultValue = "fp32", description = "linear-layer weights: fp32, bf16, int8 (LLM.int8) or fp4 (E2M1 weight-only)")
    String precision;
    @Option(names = "--device", defaultValue = "cpu", description = "cpu, or cuda: the whole forward pass on GPU 0 (bf16 weights, decode step as a CUDA graph)")
    String device;
    @Option(names = "--json", description = "print {\"ids\":[...],\"text\":...} at the end instead of streaming (text is null without a tokenizer.json)")
    boolean json;

    @Override
    public Integer call() throws Exception {
        Precision p = Precision.parse(precision);
        float temp = greedy ? 0f : temperature;
        java.io.PrintStream out = System.out;
        boolean cuda = DecoderCli.isCuda(device);
        if (cuda && p != Precision.FP32 && p != Precision.BF16) {
            throw new IllegalArgumentException("--device cuda runs bf16 weights: --precision " + precision + " is CPU only");
        }
        try (dev.panatron.cuda.CudaContext cctx = cuda ? DecoderCli.cudaContext() : null;
             DecoderCli.Lm m = cuda ? DecoderCli.cudaLm(model, cctx) : DecoderCli.cpuLm(DecoderCli.load(model, p, 64))) {
            BpeTokenizer tok = null;
            int[] ids;
            if (prompt.text != null) {
                tok = m.tokenizer();
                ids = tok.encodeToIds(prompt.text, true);
                if (ids.length == 0) throw new IllegalArgumentException("--prompt '" + prompt.text + "' encodes to no tokens");
            } else {
                ids = DecoderCli.parseIds(prompt.ids, "--prompt-ids");
                if (java.nio.file.Files.isRegularFile(model.resolve("tokenizer.json"))) tok = m.tokenizer();
            }
            int[] stops = stopIds != null ? DecoderCli.parseIds(stopIds, "--stop-ids") : m.stopTokens();
            GenerationConfig cfg = new GenerationConfig(maxNew, temp, topK, topP, repetitionPenalty, seed, stops);
            TextStreamer streamer = tok == null || json ? null : new TextStreamer(tok, true);
            int[][] gen = m.generate(new int[][] {ids}, cfg, json ? null : (b, t, last) -> {
                if (streamer != null) {
                    out.print(streamer.next(t));
                    if (last) out.println(streamer.finish());
                } else {
                    out.print(t + (last ? "\n" : " "));
                }
                out.flush();
            });
            if (json) {
                ObjectMapper om = new ObjectMapper();
                ObjectNode root = om.createObjectNode();
                var arr = root.putArray("ids");
                for (int t : gen[0]) arr.add(t);
                if (tok != null) root.put("text", tok.decode(gen[0], true));
                else root.putNull("text");
                out.println(om.writeValueAsString(root));
            }
        }
        return 0;
    }
}
