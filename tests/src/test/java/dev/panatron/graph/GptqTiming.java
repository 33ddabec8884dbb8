package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.Fp4;
import dev.panatron.io.OnnxImporter;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Where the time of MiniLM's GPTQ conversion goes (not a test): capture, factor, quantize per layer. */
public final class GptqTiming {
    public static void main(String[] args) throws Exception {
        try (Context ctx = Context.create(2); Graph g = OnnxImporter.load(MiniLm.onnx())) {
            Passes.optimize(g);
            List<Map<String, TensorData>> calib = new ArrayList<>();
            int tokens = 0;
            List<String> all = CompressionEval.CALIBRATION;
            for (int i = 0; i < all.size(); i += 8) {
                var b = CompressionEval.tokenizer().encodeBatch(all.subList(i, Math.min(all.size(), i + 8)));
                for (int m : b.attentionMask()) tokens += m;
                calib.add(CompressionEval.inputs(b));
            }
            List<Node> targets = Compression.linearLayers(g);
            long t0 = System.nanoTime();
            Map<Node, double[]> h = Compression.captureHessians(g, ctx, targets, calib);
            long t1 = System.nanoTime();
            System.out.printf(Locale.ROOT, "capture: %d sentences, %d tokens, %.2f s%n", calib.size(), tokens, (t1 - t0) / 1e9);
            Map<double[], Gptq.Factor> fs = new IdentityHashMap<>();
            double tf = 0, tq = 0;
            for (Node n : targets) {
                int k = (int) Compression.inFeatures(n), no = (int) Compression.outFeatures(n);
                long a = System.nanoTime();
                Gptq.Factor f = fs.get(h.get(n));
                if (f == null) {
                    f = Gptq.factor(h.get(n), k, Compression.GPTQ_PARAMS);
                    fs.put(h.get(n), f);
                }
                long b = System.nanoTime();
                Gptq.quantize(Compression.weightNK(n), no, k, f, Fp4.levels(Fp4.Format.NF4), 32, Compression.GPTQ_PARAMS);
                long c = System.nanoTime();
                tf += (b - a) / 1e9;
                tq += (c - b) / 1e9;
                System.out.printf(Locale.ROOT, "%-40s [%d, %d] factor %.3f s quantize %.3f s%n", n.name(), no, k, (b - a) / 1e9, (c - b) / 1e9);
            }
            System.out.printf(Locale.ROOT, "total factor %.2f s, quantize %.2f s%n", tf, tq);
        }
        // the whole conversion as the API runs it (load + optimize excluded), wall and process CPU time
        var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        for (String fmt : List.of("NF4", "E2M1")) {
            try (Context ctx = Context.create(2); Graph g = OnnxImporter.load(MiniLm.onnx())) {
                Passes.optimize(g);
                List<Map<String, TensorData>> calib = new ArrayList<>();
                List<String> all = CompressionEval.CALIBRATION;
                for (int i = 0; i < all.size(); i += 8) calib.add(CompressionEval.inputs(CompressionEval.tokenizer().encodeBatch(all.subList(i, Math.min(all.size(), i + 8)))));
                Compression.Options o = Compression.Options.of(dev.panatron.Precision.FP4).withFp4(Fp4.Format.valueOf(fmt), 32, 1)
                        .withFp4Method(Compression.Fp4Method.GPTQ);
                long c0 = os.getProcessCpuTime(), w0 = System.nanoTime();
                Compression.apply(g, ctx, o, calib);
                System.out.printf(Locale.ROOT, "Compression.apply(%s): wall %.1f s, process CPU %.1f s (2 threads), load average %.1f%n", o.describe(),
                        (System.nanoTime() - w0) / 1e9, (os.getProcessCpuTime() - c0) / 1e9, os.getSystemLoadAverage());
            }
        }
    }
}
