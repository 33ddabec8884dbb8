package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The executor's native bindings ({@link NativeOps}) against the plain-Java reference session
 * ({@link Session.Options#REFERENCE}: RefOps, double accumulation) on small graphs that take
 * each path: LINEAR with prepacked weights (bias, GELU epilogue, residual), LAYER_NORM with a
 * fused residual, ADD (same shape, bias vector, batch broadcast), GATHER with i64 and negative
 * ids, ATTENTION with a key-padding mask, an additive 0/-inf mask (converted per run), a
 * graded additive mask (the reference path) and none; bf16 weights within bf16 tolerance.
 * Odd sizes; inputs random.
 */
class NativeBindingTest {
    static Context ctx;
    final Random rnd = new Random(7);
    static final Dim B = Dim.sym("batch"), S = Dim.sym("seq");

    @BeforeAll
    static void open() { ctx = Context.create(2); }

    @AfterAll
    static void close() { ctx.close(); }

    TensorData randn(long... shape) {
        TensorData t = TensorData.allocate(Arena.ofAuto(), DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) t.setFloat(i, (float) rnd.nextGaussian());
        return t;
    }

    static float[] run(Graph g, Map<String, TensorData> in, Session.Options o) {
        try (Session s = Session.create(g, ctx, o)) {
            return s.run(in).values().iterator().next().toFloatArray();
        }
    }

    /** Native vs reference: max |diff| <= tol * max(1, |want|) on every element. */
    static void same(Graph g, Map<String, TensorData> in, double tol, Session.Options native_) {
        float[] want = run(g, in, Session.Options.REFERENCE), got = run(g, in, native_);
        assertEquals(want.length, got.length);
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            assertTrue(Float.isFinite(got[i]), "non-finite at " + i);
            worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
        }
        assertTrue(worst <= tol, "native vs reference: relative error " + worst + " > " + tol + "\n" + g.dump());
    }

    static void same(Graph g, Map<String, TensorData> in, double tol) { same(g, in, tol, Session.Options.DEFAULT); }

    @Test
    void linearLayerNormAndAddPaths() {
        GraphBuilder b = GraphBuilder.create("block");
        Value x = b.input("x", DType.F32, B, S, Dim.of(37));
        Value pos = b.input("pos", DType.F32, Dim.of(1), S, Dim.of(37));               // broadcast over the batch
        Value h = b.add(x, pos);
        h = b.add(h, b.constant("bias", randn(37)));                                   // bias-vector add
        Value w1 = b.constant("w1", randn(37, 65)), b1 = b.constant("b1", randn(65));
        Value w2 = b.constant("w2", randn(33, 65)), b2 = b.constant("b2", randn(33));   // [N, K]: transB
        Value w3 = b.constant("w3", randn(37, 33));
        Value f = b.linear(h, w1, b1, false, "gelu");
        Value g2 = b.linear(f, w2, b2, true, "none");                                  // [B, S, 33]
        Value back = b.linear(g2, w3, null, true, "none");                              // w3 [37, 33] as [N, K]: back to 37
        Value ln = b.layerNorm(b.add(back, h), b.constant("gamma", randn(37)), b.constant("beta", randn(37)), 1e-5);
        b.output(ln);
        Graph g = b.build();
        Passes.optimize(g);
        assertEquals(1, g.nodes().stream().filter(n -> n.op() == Op.LAYER_NORM && n.input(3) != null).count(), "residual fused into the norm\n" + g.dump());
        Map<String, TensorData> in = Map.of("x", randn(3, 7, 37), "pos", randn(1, 7, 37));
        same(g, in, 2e-5);
        same(g, in, 0.05, Session.Options.DEFAULT.withPrecision(DType.BF16));   // bf16 weights: a few 1e-3 relative, loose here for the LN's gain
    }

    @Test
    void residualAccumulatedByTheLinear() {
        GraphBuilder b = GraphBuilder.create("residual");
        Value x = b.input("x", DType.F32, B, Dim.of(21));
        Value y = b.linear(x, b.constant("w", randn(21, 21)), b.constant("bias", randn(21)), false, "none");
        b.output(b.add(y, x));                                                         // no LayerNorm after: the GEMM accumulates (beta = 1)
        Graph g = b.build();
        Passes.optimize(g);
        assertTrue(g.nodes().stream().anyMatch(n -> n.op() == Op.LINEAR && n.input(3) != null), g.dump());
        same(g, Map.of("x", randn(5, 21)), 2e-5);
    }

    @Test
    void gatherWithI64AndNegativeIds() {
        GraphBuilder b = GraphBuilder.create("gather");
        Value ids = b.input("ids", DType.I64, B, S);
        b.output(b.gather(b.constant("table", randn(50, 24)), ids));
        Graph g = b.build();
        long[] v = {0, 49, -1, 7, -50, 13};
        same(g, Map.of("ids", TensorData.ofLongs(v, 2, 3)), 0);
        try (Session s = Session.create(g, ctx)) {
            var e = assertThrows(IllegalArgumentException.class, () -> s.run(Map.of("ids", TensorData.ofLongs(new long[] {1, 50}, 1, 2))));
            assertTrue(e.getMessage().contains("out of range"), e.getMessage());
        }
    }

    /** Attention over q, k, v [B, S, 4*8] with the given mask input (or none). */
    Graph attention(String maskKind) {
        GraphBuilder b = GraphBuilder.create("attn-" + maskKind);
        Value q = b.input("q", DType.F32, B, S, Dim.of(32)), k = b.input("k", DType.F32, B, S, Dim.of(32)), v = b.input("v", DType.F32, B, S, Dim.of(32));
        Value mask = null;
        Map<String, Object> attrs = new HashMap<>(Map.of("num_heads", 4L, "scale", 0.3));
        switch (maskKind) {
            case "key_padding" -> {
                mask = b.input("mask", DType.I64, B, S);
                attrs.put("key_padding", 1L);
            }
            case "additive" -> mask = b.input("mask", DType.F32, B, Dim.of(1), Dim.of(1), S);
            default -> { }
        }
        b.output(mask == null ? b.node(Op.ATTENTION, attrs, q, k, v) : b.node(Op.ATTENTION, attrs, q, k, v, mask));
        return b.build();
    }

    Map<String, TensorData> attnInputs(TensorData mask) {
        Map<String, TensorData> in = new HashMap<>(Map.of("q", randn(3, 11, 32), "k", randn(3, 11, 32), "v", randn(3, 11, 32)));
        if (mask != null) in.put("mask", mask);
        return in;
    }

    @Test
    void attentionMasks() {
        long[] keep = new long[3 * 11];
        for (int i = 0; i < keep.length; i++) keep[i] = i % 11 < (i / 11 == 1 ? 4 : 11) ? 1 : 0;     // row 1 padded after 4 tokens
        float[] add = new float[keep.length], graded = new float[keep.length];
        for (int i = 0; i < keep.length; i++) {
            add[i] = keep[i] != 0 ? 0f : Float.NEGATIVE_INFINITY;
            graded[i] = (float) (-0.3 * (i % 11));                                     // ALiBi-like: not a keep mask
        }
        same(attention("none"), attnInputs(null), 2e-5);
        same(attention("key_padding"), attnInputs(TensorData.ofLongs(keep, 3, 11)), 2e-5);
        same(attention("additive"), attnInputs(TensorData.ofFloats(add, 3, 1, 1, 11)), 2e-5);
        same(attention("additive"), attnInputs(TensorData.ofFloats(graded, 3, 1, 1, 11)), 2e-5);
    }

    @Test
    void planStepsAreBoundOnceAndPlansAreReused() {
        Graph g = attention("key_padding");
        try (Session s = Session.create(g, ctx)) {
            Plan p1 = s.plan(Map.of("batch", 3L, "seq", 11L)), p2 = s.plan(Map.of("batch", 3L, "seq", 11L));
            assertTrue(p1 == p2, "the plan is cached");
            try (Session other = Session.create(g, ctx)) {
                assertThrows(IllegalArgumentException.class, () -> other.execute(p1), "a plan runs only in the session that bound it");
            }
        }
    }
}
