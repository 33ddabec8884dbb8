package dev.panatron.graph;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;

/**
 * The real all-MiniLM-L6-v2 ONNX model, from the langchain4j artifact on the test classpath
 * (copied once per JVM to a temporary file), and hand-made token inputs. Tests that need it
 * skip when the artifact is absent.
 */
public final class MiniLm {
    private MiniLm() {}

    private static Path path;

    /** The model file; skips the calling test when the artifact is not on the classpath. */
    public static synchronized Path onnx() {
        if (path == null) {
            try (InputStream in = MiniLm.class.getResourceAsStream("/all-minilm-l6-v2.onnx")) {
                Assumptions.assumeTrue(in != null, "all-minilm-l6-v2.onnx is not on the classpath");
                Path p = Files.createTempFile("all-minilm-l6-v2-", ".onnx");
                p.toFile().deleteOnExit();
                Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
                path = p;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return path;
    }

    /**
     * Token ids of a few sentences (BERT uncased WordPiece ids written by hand: [CLS]=101,
     * [SEP]=102, [PAD]=0), padded to the longest.
     */
    public static final long[][] SENTENCES = {
            {101, 7592, 2088, 102},                                                  // hello world
            {101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102}, // the quick brown fox jumps over the lazy dog.
            {101, 2023, 2003, 1037, 3231, 1997, 6251, 7861, 8270, 4667, 2015, 1012, 102},
            {101, 1045, 2293, 5404, 999, 102},
    };

    /** Inputs for rows {@code rows} of {@link #SENTENCES}, right-padded with [PAD] and mask 0. */
    public static Map<String, TensorData> batch(int... rows) {
        int len = 0;
        for (int r : rows) len = Math.max(len, SENTENCES[r].length);
        long[] ids = new long[rows.length * len], mask = new long[ids.length], types = new long[ids.length];
        for (int i = 0; i < rows.length; i++) {
            long[] s = SENTENCES[rows[i]];
            for (int j = 0; j < s.length; j++) {
                ids[i * len + j] = s[j];
                mask[i * len + j] = 1;
            }
        }
        return Map.of("input_ids", TensorData.ofLongs(ids, rows.length, len),
                "attention_mask", TensorData.ofLongs(mask, rows.length, len),
                "token_type_ids", TensorData.ofLongs(types, rows.length, len));
    }

    /** Random ids in [1000, 30000) with [CLS]/[SEP], full mask: batch x seq. */
    public static Map<String, TensorData> random(java.util.Random rnd, int batch, int seq) {
        long[] ids = new long[batch * seq], mask = new long[ids.length], types = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            int j = i % seq;
            ids[i] = j == 0 ? 101 : j == seq - 1 ? 102 : 1000 + rnd.nextInt(29000);
            mask[i] = 1;
        }
        return Map.of("input_ids", TensorData.ofLongs(ids, batch, seq),
                "attention_mask", TensorData.ofLongs(mask, batch, seq),
                "token_type_ids", TensorData.ofLongs(types, batch, seq));
    }
}
