package dev.panatron.cli;

import dev.panatron.Context;
import dev.panatron.lm.DecoderModel;
import dev.panatron.lm.Precision;

import java.io.IOException;
import java.nio.file.Path;

/** Shared pieces of the decoder commands. */
final class DecoderCli {
    private DecoderCli() { }

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
}
