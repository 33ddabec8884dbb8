package dev.panatron.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.panatron.Context;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static dev.panatron.cli.CliTest.JSON;
import static dev.panatron.cli.CliTest.fails;
import static dev.panatron.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code panatron bench kernels}: the --quick --json run parses, has every kernel's rows with
 * finite positive figures that agree with each other (ratio = baseline time / ours time, GOPS =
 * 2MNK / time, min <= median <= max), --kernel filters, and bad flags fail with one line. No
 * timing assertions.
 */
class BenchKernelsCliTest {
    static double d(JsonNode row, String f) {
        JsonNode v = row.get(f);
        assertTrue(v != null && v.isNumber(), f + " missing or not a number in " + row);
        return v.asDouble();
    }

    static void finitePositive(JsonNode row, String... fields) {
        for (String f : fields) {
            double v = d(row, f);
            assertTrue(Double.isFinite(v) && v > 0, f + " = " + v + " in " + row);
        }
    }

    static void close(double want, double got, String what) {
        assertTrue(Math.abs(want - got) <= 1e-9 * Math.abs(want), what + ": " + got + " != " + want);
    }

    @Test
    void quickJsonHasEveryKernelWithConsistentFigures() throws Exception {
        if (!Context.shared().usesOneDnn()) {   // a build without oneDNN has no int8 baseline
            fails(1, "need oneDNN", "", "bench", "kernels", "--quick", "--json", "--threads", "2");
            return;
        }
        CliTest.Result r = run("", "bench", "kernels", "--quick", "--json", "--threads", "2");
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.err().contains("panatron bench kernels: [1]"), "progress on stderr: " + r.err());
        JsonNode a = JSON.readTree(r.out());
        assertTrue(a.isArray(), r.out());
        Map<String, List<JsonNode>> byKernel = new TreeMap<>();
        for (JsonNode row : a) byKernel.computeIfAbsent(row.get("kernel").asText(), x -> new ArrayList<>()).add(row);
        assertEquals(List.of("bf16_gemm", "bsr_int8", "fp4_gemv", "llm_int8", "w8a8"), List.copyOf(byKernel.keySet()));
        assertEquals(2, byKernel.get("bsr_int8").size());
        assertEquals(4, byKernel.get("llm_int8").size());
        for (JsonNode row : a) {
            for (String f : new String[] {"kernel", "dtype", "shape", "baseline"}) assertTrue(row.get(f).isTextual(), f + " in " + row);
            finitePositive(row, "ours_gops", "baseline_gops", "ratio", "ours_ms", "baseline_ms", "ours_ms_min", "ours_ms_max", "baseline_ms_min",
                    "baseline_ms_max", "m", "k", "n");
            double sp = d(row, "sparsity");
            assertTrue(sp >= 0 && sp < 1, "sparsity " + sp);
            long m = row.get("m").asLong(), k = row.get("k").asLong(), n = row.get("n").asLong();
            assertEquals(m + "x" + k + "x" + n, row.get("shape").asText());
            double to = d(row, "ours_ms"), tb = d(row, "baseline_ms");
            close(tb / to, d(row, "ratio"), "ratio of " + row);
            close(2.0 * m * n * k / (to * 1e-3) / 1e9, d(row, "ours_gops"), "ours_gops of " + row);
            close(2.0 * m * n * k / (tb * 1e-3) / 1e9, d(row, "baseline_gops"), "baseline_gops of " + row);
            assertTrue(d(row, "ours_ms_min") <= to && to <= d(row, "ours_ms_max"), "ours min <= median <= max: " + row);
            assertTrue(d(row, "baseline_ms_min") <= tb && tb <= d(row, "baseline_ms_max"), "baseline min <= median <= max: " + row);
        }
        List<Double> sps = byKernel.get("bsr_int8").stream().map(x -> x.get("sparsity").asDouble()).toList();
        assertEquals(List.of(0.7, 0.9), sps);
        for (JsonNode row : byKernel.get("bsr_int8")) assertEquals("onednn_s8", row.get("baseline").asText());
        for (JsonNode row : byKernel.get("w8a8")) assertEquals("onednn_s8", row.get("baseline").asText());
        assertEquals(1, byKernel.get("fp4_gemv").getFirst().get("m").asLong(), "FP4 runs as a GEMV");
        long withOutliers = byKernel.get("llm_int8").stream().filter(x -> x.get("outlier_cols").asDouble() > 0).count();
        assertEquals(2, withOutliers, "LLM.int8 with and without planted outliers, against two baselines each");
        assertTrue(byKernel.get("llm_int8").stream().anyMatch(x -> x.get("baseline").asText().equals("onednn_s8")));
        assertTrue(byKernel.get("llm_int8").stream().anyMatch(x -> x.get("baseline").asText().endsWith("f32")));
    }

    @Test
    void kernelFilterAndTable() throws Exception {
        CliTest.Result r = run("", "bench", "kernels", "--quick", "--kernel", "fp4_gemv", "--kernel", "BF16_GEMM", "--repeats", "1", "--threads", "1");
        assertEquals(0, r.rc(), r.err());
        List<String> lines = r.out().lines().toList();
        assertTrue(lines.getFirst().startsWith("#") && lines.get(1).startsWith("kernel"), r.out());
        assertEquals(4, lines.size(), r.out());
        assertTrue(lines.get(2).startsWith("fp4_gemv") && lines.get(3).startsWith("bf16_gemm"), r.out());
    }

    @Test
    void badFlagsFailWithOneLine() {
        fails(2, "unknown --kernel 'gemm'", "", "bench", "kernels", "--quick", "--kernel", "gemm");
        fails(2, "--repeats must be in 1..1000", "", "bench", "kernels", "--quick", "--repeats", "0");
        fails(2, "--threads must be >= 0", "", "bench", "kernels", "--quick", "--threads", "-1");
        fails(2, "--min-ms", "", "bench", "kernels", "--quick", "--min-ms", "-1");
        fails(2, "--block must be KxN", "", "bench", "kernels", "--quick", "--block", "4x0");
        fails(2, "Unknown option", "", "bench", "kernels", "--bogus");
        fails(2, "'x' is not an int", "", "bench", "kernels", "--threads", "x");
    }
}
