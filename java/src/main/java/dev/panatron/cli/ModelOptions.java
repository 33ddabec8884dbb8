package dev.panatron.cli;

import dev.panatron.Embedder;
import dev.panatron.lm.Precision;
import picocli.CommandLine;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The model options the model commands share ({@code embed}, {@code forward}, {@code bench
 * embed}): {@code --model}, {@code --precision}, {@code --threads}. New options that apply to
 * every model (a sparsity, further precisions) belong here: add the field, parse it in
 * {@link #embedderPrecision()} / {@link #decoderPrecision()} or a sibling, and pass it on in
 * {@link #load} and {@link DecoderCli#load}.
 */
final class ModelOptions {
    @Option(names = "--model", paramLabel = "NAME|PATH", defaultValue = "all-minilm-l6-v2",
            description = "a known model name or a model path (an .onnx file or folder with tokenizer.json, "
                    + "or a folder with model.safetensors + config.json [+ tokenizer.json]); default: ${DEFAULT-VALUE}")
    String model;

    @Option(names = "--precision", paramLabel = "fp32|bf16", defaultValue = "fp32", converter = PrecisionName.class,
            description = "fp32 (default) or bf16 (weights rounded to bf16, AMX-BF16 products)")
    String precision;

    /** The --precision values any model command accepts (lower case); a bad one is a usage error (exit 2). */
    static final java.util.List<String> PRECISIONS = java.util.List.of("fp32", "bf16");

    /** Checks a --precision value at parse time and normalizes it (f32 = fp32, case-insensitive). */
    static final class PrecisionName implements CommandLine.ITypeConverter<String> {
        @Override
        public String convert(String v) {
            String s = v.toLowerCase(Locale.ROOT);
            if (s.equals("f32")) s = "fp32";
            if (!PRECISIONS.contains(s)) throw new CommandLine.TypeConversionException("expected one of " + String.join(", ", PRECISIONS) + ", got '" + v + "'");
            return s;
        }
    }

    @Option(names = "--threads", paramLabel = "T", defaultValue = "0", description = "kernel threads (0: every core; default ${DEFAULT-VALUE})")
    int threads;

    /** --precision for an encoder. @throws IllegalArgumentException for an unknown value */
    Embedder.Precision embedderPrecision() {
        return switch (precision.toLowerCase(Locale.ROOT)) {
            case "fp32", "f32" -> Embedder.Precision.FP32;
            case "bf16" -> Embedder.Precision.BF16;
            default -> throw new IllegalArgumentException("--precision " + precision + ": expected fp32 or bf16");
        };
    }

    /** --precision for a decoder. @throws IllegalArgumentException for an unknown value */
    Precision decoderPrecision() {
        return parseDecoderPrecision(precision);
    }

    static Precision parseDecoderPrecision(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "fp32", "f32" -> Precision.FP32;
            case "bf16" -> Precision.BF16;
            default -> throw new IllegalArgumentException("--precision " + s + ": expected fp32 or bf16 (int8/fp4 are not available yet)");
        };
    }

    /** --threads, checked. */
    int threads() {
        if (threads < 0) throw new IllegalArgumentException("--threads must be >= 0 (0 = every core), got " + threads);
        return threads;
    }

    /** True when --model is a folder holding a decoder LM (config.json with a decoder model_type). */
    boolean isDecoder() {
        return DecoderCli.isDecoderDir(Path.of(model));
    }

    /** Loads the model as an {@link Embedder}, reporting progress on {@code err}. */
    Embedder load(Embedder.Pooling pooling, int batchSize, PrintStream err) throws IOException {
        return Embedder.builder(model).pooling(pooling).precision(embedderPrecision()).threads(threads()).batchSize(batchSize).progress(err).build();
    }

}
