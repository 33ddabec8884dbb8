package dev.panatron.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Tokenization speed, ours against HF tokenizers (Rust through DJL) in the same run, on the
 * all-MiniLM-L6-v2 tokenizer.json: one ~128-token text (English, or mixed scripts with accents,
 * CJK and emoji), a batch of 8 such texts padded into [8, 128] arrays, and a 10,000-character text
 * truncated to 128 tokens.
 *
 * <pre>
 * ./mvnw -B -q -o install -DskipTests   # then, from tests/:
 * java -cp "target/test-classes:$(cat target/test-cp.txt)" org.openjdk.jmh.Main TokenizerBenchmark
 * </pre>
 * HF's batch encode uses its own thread pool (rayon); set TOKENIZERS_PARALLELISM=false for one thread.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class TokenizerBenchmark {

    @Param({"english", "mixed", "long10k"})
    public String text;

    WordPieceTokenizer ours;
    HuggingFaceTokenizer hf;
    Path tmp;
    String input;
    List<String> batch;

    static final String ENGLISH = "Sentence embeddings map a piece of text to a dense vector, so that texts with similar "
            + "meanings end up close together. They power semantic search, clustering and retrieval-augmented generation. "
            + "The all-MiniLM-L6-v2 model has six transformer layers, a hidden size of 384 and twelve attention heads; "
            + "it was trained with a contrastive objective on over one billion sentence pairs, such as questions and their "
            + "answers, titles and abstracts, or posts and comments. Tokenization splits words into WordPiece units, "
            + "lower-cases them, strips accents and adds the special [CLS] and [SEP] tokens.";
    static final String MIXED = "Café naïve résumé — Straße, Ångström & Dvořák! 中文字符测试，日本語のテキスト。 한국어 텍스트 "
            + "مرحبا بالعالم 😀👍🏽 «quotes» ¿Qué? http://example.com/path?q=1 x² ½ Ελληνικά ΟΔΟΣ İstanbul "
            + "tab\there nbsp\u00A0here zero\u200Bwidth The quick brown fox jumps over the lazy dog.";

    @Setup(Level.Trial)
    public void setup() throws Exception {
        tmp = Files.createTempFile("bench-tokenizer", ".json");
        try (InputStream in = TokenizerBenchmark.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, tmp, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        ours = WordPieceTokenizer.fromFile(tmp).withPaddingToLongest();
        hf = HuggingFaceTokenizer.newInstance(tmp, Map.of("truncation", "true", "maxLength", "128", "padding", "true"));
        input = switch (text) {
            case "english" -> ENGLISH;
            case "mixed" -> MIXED;
            default -> (ENGLISH + " " + MIXED + " ").repeat(20).substring(0, 10_000);
        };
        batch = new ArrayList<>();
        for (int i = 0; i < 8; i++) batch.add(input.substring(i) + " " + i);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        hf.close();
        Files.deleteIfExists(tmp);
    }

    @Benchmark
    public int[] oursEncode() { return ours.encode(input).ids(); }

    @Benchmark
    public long[] hfEncode() { return hf.encode(input).getIds(); }

    @Benchmark
    public int[] oursBatch8() { return ours.encodeBatch(batch).ids(); }

    @Benchmark
    public long[] hfBatch8() {
        ai.djl.huggingface.tokenizers.Encoding[] e = hf.batchEncode(batch);
        int n = e[0].getIds().length;
        long[] ids = new long[8 * n];
        for (int i = 0; i < 8; i++) System.arraycopy(e[i].getIds(), 0, ids, i * n, n);
        return ids;
    }

    public static void main(String[] args) throws Exception {
        org.openjdk.jmh.Main.main(args.length > 0 ? args : new String[] {TokenizerBenchmark.class.getSimpleName()});
    }
}
