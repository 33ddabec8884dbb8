package dev.panatron.graph;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.panatron.Context;
import dev.panatron.io.OnnxImporter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real all-MiniLM-L6-v2: our Session's last hidden state against ONNX Runtime Java (a raw
 * OrtSession on the same file and the same hand-made inputs). Max abs difference <= 1e-4 on
 * every element, for the fused graph and for the graph as imported (unfused: the Java
 * reference ops and batched matmuls).
 */
class MiniLmParityTest {
    static final double TOL = 1e-4;

    static OrtEnvironment env;
    static OrtSession ort;
    static Graph fused, raw;
    static Context ctx;

    @BeforeAll
    static void load() throws Exception {
        var path = MiniLm.onnx();
        env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setIntraOpNumThreads(2);
        ort = env.createSession(path.toString(), o);
        fused = OnnxImporter.load(path);
        Passes.optimize(fused);
        raw = OnnxImporter.load(path);
        ctx = Context.create(2);
    }

    @AfterAll
    static void close() throws Exception {
        if (ort != null) ort.close();
        if (fused != null) fused.close();
        if (raw != null) raw.close();
        if (ctx != null) ctx.close();
    }

    static float[] ortRun(Map<String, TensorData> in) throws OrtException {
        Map<String, OnnxTensor> t = new HashMap<>();
        try {
            for (var e : in.entrySet()) {
                TensorData d = e.getValue();
                t.put(e.getKey(), OnnxTensor.createTensor(env, LongBuffer.wrap(d.toLongArray()), d.shape()));
            }
            try (OrtSession.Result r = ort.run(t)) {
                OnnxTensor out = (OnnxTensor) r.get("last_hidden_state").orElseThrow();
                var fb = out.getFloatBuffer();
                float[] f = new float[fb.remaining()];
                fb.get(f);
                return f;
            }
        } finally {
            for (OnnxTensor x : t.values()) x.close();
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length, "output sizes");
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            assertTrue(Float.isFinite(a[i]), "non-finite output at " + i);
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }

    /**
     * Runs both, checks every element within {@link #TOL}, and the positions of real tokens
     * within TOL / 10 (padded positions, which pooling ignores, are the sensitive ones).
     */
    private static double check(Graph g, Map<String, TensorData> in, String what) throws OrtException {
        float[] want = ortRun(in);
        long[] mask = in.get("attention_mask").toLongArray();
        try (Session s = Session.create(g, ctx)) {
            float[] got = s.run(in).get("last_hidden_state").toFloatArray();
            double d = maxAbsDiff(got, want), real = 0;
            int hidden = got.length / mask.length;
            for (int i = 0; i < got.length; i++) if (mask[i / hidden] != 0) real = Math.max(real, Math.abs(got[i] - want[i]));
            System.out.printf("MiniLM parity %-32s %s: max abs diff vs ORT %.3g (real tokens %.3g)%n", what, in.get("input_ids"), d, real);
            assertTrue(d <= TOL, what + ": max abs diff " + d + " > " + TOL);
            assertTrue(real <= TOL / 10, what + ": max abs diff at real tokens " + real + " > " + TOL / 10);
            return d;
        }
    }

    @Test
    void singleSentencesMatchOrt() throws OrtException {
        for (int r = 0; r < MiniLm.SENTENCES.length; r++) check(fused, MiniLm.batch(r), "fused, sentence " + r);
    }

    @Test
    void paddedBatchMatchesOrt() throws OrtException {
        check(fused, MiniLm.batch(0, 1, 2, 3), "fused, padded batch");
    }

    @Test
    void tokenTypesAndLongerRandomSequencesMatchOrt() throws OrtException {
        Map<String, TensorData> in = new HashMap<>(MiniLm.random(new Random(7), 3, 77));
        long[] types = new long[3 * 77];
        for (int i = 40; i < 77; i++) types[i] = 1;    // a second segment in the first row
        in.put("token_type_ids", TensorData.ofLongs(types, 3, 77));
        check(fused, in, "fused, random 3x77 with types");
    }

    @Test
    void unfusedGraphMatchesOrt() throws OrtException {
        check(raw, MiniLm.batch(1, 3), "unfused (as imported)");
    }

    @Test
    void sequenceLongerThanThePositionTableIsRefused() {
        try (Session s = Session.create(fused, ctx)) {
            var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> s.run(MiniLm.random(new Random(1), 1, 513)));
            assertTrue(e.getMessage().contains("512"), e.getMessage());
        }
    }
}
