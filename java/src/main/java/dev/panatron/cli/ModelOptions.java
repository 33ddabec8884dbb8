package dev.panatron.cli;

import dev.panatron.Embedder;
import dev.panatron.Fp4;
import dev.panatron.QuantKernels;
import dev.panatron.graph.Compression;
import dev.panatron.Precision;
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
 * {@link #conversion()} / {@link #decoderPrecision()} or a sibling, and pass it on in
 * {@link #load} and {@link DecoderCli#load}.
 */
final class ModelOptions {
    @Option(names = "--model", paramLabel = "NAME|PATH", defaultValue = "all-minilm-l6-v2",
            description = "a known model name or a model path (an .onnx file or folder with tokenizer.json, "
                    + "or a folder with model.safetensors + config.json [+ tokenizer.json]); default: ${DEFAULT-VALUE}")
    String model;

    @Option(names = "--precision", paramLabel = "fp32|bf16|int8|fp4", defaultValue = "fp32", converter = PrecisionConverter.class,
            description = "fp32 (default), bf16 (weights rounded to bf16, AMX-BF16 products), int8 (linear layers LLM.int8, "
                    + "or --int8 w8a8|w8a32) or fp4 (linear layers FP4 E2M1 group 64 by GPTQ, or --fp4 FORMAT|search, --fp4-group G, --fp4-method M)")
    Precision precision;

    @Option(names = "--sparsity", paramLabel = "S", defaultValue = "0",
            description = "magnitude block pruning of the linear layers to this fraction of zero blocks (4x1 blocks, per layer; no retraining), "
                    + "run on the block-sparse SpMM; default 0")
    double sparsity;

    @Option(names = "--exclude", paramLabel = "PATTERN", split = ",",
            description = "linear layers left unconverted, by name ('*' wildcard, else substring); repeatable or comma-separated")
    java.util.List<String> exclude = new java.util.ArrayList<>();

    @Option(names = "--int8", paramLabel = "llm|w8a8|w8a32", defaultValue = "llm",
            description = "int8 scheme: llm (LLM.int8, outlier columns in f32; default), w8a8, w8a32 (weight-only)")
    String int8Mode;

    @Option(names = "--int8-threshold", paramLabel = "T", defaultValue = "6", description = "LLM.int8 outlier threshold (default 6)")
    double int8Threshold;

    @Option(names = "--fp4", paramLabel = "e2m1|e1m2|e3m0|nf4|search", defaultValue = "e2m1",
            description = "fp4 format, or 'search' (per layer, LLM-FP4's search over formats and clipping on calibration sentences); default e2m1")
    String fp4Format;

    @Option(names = "--fp4-method", paramLabel = "auto|rtn|gptq", defaultValue = "auto",
            description = "how fp4 codes and scales are chosen: gptq (error-compensating on 64 built-in calibration sentences; "
                    + "same stored format and kernels, slower conversion), rtn (round to nearest), or auto (default: gptq, "
                    + "rtn with --sparsity)")
    String fp4Method;

    @Option(names = "--fp4-group", paramLabel = "G", defaultValue = "64", description = "fp4 scale group along K: 32, 64 (default), 128, or 0 (per channel)")
    int fp4Group;

    @Option(names = "--converted", paramLabel = "FILE", description = "load the converted linear layers saved with --save-converted (same model)")
    Path converted;

    @Option(names = "--save-converted", paramLabel = "FILE", description = "save the converted linear layers to FILE (safetensors) after loading")
    Path saveConverted;

    /** {@link Precision#parse} at parse time: a bad --precision is a usage error (exit 2). */
    static final class PrecisionConverter implements CommandLine.ITypeConverter<Precision> {
        @Override
        public Precision convert(String v) {
            try {
                return Precision.parse(v);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    @Option(names = "--threads", paramLabel = "T", defaultValue = "0", description = "kernel threads (0: every core; default ${DEFAULT-VALUE})")
    int threads;

    /**
     * The conversion --precision, --sparsity, --exclude, --int8*, --fp4* ask for.
     *
     * @throws IllegalArgumentException for a bad value (the message names the option)
     */
    Compression.Options conversion() {
        Compression.Options o = Compression.Options.of(precision);
        QuantKernels.Int8Mode mode = switch (int8Mode.toLowerCase(Locale.ROOT)) {
            case "llm", "llm.int8", "llm_int8" -> QuantKernels.Int8Mode.LLM;
            case "w8a8" -> QuantKernels.Int8Mode.W8A8;
            case "w8a32", "weight-only" -> QuantKernels.Int8Mode.WEIGHT_ONLY;
            default -> throw new IllegalArgumentException("--int8 " + int8Mode + ": expected llm, w8a8 or w8a32");
        };
        o = o.withInt8(mode, int8Threshold);
        if (fp4Group != 0 && fp4Group != 32 && fp4Group != 64 && fp4Group != 128) {
            throw new IllegalArgumentException("--fp4-group " + fp4Group + ": expected 32, 64, 128 or 0 (per channel)");
        }
        if (fp4Format.equalsIgnoreCase("search")) {
            o = o.withFp4Search(fp4Group);
        } else {
            Fp4.Format f;
            try {
                f = Fp4.Format.valueOf(fp4Format.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--fp4 " + fp4Format + ": expected e2m1, e1m2, e3m0, nf4 or search");
            }
            o = o.withFp4(f, fp4Group, 1.0);
        }
        Compression.Fp4Method method;
        if (fp4Method.equalsIgnoreCase("auto")) {
            method = sparsity > 0 ? Compression.Fp4Method.RTN : Compression.Fp4Method.GPTQ;
        } else {
            try {
                method = Compression.Fp4Method.parse(fp4Method);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--fp4-method " + fp4Method + ": expected auto, rtn or gptq");
            }
        }
        if (method == Compression.Fp4Method.GPTQ && sparsity > 0) {
            throw new IllegalArgumentException("--fp4-method gptq does not combine with --sparsity (GPTQ would fill the pruned blocks); use rtn");
        }
        o = o.withFp4Method(method);
        if (!(sparsity >= 0 && sparsity < 1)) throw new IllegalArgumentException("--sparsity " + sparsity + ": expected a fraction in [0, 1)");
        return o.withSparsity(sparsity).withExclude(exclude);
    }

    /** --precision for a decoder. @throws IllegalArgumentException for an unknown value */
    Precision decoderPrecision() {
        if (sparsity != 0 || converted != null || saveConverted != null) {
            throw new IllegalArgumentException("--sparsity / --converted / --save-converted apply to encoders only (not to decoder LMs yet)");
        }
        return precision;
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
        Embedder.Builder b = Embedder.builder(model).pooling(pooling).precision(precision).threads(threads()).batchSize(batchSize).progress(err)
                .compression(conversion());
        if (converted != null) b.convertedLayers(converted);
        Embedder e = b.build();
        if (saveConverted != null) {
            try {
                e.saveConverted(saveConverted);
                err.println("panatron: converted layers saved to " + saveConverted);
            } catch (IOException | RuntimeException ex) {
                e.close();
                throw ex;
            }
        }
        return e;
    }

}
