package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import java.util.function.ToIntFunction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each pass on small hand-built graphs in the shape exporters emit: outputs before and after
 * the pass are equal on random inputs, and the graph holds the fused op instead of the pattern.
 */
class FusionTest {
    static Context ctx;
    final Random rnd = new Random(42);
    static final Dim B = Dim.sym("batch"), S = Dim.sym("seq");

    @BeforeAll
    static void open() { ctx = Context.create(1); }

    @AfterAll
    static void close() { ctx.close(); }

    TensorData randn(long... shape) {
        TensorData t = TensorData.allocate(java.lang.foreign.Arena.ofAuto(), DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) t.setFloat(i, (float) rnd.nextGaussian());
        return t;
    }

    Value w(GraphBuilder b, String name, long... shape) { return b.constant(name, randn(shape)); }

    static float[] run(Graph g, Map<String, TensorData> in) {
        try (Session s = Session.create(g, ctx)) {
            return s.run(in).values().iterator().next().toFloatArray();
        }
    }

    /** Runs g, applies the pass, checks it rewrote `expect` patterns, runs again and compares. */
    static Graph check(Graph g, Map<String, TensorData> in, ToIntFunction<Graph> pass, int expect, double tol) {
        float[] before = run(g, in);
        int n = pass.applyAsInt(g);
        assertEquals(expect, n, "patterns rewritten; graph now:\n" + g.dump());
        Passes.eliminateDeadCode(g);
        g.validate();
        float[] after = run(g, in);
        assertEquals(before.length, after.length);
        for (int i = 0; i < before.length; i++) {
            assertTrue(Float.isFinite(after[i]), "non-finite at " + i);
            assertEquals(before[i], after[i], tol * Math.max(1, Math.abs(before[i])), "element " + i + "\n" + g.dump());
        }
        return g;
    }

    // ================================================================ LayerNorm

    /** ReduceMean, Sub, Pow, ReduceMean, Add(eps), Sqrt, Div, Mul(gamma), Add(beta) — as torch exports it. */
    Value decomposedLayerNorm(GraphBuilder b, Value x, long c, boolean affine) {
        Map<String, Object> last = Map.of("axes", new long[] {-1}, "keepdims", 1L);
        Value mean = b.node(Op.REDUCE_MEAN, last, x);
        Value d = b.sub(x, mean);
        Value var = b.node(Op.REDUCE_MEAN, last, b.node(Op.POW, Map.of(), d, b.scalar(2f)));
        Value y = b.div(d, b.node(Op.SQRT, Map.of(), b.add(var, b.scalar(1e-5f))));
        if (!affine) return y;
        return b.add(b.mul(y, w(b, "gamma", c)), w(b, "beta", c));
    }

    @Test
    void layerNormPatternFuses() {
        GraphBuilder b = GraphBuilder.create("ln");
        Value x = b.input("x", DType.F32, B, S, Dim.of(63));
        b.output(decomposedLayerNorm(b, x, 63, true));
        Graph g = check(b.build(), Map.of("x", randn(2, 7, 63)), Fusions::layerNorm, 1, 2e-6);
        assertEquals(Map.of(Op.LAYER_NORM, 1), g.opCounts());
    }

    @Test
    void layerNormWithoutAffineFuses() {
        GraphBuilder b = GraphBuilder.create("ln");
        Value x = b.input("x", DType.F32, Dim.of(5), Dim.of(7));
        Value y = decomposedLayerNorm(b, x, 7, false);
        b.output(b.mul(y, b.scalar(3f)));  // a consumer that is not gamma-shaped stays outside
        Graph g = check(b.build(), Map.of("x", randn(5, 7)), Fusions::layerNorm, 1, 2e-6);
        assertEquals(Map.of(Op.MUL, 1, Op.LAYER_NORM, 1), g.opCounts());
    }

