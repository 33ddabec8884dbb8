package dev.panatron.cli;

import dev.panatron.Context;
import dev.panatron.lm.DecoderModel;
import dev.panatron.Precision;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Shared pieces of the decoder commands. */
final class DecoderCli {
    private DecoderCli() { }

    /** The config.json model_type values {@link dev.panatron.lm.DecoderConfig} accepts. */
    static final Set<String> DECODER_TYPES = Set.of("gpt2", "llama", "mistral", "qwen2");

    static int[] parseIds(String s, String option) {
        String[] parts = s.split(",");
        int[] r = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                r[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(option + ": '" + parts[i].trim() + "' is not a token id (expected e.g. 1,2,3)");
            }
        }
        return r;
    }

    static DecoderModel load(Path dir, Precision p, int maxRows) throws IOException {
        return DecoderModel.load(dir, p, Context.shared(), maxRows);
    }

    /** A decoder for the generate command: the CPU {@link DecoderModel} or a {@link dev.panatron.lm.CudaDecoder}. */
    interface Lm extends AutoCloseable {
        dev.panatron.tokenize.BpeTokenizer tokenizer() throws IOException;

        int[] stopTokens() throws IOException;

        int[][] generate(int[][] prompts, dev.panatron.lm.GenerationConfig cfg, dev.panatron.lm.TokenListener listener);

        @Override
        void close();
    }

    static Lm cpuLm(DecoderModel m) {
        return new Lm() {
            public dev.panatron.tokenize.BpeTokenizer tokenizer() throws IOException { return m.tokenizer(); }

            public int[] stopTokens() throws IOException { return m.stopTokens(); }

            public int[][] generate(int[][] prompts, dev.panatron.lm.GenerationConfig cfg, dev.panatron.lm.TokenListener listener) {
                return new dev.panatron.lm.Generator(m).generate(prompts, cfg, listener);
            }

            public void close() { m.close(); }
        };
    }

    /** The GPU decoder, loaded at generate() with exactly the batch and context the prompts need. */
    static Lm cudaLm(Path dir, dev.panatron.cuda.CudaContext ctx) throws IOException {
        dev.panatron.lm.DecoderConfig cfg = dev.panatron.lm.DecoderConfig.from(dev.panatron.io.HfConfig.read(dir.resolve("config.json")));
        return new Lm() {
            public dev.panatron.tokenize.BpeTokenizer tokenizer() throws IOException { return dev.panatron.lm.CudaDecoder.tokenizer(dir); }

            public int[] stopTokens() throws IOException { return dev.panatron.lm.CudaDecoder.stopTokens(dir, cfg); }

            public int[][] generate(int[][] prompts, dev.panatron.lm.GenerationConfig g, dev.panatron.lm.TokenListener listener) {
                int longest = 1;
                for (int[] p : prompts) longest = Math.max(longest, p.length);
                int maxSeq = Math.min(cfg.maxPositions(), Math.max(1, longest + g.maxNewTokens() - 1));
                try (dev.panatron.lm.CudaDecoder d = dev.panatron.lm.CudaDecoder.load(dir, ctx, prompts.length, maxSeq, 512)) {
                    return d.generate(prompts, g, listener);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }

            public void close() { }
        };
    }

    /** True for "cuda", false for "cpu"; anything else is an error naming the option. */
    static boolean isCuda(String device) {
        return switch (device.toLowerCase(java.util.Locale.ROOT)) {
            case "cpu" -> false;
            case "cuda", "gpu" -> true;
            default -> throw new IllegalArgumentException("--device '" + device + "': expected cpu or cuda");
        };
    }

    /**
     * A context on GPU 0.
     *
     * @throws IllegalArgumentException naming why when there is no usable GPU (no driver, no
     *                                  device, libpanatron_cuda not built into this jar)
     */
    static dev.panatron.cuda.CudaContext cudaContext() {
        if (!dev.panatron.cuda.Cuda.isAvailable()) {
            throw new IllegalArgumentException("--device cuda: no usable CUDA GPU here (" + dev.panatron.cuda.Cuda.status() + ")");
        }
        return dev.panatron.cuda.CudaContext.create();
    }

    /** True when {@code dir} is a folder whose config.json names a decoder model_type. */
    static boolean isDecoderDir(Path dir) {
        Path cfg = dir.resolve("config.json");
        if (!Files.isDirectory(dir) || !Files.isRegularFile(cfg)) return false;
        try {
            Matcher m = Pattern.compile("\"model_type\"\\s*:\\s*\"([^\"]*)\"").matcher(Files.readString(cfg, StandardCharsets.UTF_8));
            return m.find() && DECODER_TYPES.contains(m.group(1));
        } catch (IOException e) {
            return false;
        }
    }
}
