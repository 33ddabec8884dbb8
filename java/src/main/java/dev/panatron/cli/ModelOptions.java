package dev.panatron.cli;

import dev.panatron.Embedder;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;

/** The model options the embedding commands share. */
final class ModelOptions {
    @Option(names = "--model", paramLabel = "NAME|PATH", defaultValue = "all-minilm-l6-v2",
            description = "a known model name or a model path (an .onnx file or folder with tokenizer.json, "
                    + "or a folder with model.safetensors + config.json + tokenizer.json); default: ${DEFAULT-VALUE}")
    String model;

    @Option(names = "--precision", paramLabel = "fp32|bf16", defaultValue = "fp32",
            description = "fp32 (default) or bf16 (weights rounded to bf16, AMX-BF16 products)")
    Embedder.Precision precision;

    @Option(names = "--threads", paramLabel = "T", defaultValue = "0", description = "kernel threads (0: every core; default ${DEFAULT-VALUE})")
    int threads;

    /** Loads the model, reporting progress on {@code err}. */
    Embedder load(Embedder.Pooling pooling, int batchSize, PrintStream err) throws IOException {
        if (threads < 0) throw new IllegalArgumentException("--threads must be >= 0, got " + threads);
        return Embedder.builder(model).pooling(pooling).precision(precision).threads(threads).batchSize(batchSize).progress(err).build();
    }
}