    @Test
    void layerNormWithAnEscapingIntermediateIsLeftAlone() {
        GraphBuilder b = GraphBuilder.create("ln");
        Value x = b.input("x", DType.F32, Dim.of(3), Dim.of(8));
        Map<String, Object> last = Map.of("axes", new long[] {-1}, "keepdims", 1L);
        Value mean = b.node(Op.REDUCE_MEAN, last, x);
        Value d = b.sub(x, mean);
        Value var = b.node(Op.REDUCE_MEAN, last, b.node(Op.POW, Map.of(), d, b.scalar(2f)));
        b.output(b.div(d, b.node(Op.SQRT, Map.of(), b.add(var, b.scalar(1e-5f)))));
        b.output(mean);   // the mean is used outside: fusing would lose it
        Graph g = b.build();
        assertEquals(0, Fusions.layerNorm(g));
    }

    // ================================================================ GELU

    enum GeluForm { X_TIMES_ERF_THEN_HALF, X_TIMES_HALF_ERF, HALF_X_TIMES_ERF }

    Value decomposedGelu(GraphBuilder b, Value x, GeluForm form) {
        Value erf = b.node(Op.ERF, Map.of(), form == GeluForm.HALF_X_TIMES_ERF
                ? b.mul(x, b.scalar((float) Math.sqrt(0.5))) : b.div(x, b.scalar((float) Math.sqrt(2))));
        Value onePlus = b.add(erf, b.scalar(1f));
        return switch (form) {
            case X_TIMES_ERF_THEN_HALF -> b.mul(b.mul(x, onePlus), b.scalar(0.5f));
            case X_TIMES_HALF_ERF -> b.mul(x, b.mul(onePlus, b.scalar(0.5f)));
            case HALF_X_TIMES_ERF -> b.mul(b.mul(x, b.scalar(0.5f)), onePlus);
        };
    }

    @Test
    void geluPatternsFuse() {
        for (GeluForm form : GeluForm.values()) {
            GraphBuilder b = GraphBuilder.create("gelu");
            Value x = b.input("x", DType.F32, B, Dim.of(65));
            b.output(decomposedGelu(b, x, form));
            Graph g = check(b.build(), Map.of("x", randn(3, 65)), Fusions::gelu, 1, 1e-6);
            assertEquals(Map.of(Op.GELU, 1), g.opCounts(), form.toString());
        }
    }

    // ================================================================ Linear

    @Test
    void matmulAddAndGeluBecomeOneLinear() {
        GraphBuilder b = GraphBuilder.create("mlp");
        Value x = b.input("x", DType.F32, B, S, Dim.of(16));
        Value h = b.add(w(b, "b1", 24), b.matmul(x, w(b, "w1", 16, 24)));        // bias first, as torch exports
        h = decomposedGelu(b, h, GeluForm.X_TIMES_ERF_THEN_HALF);
        h = b.add(b.matmul(h, w(b, "w2", 24, 7)), w(b, "b2", 7));
        b.output(h);
        Graph g = b.build();
        check(g, Map.of("x", randn(2, 3, 16)), gr -> Fusions.gelu(gr) + Fusions.linear(gr), 1 + 3, 2e-5);  // gelu; 2 linears, 1 epilogue
        assertEquals(Map.of(Op.LINEAR, 2), g.opCounts());
        assertEquals("gelu", g.nodes().getFirst().attrString("activation", ""));
        assertEquals("none", g.nodes().getLast().attrString("activation", ""));
    }

    @Test
    void residualAddIsAccumulatedByTheLinear() {
        GraphBuilder b = GraphBuilder.create("residual");
        Value x = b.input("x", DType.F32, B, S, Dim.of(16));
        Value h = b.add(b.matmul(x, w(b, "w", 16, 16)), w(b, "bias", 16));
        b.output(b.add(x, h));                                                  // residual first, as torch exports it
        Graph g = check(b.build(), Map.of("x", randn(2, 5, 16)), Fusions::linear, 2, 2e-5);
        assertEquals(Map.of(Op.LINEAR, 1), g.opCounts());
        assertEquals("x", g.nodes().getFirst().input(3).name());
    }

