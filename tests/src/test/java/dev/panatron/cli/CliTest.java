package dev.panatron.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Embedder;
import dev.panatron.TestModels;
import dev.panatron.graph.Graph;
import dev.panatron.graph.Passes;
import dev.panatron.graph.Session;
import dev.panatron.graph.TensorData;
import dev.panatron.io.BertBuilder;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CLI run in-process ({@link Main#execute}) on a tiny random BERT (safetensors + config +
 * MiniLM's tokenizer): embed --json (arguments and stdin), forward --json against the plain-Java
 * reference session, bench embed --json, and bad input: exit code != 0, one line on stderr,
 * nothing on stdout.
 */
class CliTest {
    record Result(int rc, String out, String err) {}

    static Result run(String stdin, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        InputStream in = new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8));
        int rc = Main.execute(args, in, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static final ObjectMapper JSON = new ObjectMapper();

    static String tiny() { return TestModels.tinyBert().toString(); }

    @Test
    void embedJsonFromArgumentsAndStdin() throws Exception {
        Result r = run("", "embed", "--model", tiny(), "--threads", "1", "--json", "first text", "second, longer text", "");
        assertEquals(0, r.rc(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertEquals(32, j.get("dim").asInt());
        assertEquals("tiny-bert", j.get("model").asText());
        assertEquals(3, j.get("embeddings").size());
        assertTrue(r.err().contains("loading"), "progress goes to stderr: " + r.err());
        assertTrue(!r.out().contains("loading"), "no progress on stdout");
        float[][] got = new float[3][32];
        for (int i = 0; i < 3; i++) {
            double n = 0;
            for (int k = 0; k < 32; k++) {
                got[i][k] = (float) j.get("embeddings").get(i).get(k).asDouble();
                n += got[i][k] * got[i][k];
            }
            assertEquals(1.0, Math.sqrt(n), 1e-5);
        }
        try (Embedder e = Embedder.builder(tiny()).threads(1).build()) {
            List<float[]> want = e.embed(List.of("first text", "second, longer text", ""));
            for (int i = 0; i < 3; i++) for (int k = 0; k < 32; k++) assertEquals(want.get(i)[k], got[i][k], 1e-6);
        }
        // the same texts, one per line on stdin
        Result s = run("first text\nsecond, longer text\n\n", "embed", "--model", tiny(), "--threads", "1", "--json");
        assertEquals(0, s.rc(), s.err());
        assertEquals(j.get("embeddings"), JSON.readTree(s.out()).get("embeddings"));
        // the human summary: dimension and a cosine table
        Result h = run("", "embed", "--model", tiny(), "--threads", "1", "cat", "dog");
        assertEquals(0, h.rc(), h.err());
        assertTrue(h.out().contains("dimension 32") && h.out().contains("cosine similarity"), h.out());
    }

    @Test
    void forwardJsonMatchesTheReferenceSession() throws Exception {
        int[] ids = {101, 7592, 2088, 999, 102, 0};
        Result r = run("", "forward", "--model", tiny(), "--threads", "2", "--ids", "101,7592,2088,999,102,0", "--mask", "1,1,1,1,1,0", "--json");
        assertEquals(0, r.rc(), r.err());
        JsonNode hidden = JSON.readTree(r.out()).get("hidden");
        assertEquals(ids.length, hidden.size());
        assertEquals(32, hidden.get(0).size());
        // the plain-Java reference (RefOps, double accumulation) of the same graph
        Path dir = TestModels.tinyBert();
        try (Graph g = BertBuilder.load(dir); Context ctx = Context.create(1)) {
            Passes.optimize(g);
            long[] l = new long[ids.length], m = {1, 1, 1, 1, 1, 0};
            for (int i = 0; i < ids.length; i++) l[i] = ids[i];
            try (Session ref = Session.create(g, ctx, Session.Options.REFERENCE)) {
                float[] want = ref.run(Map.of("input_ids", TensorData.ofLongs(l, 1, ids.length), "attention_mask", TensorData.ofLongs(m, 1, ids.length),
                        "token_type_ids", TensorData.ofLongs(new long[ids.length], 1, ids.length))).get("last_hidden_state").toFloatArray();
                double worst = 0;
                for (int t = 0; t < ids.length - 1; t++) {       // the masked position's row is not compared (flash attention gives it its own rule)
                    for (int k = 0; k < 32; k++) worst = Math.max(worst, Math.abs(hidden.get(t).get(k).asDouble() - want[t * 32 + k]));
                }
                assertTrue(worst <= 1e-4, "forward vs reference: max abs diff " + worst);
            }
        }
        // and exactly what the API gives
        try (Embedder e = Embedder.builder(tiny()).threads(2).build()) {
            float[][] api = e.lastHiddenState(ids, new int[] {1, 1, 1, 1, 1, 0});
            for (int t = 0; t < ids.length; t++) for (int k = 0; k < 32; k++) assertEquals(api[t][k], hidden.get(t).get(k).asDouble(), 1e-6);
        }
    }

    /** The tiny BERT built from safetensors runs packed too: packed and padded batches give the same embeddings. */
    @Test
    void packedAndPaddedAgreeOnTheSafetensorsBuild() throws Exception {
        List<String> texts = List.of("a", "the second text is a little longer", "", "hello world, hello again", "x y z");
        try (Embedder p = Embedder.builder(tiny()).threads(1).batchSize(3).build();
             Embedder q = Embedder.builder(tiny()).threads(1).batchSize(3).packed(false).build()) {
            assertTrue(p.packed() && !q.packed());
            List<float[]> a = p.embed(texts), b = q.embed(texts);
            for (int i = 0; i < texts.size(); i++) {
                for (int k = 0; k < 32; k++) assertEquals(b.get(i)[k], a.get(i)[k], 2e-6, "text " + i + " dim " + k);
                float[] one = q.embed(texts.get(i));
                for (int k = 0; k < 32; k++) assertEquals(one[k], a.get(i)[k], 2e-6, "alone vs packed, text " + i);
            }
        }
    }

    @Test
    void benchEmbedJson() throws Exception {
        Result r = run("", "bench", "embed", "--model", tiny(), "--batch", "2", "--seq", "16", "--threads", "1", "--seconds", "0.2", "--json");
        assertEquals(0, r.rc(), r.err());
        JsonNode j = JSON.readTree(r.out());
        assertTrue(j.get("seq_per_s").asDouble() > 0 && j.get("tok_per_s").asDouble() > 0, r.out());
        assertEquals(16 * j.get("seq_per_s").asDouble(), j.get("tok_per_s").asDouble(), 1e-6 * j.get("tok_per_s").asDouble());
        assertTrue(r.err().contains("measuring"), "progress on stderr");
    }

    /** forward on a decoder LM folder dispatches to the decoder: {"logits": [...] per position}, equal to DecoderModel.forwardAll. */
    @Test
    void forwardDecoderGivesLogits() throws Exception {
        Path gpt2 = Path.of(CliTest.class.getResource("/tiny-models/gpt2/config.json").toURI()).getParent();
        int[] ids = {1, 5, 9, 2};
        Result r = run("", "forward", "--model", gpt2.toString(), "--ids", "1,5,9,2", "--json");
        assertEquals(0, r.rc(), r.err());
        JsonNode logits = JSON.readTree(r.out()).get("logits");
        assertEquals(ids.length, logits.size());
        try (dev.panatron.lm.DecoderModel m = dev.panatron.lm.DecoderModel.load(gpt2, dev.panatron.Precision.FP32)) {
            float[][] want = m.forwardAll(ids);
            for (int t = 0; t < ids.length; t++) {
                assertEquals(want[t].length, logits.get(t).size());
                for (int k = 0; k < want[t].length; k++) assertEquals(want[t][k], logits.get(t).get(k).asDouble(), 1e-5);
            }
        }
        fails(1, "--mask applies to encoders only", "", "forward", "--model", gpt2.toString(), "--ids", "1,2", "--mask", "1,1");
        fails(1, "outside the vocabulary", "", "forward", "--model", gpt2.toString(), "--ids", "1,99999999");
    }

    /** Exit code != 0, exactly one line on stderr (after any progress lines), nothing on stdout. */
    static void fails(int rc, String needle, String stdin, String... args) {
        Result r = run(stdin, args);
        assertEquals(rc, r.rc(), String.join(" ", args) + ": " + r.err());
        assertEquals("", r.out(), "no partial output on stdout for " + String.join(" ", args));
        List<String> errLines = r.err().lines().filter(l -> !l.startsWith("panatron: ")).toList();
        assertEquals(1, errLines.size(), "one error line: " + r.err());
        assertTrue(errLines.getFirst().contains(needle), errLines.getFirst() + " lacks " + needle);
    }

    @Test
    void badInputIsOneLineAndNoOutput() {
        fails(1, "no file or directory", "", "embed", "--model", "/no/such/dir/model.onnx", "text");
        fails(1, "stdin was empty", "", "embed", "--model", tiny());
        fails(2, "--pooling", "", "embed", "--pooling", "max", "text");
        fails(2, "--precision", "", "embed", "--precision", "fp8", "text");
        fails(2, "'x' is not an int", "", "forward", "--ids", "1,x,3");
        fails(2, "--ids", "", "forward", "--model", tiny());
        fails(1, "--mask has 1 values", "", "forward", "--model", tiny(), "--ids", "101,102", "--mask", "1");
        fails(1, "outside the vocabulary", "", "forward", "--model", tiny(), "--threads", "1", "--ids", "101,99999,102");
        fails(1, "--batch must be >= 1", "", "bench", "embed", "--model", tiny(), "--batch", "0");
        fails(1, "exceeds", "", "bench", "embed", "--model", tiny(), "--threads", "1", "--seq", "100", "--seconds", "0.1");
        fails(2, "missing what to benchmark", "", "bench");
        fails(2, "Unknown option", "", "embed", "--no-such-option");
    }
}
