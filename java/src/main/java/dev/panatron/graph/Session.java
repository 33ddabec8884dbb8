package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;

import java.lang.foreign.Arena;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Runs a {@link Graph}: binds the symbolic dims from the input shapes, takes (or makes and
 * caches) the {@link Plan} for those dims, copies the inputs into the plan's arena, executes
 * the steps through one switch over the ops, and copies the outputs out.
 *
 * <p>The switch in {@link #execute} is the kernel binding: each op calls either its
 * {@link NativeOps} kernel or its {@link RefOps} Java reference, with the same arguments, so
 * moving an op to native code is a one-word change there.
 *
 * <p>{@link #run} is synchronized (a plan's arena is reused by every run). {@link #close()}
 * frees the plans; the graph and the context stay the caller's.
 */
public final class Session implements AutoCloseable {
    /** Plans kept (by bindings), least recently used dropped first. */
    static final int MAX_PLANS = 8;

    private final Graph graph;
    private final Context ctx;
    private final Map<Map<String, Long>, Plan> plans = new LinkedHashMap<>(16, 0.75f, true);
    private boolean closed;

    private Session(Graph graph, Context ctx) {
        this.graph = graph;
        this.ctx = ctx;
    }

    /**
     * A session over {@code graph} (shapes inferred; passes already applied as wanted) whose
     * kernels use {@code ctx}.
     *
     * @throws GraphException when the graph is invalid or a shape cannot be inferred
     */
    public static Session create(Graph graph, Context ctx) {
        Objects.requireNonNull(graph, "graph");
        Objects.requireNonNull(ctx, "context");
        graph.validate();
        for (Node n : graph.nodes()) {
            for (Value o : n.outputs()) if (o.shape() == null) ShapeInference.run(graph);
        }
        return new Session(graph, ctx);
    }

    public Graph graph() { return graph; }

    /**
     * Runs the graph.
     *
     * @param inputs one tensor per graph input, by name (integer inputs are converted between
     *               i32 and i64 as the graph needs)
     * @return the graph outputs by name, as fresh tensors (valid after later runs)
     * @throws IllegalArgumentException for a missing or unknown input, a wrong dtype or rank, dims
     *         that disagree with each other or with the graph's static dims or bounds
     * @throws IllegalStateException when the session or the graph is closed
     */
    public synchronized Map<String, TensorData> run(Map<String, TensorData> inputs) {
        checkOpen();
        Objects.requireNonNull(inputs, "inputs");
        Plan plan = plan(bind(inputs));
        for (Value in : graph.inputs()) copyIn(inputs.get(in.name()), plan.view(in), in.name());
        for (Plan.Step s : plan.steps()) {
            try {
                execute(s);
            } catch (GraphException | dev.panatron.PanatronException e) {
                throw new GraphException(s.node().describe() + " failed: " + e.getMessage(), e);
            }
        }
        Map<String, TensorData> out = new LinkedHashMap<>();
        Arena a = Arena.ofAuto();
        for (Value o : graph.outputs()) out.put(o.name(), plan.view(o).copy(a));
        return out;
    }

    /**
     * Like {@link #run}, adding each op's wall time (ms) to {@code msPerOp} — for profiling
     * (benchmarks), not for production calls.
     */
    public synchronized Map<String, TensorData> runProfiled(Map<String, TensorData> inputs, Map<Op, Double> msPerOp) {
        checkOpen();
        Plan plan = plan(bind(inputs));
        for (Value in : graph.inputs()) copyIn(inputs.get(in.name()), plan.view(in), in.name());
        for (Plan.Step s : plan.steps()) {
            long t0 = System.nanoTime();
            execute(s);
            msPerOp.merge(s.node().op(), (System.nanoTime() - t0) / 1e6, Double::sum);
        }
        Map<String, TensorData> out = new LinkedHashMap<>();
        Arena a = Arena.ofAuto();
        for (Value o : graph.outputs()) out.put(o.name(), plan.view(o).copy(a));
        return out;
    }

    /** The plan for {@code bindings} (made on first use and cached). */
    public synchronized Plan plan(Map<String, Long> bindings) {
        checkOpen();
        Plan p = plans.get(bindings);
        if (p == null) {
            p = Planner.plan(graph, bindings, ctx.threads());
            plans.put(Map.copyOf(bindings), p);
            if (plans.size() > MAX_PLANS) {
                Iterator<Plan> it = plans.values().iterator();
                it.next().close();
                it.remove();
            }
        }
        return p;
    }

    // ================================================================ the kernel binding

    /** Executes one step. Native where a kernel exists; RefOps (Java) otherwise. */
    private void execute(Plan.Step s) {
        Node n = s.node();
        TensorData[] in = s.in();
        TensorData out = s.out()[0];
        switch (n.op()) {
            case LINEAR -> NativeOps.linear(ctx, in[0], in[1], in(in, 2), in(in, 3), n.attrLong("transB", 0) != 0, n.attrString("activation", "none"), out);
            case MATMUL -> NativeOps.matmul(ctx, in[0], in[1], out);
            case ATTENTION -> NativeOps.attention(ctx, in[0], in[1], in[2], in(in, 3), (int) n.attrLong("num_heads", 1), n.attrDouble("scale", 0), out, s.scratch());
            case LAYER_NORM -> RefOps.layerNorm(ctx, in[0], in[1], in(in, 2), n.attrDouble("epsilon", 1e-5), out);
            case GELU -> RefOps.gelu(ctx, in[0], "tanh".equals(n.attrString("approximate", "none")), out);
            case SOFTMAX -> RefOps.softmax(ctx, in[0], (int) ShapeInference.norm(n, n.attrLong("axis", -1), in[0].rank()), out);
            case ADD, SUB, MUL, DIV, POW, EQUAL, LESS, GREATER -> RefOps.binary(ctx, n.op(), in[0], in[1], out);
            case GATHER -> RefOps.gather(in[0], in[1], (int) ShapeInference.norm(n, n.attrLong("axis", 0), in[0].rank()), out);
            case TRANSPOSE -> RefOps.transpose(in[0], RefOps.perm(n, in[0].rank()), out);
            case SQRT, ERF, EXP, TANH, SIGMOID, RELU, NEG, RECIPROCAL, NOT -> RefOps.unary(ctx, n.op(), in[0], out);
            // shape bookkeeping, masks, casts: small, Java only
            case WHERE, CAST, REDUCE_MEAN, REDUCE_SUM, SHAPE, RESHAPE, UNSQUEEZE, SQUEEZE, IDENTITY, CONCAT, SLICE,
                 EXPAND, CONSTANT_OF_SHAPE, RANGE, GEMM -> RefOps.execute(ctx, n, in, s.out());
        }
    }

    private static TensorData in(TensorData[] in, int i) { return i < in.length ? in[i] : null; }

    // ================================================================ inputs

    /** Binds each symbolic input dim to the size given; checks static dims and consistency. */
    Map<String, Long> bind(Map<String, TensorData> inputs) {
        for (String k : inputs.keySet()) {
            if (graph.value(k) == null || !graph.inputs().contains(graph.value(k))) {
                throw new IllegalArgumentException("unknown input '" + k + "' (graph inputs: " + graph.inputNames() + ")");
            }
        }
        Map<String, Long> b = new java.util.TreeMap<>();
        Map<String, String> from = new java.util.HashMap<>();
        for (Value in : graph.inputs()) {
            TensorData t = inputs.get(in.name());
            if (t == null) throw new IllegalArgumentException("missing input '" + in.name() + "' (" + in.typeString() + ")");
            List<Dim> dims = in.shape().dims();
            if (t.rank() != dims.size()) {
                throw new IllegalArgumentException("input '" + in.name() + "' must be " + in.typeString() + ", got " + t);
            }
            for (int i = 0; i < dims.size(); i++) {
                Dim d = dims.get(i);
                long got = t.dim(i);
                String sym = d.symbol();
                if (sym != null) {
                    Long prev = b.putIfAbsent(sym, got);
                    if (prev == null) from.put(sym, in.name());
                    else if (prev != got) {
                        throw new IllegalArgumentException("input '" + in.name() + "' " + t + ": dim " + i + " ('" + sym + "') is " + got
                                + " but input '" + from.get(sym) + "' set it to " + prev);
                    }
                } else if (d.isStatic() && d.value() != got) {
                    throw new IllegalArgumentException("input '" + in.name() + "' must be " + in.typeString() + ", got " + t);
                }
            }
        }
        for (Value in : graph.inputs()) {
            long[] want = in.shape().eval(b);
            if (!java.util.Arrays.equals(want, inputs.get(in.name()).shape())) {
                throw new IllegalArgumentException("input '" + in.name() + "' must be " + java.util.Arrays.toString(want) + ", got " + inputs.get(in.name()));
            }
        }
        return b;
    }

    private static void copyIn(TensorData src, TensorData dst, String name) {
        if (src.dtype() == dst.dtype()) {
            src.copyTo(dst);
        } else if (!src.dtype().isFloat() && !dst.dtype().isFloat() && src.dtype() != DType.U4) {
            for (long i = 0; i < src.numel(); i++) dst.setLong(i, src.getLong(i));
        } else {
            throw new IllegalArgumentException("input '" + name + "' must be " + dst.dtype().name().toLowerCase() + ", got " + src);
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("session is closed");
        if (graph.isClosed()) throw new IllegalStateException("graph '" + graph.name() + "' is closed");
    }

    /** Frees the plans' arenas. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Plan p : plans.values()) p.close();
        plans.clear();
    }
}