    @Test
    void gemmBecomesLinear() {
        GraphBuilder b = GraphBuilder.create("gemm");
        Value x = b.input("x", DType.F32, B, Dim.of(9));
        b.output(b.node(Op.GEMM, Map.of("transB", 1L), x, w(b, "w", 5, 9), w(b, "c", 5)));
        Graph g = check(b.build(), Map.of("x", randn(4, 9)), Fusions::linear, 1, 2e-5);
        assertEquals(Map.of(Op.LINEAR, 1), g.opCounts());
    }

    @Test
    void matmulWithANonConstantWeightStays() {
        GraphBuilder b = GraphBuilder.create("mm");
        Value x = b.input("x", DType.F32, Dim.of(4), Dim.of(9));
        Value y = b.input("y", DType.F32, Dim.of(9), Dim.of(3));
        b.output(b.matmul(x, y));
        assertEquals(0, Fusions.linear(b.build()));
    }

    // ================================================================ attention

    /** BERT self-attention as torch exports it, reshape targets from Shape/Gather/Concat chains. */
    Graph decomposedAttention(boolean mulScale) {
        int h = 4, d = 8, hd = h * d;
        GraphBuilder b = GraphBuilder.create("attn");
        Value x = b.input("x", DType.F32, B, S, Dim.of(hd));
        Value mask = b.input("mask", DType.I64, B, S);
        Value bias = b.mul(b.sub(b.scalar(1f), b.cast(b.unsqueeze(b.unsqueeze(mask, 1), 2), DType.F32)), b.scalar(-Float.MAX_VALUE));
        Function<Value, Value> heads = t -> {
            Value shape = b.node(Op.SHAPE, Map.of(), t);
            Value b0 = b.unsqueeze(b.node(Op.GATHER, Map.of("axis", 0L), shape, b.constant("i0", TensorData.scalar(0L))), 0);
            Value s1 = b.unsqueeze(b.node(Op.GATHER, Map.of("axis", 0L), shape, b.constant("i1", TensorData.scalar(1L))), 0);
            Value target = b.node(Op.CONCAT, Map.of("axis", 0L), b0, s1, b.dims(Dim.of(h)), b.dims(Dim.of(d)));
            return b.node(Op.RESHAPE, Map.of(), t, target);
        };
        Value q = b.add(b.matmul(x, w(b, "wq", hd, hd)), w(b, "bq", hd));
        Value k = b.add(b.matmul(x, w(b, "wk", hd, hd)), w(b, "bk", hd));
        Value v = b.add(b.matmul(x, w(b, "wv", hd, hd)), w(b, "bv", hd));
        Value qt = b.transpose(heads.apply(q), 0, 2, 1, 3);
        Value kt = b.transpose(heads.apply(k), 0, 2, 3, 1);
        Value vt = b.transpose(heads.apply(v), 0, 2, 1, 3);
        Value scores = b.matmul(qt, kt);
        scores = mulScale ? b.mul(scores, b.scalar((float) (1 / Math.sqrt(d)))) : b.div(scores, b.scalar((float) Math.sqrt(d)));
        Value p = b.softmax(b.add(scores, bias), 3);
        Value ctxv = b.transpose(b.matmul(p, vt), 0, 2, 1, 3);
        b.output(b.reshape(ctxv, B, S, Dim.of(hd)));
        return b.build();
    }

