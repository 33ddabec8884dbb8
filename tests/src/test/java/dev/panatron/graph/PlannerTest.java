package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.io.OnnxImporter;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The liveness planner: no two buffers live at the same step share a byte, buffers are aligned,
 * the arena is no bigger than the sum of the buffers, and executing in the shared arena gives
 * exactly what a separate buffer per value gives.
 */
class PlannerTest {

    /** The invariants every plan must hold. */
    static void checkPlan(Plan p) {
        List<Plan.Buffer> bs = p.buffers();
        long sum = 0;
        for (Plan.Buffer b : bs) {
            assertEquals(0, b.offset() % Planner.ALIGN, "alignment of " + b);
            assertTrue(b.offset() + b.bytes() <= p.peakBytes(), b + " beyond the arena of " + p.peakBytes());
            assertTrue(b.firstStep() <= b.lastStep(), b.toString());
            sum += (b.bytes() + Planner.ALIGN - 1) / Planner.ALIGN * Planner.ALIGN;
        }
        for (int i = 0; i < bs.size(); i++) {
            for (int j = i + 1; j < bs.size(); j++) {
                Plan.Buffer a = bs.get(i), b = bs.get(j);
                if (a.bytes() == 0 || b.bytes() == 0) continue;
                assertFalse(a.overlapsInTime(b) && a.overlapsInMemory(b), "live at the same time and overlapping:\n  " + a + "\n  " + b);
            }
        }
        assertTrue(p.peakBytes() <= Math.max(sum, Planner.ALIGN), "peak " + p.peakBytes() + " > sum " + sum);
        assertEquals(sum, p.naiveBytes());
    }

    /** A random DAG of elementwise ops, views and matmuls over [batch, n] and [batch, m, n]. */
    static Graph randomGraph(Random rnd, int nodes) {
        Dim batch = Dim.sym("batch");
        GraphBuilder b = GraphBuilder.create("random");
        List<Value> pool = new ArrayList<>();
        pool.add(b.input("x", DType.F32, batch, Dim.of(12)));
        pool.add(b.input("y", DType.F32, batch, Dim.of(12)));
        for (int i = 0; i < nodes; i++) {
            Value a = pool.get(rnd.nextInt(pool.size())), c = pool.get(rnd.nextInt(pool.size()));
            Value out = switch (rnd.nextInt(6)) {
                case 0 -> b.add(a, c);
                case 1 -> b.mul(a, b.scalar(0.5f + rnd.nextFloat()));
                case 2 -> b.node(Op.TANH, Map.of(), a);
                case 3 -> b.reshape(b.reshape(a, batch, Dim.of(3), Dim.of(4)), batch, Dim.of(12)); // views
                case 4 -> {
                    float[] w = new float[12 * 12];
                    for (int k = 0; k < w.length; k++) w[k] = (float) rnd.nextGaussian() / 4;
                    yield b.matmul(a, b.constant("w", TensorData.ofFloats(w, 12, 12)));
                }
                default -> b.sub(b.node(Op.EXP, Map.of(), b.mul(a, b.scalar(0.1f))), c);
            };
            pool.add(out);
        }
        for (int i = 0; i < 3; i++) b.output(pool.get(pool.size() - 1 - i * 5));
        return b.build();
    }

    /** Evaluates the graph with a fresh buffer per value (no planner, no reuse). */
    static Map<Value, TensorData> interpret(Graph g, Map<String, TensorData> in, Map<String, Long> bind) {
        Map<Value, TensorData> vals = new IdentityHashMap<>();
        for (Value v : g.inputs()) vals.put(v, in.get(v.name()));
        for (Node n : g.nodes()) {
            TensorData[] ins = new TensorData[n.inputs().size()];
            for (int i = 0; i < ins.length; i++) {
                Value v = n.input(i);
                if (v.isConstant()) ins[i] = v.constantData();
                else if (v.symbolicData() != null) {
                    List<Dim> c = v.symbolicData();
                    long[] l = new long[c.size()];
                    for (int k = 0; k < l.length; k++) l[k] = c.get(k).eval(bind);
                    ins[i] = TensorData.ofLongs(l, l.length);
                } else ins[i] = vals.get(v);
            }
            TensorData out = TensorData.allocate(Arena.ofAuto(), n.output(0).dtype(), n.output(0).shape().eval(bind));
            RefOps.execute(null, n, ins, new TensorData[] {out});
            vals.put(n.output(0), out);
        }
        return vals;
    }

    @Test
    void randomGraphsShareTheArenaSafely() {
        Random rnd = new Random(3);
        try (Context ctx = Context.create(1)) {
            for (int trial = 0; trial < 20; trial++) {
                Graph g = randomGraph(rnd, 10 + rnd.nextInt(40));
                long batch = 1 + rnd.nextInt(9);
                Map<String, Long> bind = Map.of("batch", batch);
                Map<String, TensorData> in = new HashMap<>();
                for (String name : List.of("x", "y")) {
                    float[] v = new float[(int) batch * 12];
                    for (int k = 0; k < v.length; k++) v[k] = (float) rnd.nextGaussian();
                    in.put(name, TensorData.ofFloats(v, batch, 12));
                }
                try (Session s = Session.create(g, ctx)) {
                    Plan p = s.plan(bind);
                    checkPlan(p);
                    assertTrue(p.peakBytes() < p.naiveBytes() || p.buffers().size() <= 3, "no reuse at all?\n" + p.dump());
                    Map<String, TensorData> got = s.run(in);
                    Map<Value, TensorData> want = interpret(g, in, bind);
                    for (Value o : g.outputs()) {
                        float[] a = got.get(o.name()).toFloatArray(), e = want.get(o).toFloatArray();
                        for (int k = 0; k < a.length; k++) assertEquals(e[k], a[k], 1e-4 * Math.max(1, Math.abs(e[k])), o.name() + "[" + k + "]");
                    }
                }
            }
        }
    }

    @Test
    void miniLmPlanForBatch8x128() throws Exception {
        try (Graph g = OnnxImporter.load(MiniLm.onnx())) {
            Passes.optimize(g);
            try (Plan p = Planner.plan(g, Map.of("batch_size", 8L, "sequence_length", 128L))) {
                checkPlan(p);
                // one [8,128,1536] f32 FFN activation (6 MiB) must fit; reuse keeps the arena far below the sum
                assertTrue(p.peakBytes() >= 8L * 128 * 1536 * 4, p.dump());
                assertTrue(p.peakBytes() * 4 < p.naiveBytes(), p.dump());
                System.out.printf("MiniLM plan 8x128: %d steps, %d buffers, peak %d B (%.2f MiB), without reuse %d B (%.1f MiB)%n",
                        p.steps().size(), p.buffers().size(), p.peakBytes(), p.peakBytes() / 1048576.0, p.naiveBytes(), p.naiveBytes() / 1048576.0);
                assertTrue(p.dump().contains("plan for"));
            }
        }
    }

    @Test
    void unboundSymbolsAndBrokenBoundsAreRefused() throws Exception {
        try (Graph g = OnnxImporter.load(MiniLm.onnx())) {
            Passes.optimize(g);
            var e = assertThrows(IllegalArgumentException.class, () -> Planner.plan(g, Map.of("batch_size", 1L)));
            assertTrue(e.getMessage().contains("sequence_length"), e.getMessage());
            var e2 = assertThrows(IllegalArgumentException.class, () -> Planner.plan(g, Map.of("batch_size", 1L, "sequence_length", 600L)));
            assertTrue(e2.getMessage().contains("exceeds 512"), e2.getMessage());
        }
    }
}
