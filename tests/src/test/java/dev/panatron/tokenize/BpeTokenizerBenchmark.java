package dev.panatron.tokenize;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.EncodingType;
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

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Byte-level BPE encoding speed: ours against HF tokenizers (Rust through DJL) and jtokkit (Java
 * tiktoken) in the same run, on the cl100k_base vocabulary in Llama-3's tokenizer.json layout (the
 * Llama-3 regex), on GPT-2's (r50k_base, the GPT-2 regex) and on o200k_base (GPT-4o's regex, which runs
 * on java.util.regex here, not on a hand-written scanner): ids of one English paragraph
 * (~130 tokens), of a paragraph of mixed scripts, emoji and code, and of a 100,000-character
 * document. All three produce the same ids (the parity tests check it).
 *
 * <pre>
 * ./mvnw -B -q test-compile dependency:build-classpath -Dmdep.outputFile=target/test-cp.txt -Dmdep.includeScope=test
 * cd tests &amp;&amp; "$JAVA_HOME/bin/java" -cp "target/test-classes:$(cat target/test-cp.txt)" org.openjdk.jmh.Main BpeTokenizerBenchmark
 * </pre>
 * (the tokenizer.json files are generated into tests/target/bpe-test-files on first use.)
 *
 * <p>On a shared machine, {@code ... BpeTokenizerBenchmark --interleaved} is steadier: rounds that time
 * ours, HF and jtokkit one after the other, reported as the median (min..max) of the per-round
 * ratios, per file and text.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class BpeTokenizerBenchmark {

    @Param({"llama3", "gpt2", "o200k"})
    public String file;

    @Param({"english", "mixed", "doc100k"})
    public String text;

    BpeTokenizer ours;
    HuggingFaceTokenizer hf;
    com.knuddels.jtokkit.api.Encoding jtokkit;
    String input;

    static final String MIXED = TokenizerBenchmark.MIXED + "\n\ndef tokenize(text: str) -> list[int]:\n    return [ord(c) for c in text]"
            + "  # 👩‍💻 12345678 it's  \n\n";

    @Setup(Level.Trial)
    public void setup() throws Exception {
        Path dir = BpeTestFiles.dir();
        Path p = switch (file) {
            case "llama3" -> BpeTestFiles.llama3Style(dir);
            case "gpt2" -> BpeTestFiles.gpt2(dir);
            default -> BpeTestFiles.o200k(dir);
        };
        ours = BpeTokenizer.fromFile(p);
        hf = HuggingFaceTokenizer.newInstance(p, Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false"));
        jtokkit = Encodings.newDefaultEncodingRegistry().getEncoding(switch (file) {
            case "llama3" -> EncodingType.CL100K_BASE;
            case "gpt2" -> EncodingType.R50K_BASE;
            default -> EncodingType.O200K_BASE;
        });
        input = switch (text) {
            case "english" -> TokenizerBenchmark.ENGLISH;
            case "mixed" -> MIXED;
            default -> {
                StringBuilder sb = new StringBuilder();
                for (String t : TokenizerTexts.bpeCurated()) if (!t.contains("<|")) sb.append(t).append('\n');
                String s = sb.toString();
                yield s.repeat(100_000 / s.length() + 1).substring(0, 100_000);
            }
        };
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        hf.close();
    }

    @Benchmark
    public int[] ours() { return ours.encodeToIds(input, false); }

    @Benchmark
    public int[] oursEncoding() { return ours.encode(input, null, false).ids(); }

    @Benchmark
    public long[] hf() { return hf.encode(input, false, false).getIds(); }

    @Benchmark
    public int[] jtokkit() { return jtokkit.encodeOrdinary(input).toArray(); }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("--interleaved")) {
            interleaved(args.length > 1 ? Integer.parseInt(args[1]) : 15);
            return;
        }
        org.openjdk.jmh.Main.main(args.length > 0 ? args : new String[] {BpeTokenizerBenchmark.class.getSimpleName()});
    }

    /** Rounds of (ours, HF, jtokkit), each timed over enough calls for ~50 ms; ratios per round. */
    static void interleaved(int rounds) throws Exception {
        System.out.println("file     text      ours us/call   HF/ours median (min..max)   jtokkit/ours median (min..max)   ours MB/s");
        for (String f : new String[] {"llama3", "gpt2", "o200k"}) {
            for (String t : new String[] {"english", "mixed", "doc100k"}) {
                BpeTokenizerBenchmark b = new BpeTokenizerBenchmark();
                b.file = f;
                b.text = t;
                b.setup();
                int calls = Math.max(1, 5_000_000 / (b.input.length() * 20 + 1));
                for (int w = 0; w < 3; w++) { time(b::ours, calls); time(b::hf, calls); time(b::jtokkit, calls); }
                double[] hf = new double[rounds], jt = new double[rounds], us = new double[rounds];
                for (int r = 0; r < rounds; r++) {
                    double o = time(b::ours, calls), h = time(b::hf, calls), j = time(b::jtokkit, calls);
                    us[r] = o / 1e3;
                    hf[r] = h / o;
                    jt[r] = j / o;
                }
                java.util.Arrays.sort(hf);
                java.util.Arrays.sort(jt);
                java.util.Arrays.sort(us);
                double mbs = b.input.getBytes(java.nio.charset.StandardCharsets.UTF_8).length / us[rounds / 2];
                System.out.printf("%-8s %-9s %10.1f   %6.2f (%.2f..%.2f)   %6.2f (%.2f..%.2f)   %6.1f%n", f, t, us[rounds / 2],
                        hf[rounds / 2], hf[0], hf[rounds - 1], jt[rounds / 2], jt[0], jt[rounds - 1], mbs);
                b.tearDown();
            }
        }
    }

    /** Nanoseconds per call. */
    private static double time(java.util.function.Supplier<Object> f, int calls) {
        long t0 = System.nanoTime();
        Object sink = null;
        for (int i = 0; i < calls; i++) sink = f.get();
        long t1 = System.nanoTime();
        if (sink == null) throw new AssertionError();
        return (t1 - t0) / (double) calls;
    }
}