    Map<String, TensorData> attnInputs() {
        long[] mask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};  // second row padded after 3 tokens
        return Map.of("x", randn(2, 6, 32), "mask", TensorData.ofLongs(mask, 2, 6));
    }

    @Test
    void shapeChainsFoldToSymbolicDims() {
        Graph g = decomposedAttention(false);
        Map<String, TensorData> in = attnInputs();
        float[] before = run(g, in);
        assertTrue(g.opCounts().containsKey(Op.SHAPE));
        int folded = Passes.foldConstants(g);
        Passes.eliminateDeadCode(g);
        assertTrue(folded >= 3 * 6, "folded " + folded);
        for (Op gone : List.of(Op.SHAPE, Op.GATHER, Op.CONCAT)) assertFalse(g.opCounts().containsKey(gone), gone + " left:\n" + g.dump());
        long reshapes = g.nodes().stream().filter(n -> n.op() == Op.RESHAPE).count();
        assertEquals(4, reshapes);
        assertEquals(Shape.of(B, S, Dim.of(4), Dim.of(8)), g.nodes().stream().filter(n -> n.op() == Op.RESHAPE).findFirst().orElseThrow().output(0).shape());
        float[] after = run(g, in);
        for (int i = 0; i < before.length; i++) assertEquals(before[i], after[i], 0f);
    }

    @Test
    void attentionSubgraphFusesToOneNode() {
        for (boolean mulScale : new boolean[] {false, true}) {
            Graph g = decomposedAttention(mulScale);
            Map<String, TensorData> in = attnInputs();
            float[] before = run(g, in);
            Passes.Report r = Passes.optimize(g);
            // the mask arithmetic is gone: the node reads the [B, S] attention mask itself
            assertEquals(Map.of(Op.ATTENTION, 1, Op.LINEAR, 3), g.opCounts(), g.dump());
            Node att = g.nodes().stream().filter(n -> n.op() == Op.ATTENTION).findFirst().orElseThrow();
            assertEquals(1L, att.attrLong("key_padding", 0));
            assertEquals("mask", att.input(3).name());
            assertEquals(4L, att.attrLong("num_heads", 0));
            assertEquals(1 / Math.sqrt(8), att.attrDouble("scale", 0), 1e-7);
            float[] after = run(g, in);
            for (int i = 0; i < before.length; i++) assertEquals(before[i], after[i], 2e-5 * Math.max(1, Math.abs(before[i])), "element " + i + " " + r);
        }
    }

    // ================================================================ folding and DCE

    @Test
    void constantsFoldAndDeadCodeGoes() {
        GraphBuilder b = GraphBuilder.create("fold");
        Value x = b.input("x", DType.F32, B, Dim.of(3));
        Value c = b.add(b.constant("a", TensorData.ofFloats(new float[] {1, 2, 3}, 3)), b.constant("b", TensorData.ofFloats(new float[] {10, 20, 30}, 3)));
        Value c2 = b.node(Op.SQRT, Map.of(), c);
        b.mul(x, b.scalar(5f));                        // dead: never used
        b.output(b.mul(x, c2));
        Graph g = b.build();
        Map<String, TensorData> in = Map.of("x", randn(2, 3));
        float[] before = run(g, in);
        assertEquals(2, Passes.foldConstants(g));
        assertEquals(1, Passes.eliminateDeadCode(g));
        assertEquals(Map.of(Op.MUL, 1), g.opCounts());
        Value folded = g.nodes().getFirst().input(1);
        assertTrue(folded.isConstant());
        assertEquals((float) Math.sqrt(22), folded.constantData().getFloat(1), 1e-6);
        assertEquals(List.of(folded), g.constants(), "a, b, their sum and the scalar 5 are gone");
        float[] after = run(g, in);
        for (int i = 0; i < before.length; i++) assertEquals(before[i], after[i], 0f);
    }

    @Test
    void shapeInferenceReportsMismatches() {
        GraphBuilder b = GraphBuilder.create("bad");
        Value x = b.input("x", DType.F32, Dim.of(3), Dim.of(4));
        Value y = b.input("y", DType.F32, Dim.of(5), Dim.of(4));
        var e = org.junit.jupiter.api.Assertions.assertThrows(GraphException.class, () -> b.matmul(x, y));
        assertTrue(e.getMessage().contains("inner dims"), e.getMessage());
        var e2 = org.junit.jupiter.api.Assertions.assertThrows(GraphException.class, () -> b.add(x, y));
        assertTrue(e2.getMessage().contains("broadcast"), e2.getMessage());
    }
}
