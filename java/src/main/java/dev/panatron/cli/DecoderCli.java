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
