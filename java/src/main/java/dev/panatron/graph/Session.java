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
 * the steps, and copies the outputs out.
 *
 * <p>When a plan is made, each of its steps is bound once to the code that runs it
 * ({@link NativeOps#bind}: kernel views, options and packed weights resolved then), so a run
 * walks an array of bound steps and allocates nothing on the way. A reference session
 * ({@link Options#REFERENCE}) binds every step to its plain-Java {@link RefOps} twin instead:
 * the independent reference the tests compare with.
 *
 * <p>Weights (the constant right-hand operands of LINEAR nodes) are packed once per session
 * into the GEMM kernel's layout, in f32 or, with {@link Options#withPrecision} BF16, rounded to
 * bf16 for AMX-BF16 products (activations stay f32 and are rounded while the GEMM packs them).
 *
 * <p>For callers that fill inputs and read outputs in place ({@code Embedder}):
 * {@link #plan(Map)} gives the plan, {@link Plan#view(String)} its input and output views, and
 * {@link #execute(Plan)} runs it; hold the session's monitor ({@code synchronized (session)})
 * across the three, since a plan's memory is reused by every run.
 *
 * <p>{@link #run} is synchronized. {@link #close()} frees the plans and packed weights; the
 * graph and the context stay the caller's (and must outlive the session).
 */
public final class Session implements AutoCloseable {
    /** Plans kept (by bindings), least recently used dropped first. */
    static final int MAX_PLANS = 8;

    /**
     * How a session computes.
     *
     * @param precision F32, or BF16: weights rounded to bf16 and the linear layers' products on
     *                  AMX-BF16 (or AVX512-BF16) where the CPU has it
     * @param reference every step in plain Java ({@link RefOps}, double-precision accumulation):
     *                  slow; the reference of the tests
     */
    public record Options(DType precision, boolean reference) {
        /** Native kernels, f32. */
        public static final Options DEFAULT = new Options(DType.F32, false);
        /** The plain-Java reference (f32 data, double accumulation). */
        public static final Options REFERENCE = new Options(DType.F32, true);

        /** @throws IllegalArgumentException for a precision other than F32 or BF16 */
        public Options {
            Objects.requireNonNull(precision, "precision");
            if (precision != DType.F32 && precision != DType.BF16) {
                throw new IllegalArgumentException("precision must be F32 or BF16, got " + precision);
            }
        }

        public Options withPrecision(DType p) { return new Options(p, reference); }
    }

    private final Graph graph;
    private final Context ctx;
    private final Options options;
    private final Weights weights;
    private final Map<Map<String, Long>, Plan> plans = new LinkedHashMap<>(16, 0.75f, true);
    private boolean closed;

    private Session(Graph graph, Context ctx, Options options) {
        this.graph = graph;
        this.ctx = ctx;
        this.options = options;
        this.weights = options.reference() ? null : new Weights(options.precision());
    }

    /**
     * A session over {@code graph} (shapes inferred; passes already applied as wanted) whose
     * kernels use {@code ctx}: native kernels, f32.
     *
     * @throws GraphException when the graph is invalid or a shape cannot be inferred
     */
    public static Session create(Graph graph, Context ctx) { return create(graph, ctx, Options.DEFAULT); }

    /**
     * A session with explicit {@link Options}.
     *
     * @throws GraphException when the graph is invalid or a shape cannot be inferred
     */
    public static Session create(Graph graph, Context ctx, Options options) {
        Objects.requireNonNull(graph, "graph");
        Objects.requireNonNull(ctx, "context");
        Objects.requireNonNull(options, "options");
        graph.validate();
        for (Node n : graph.nodes()) {
            for (Value o : n.outputs()) if (o.shape() == null) ShapeInference.run(graph);
        }
        return new Session(graph, ctx, options);
    }

    public Graph graph() { return graph; }

    public Options options() { return options; }

    /** Bytes of the packed weights made so far (they are packed when the first plan is bound). */
    public synchronized long packedWeightBytes() { return weights == null ? 0 : weights.bytes(); }

    /**
     * Runs the graph.
     *
     * @param inputs one tensor per graph input, by name (integer inputs are converted between
     *               i32 and i64 as the graph needs)
     * @return the graph outputs by name, as fresh tensors (valid after later runs)
     * @throws IllegalArgumentException for a missing or unknown input, a wrong dtype or rank, dims
     *         that disagree with each other or with the graph's static dims or bounds
     * @throws GraphException           when a step fails (e.g. a token id outside the embedding table)
     * @throws IllegalStateException    when the session or the graph is closed
     */
    public synchronized Map<String, TensorData> run(Map<String, TensorData> inputs) {
        checkOpen();
        Objects.requireNonNull(inputs, "inputs");
        Plan plan = plan(bind(inputs));
        for (Value in : graph.inputs()) copyIn(inputs.get(in.name()), plan.view(in), in.name());
        execute(plan);
        return outputs(plan);
    }

    /**
     * Runs {@code plan} (made by this session's {@link #plan(Map)}) on the inputs already written
     * into its input views; the outputs are left in its output views until its next run.
     *
     * @throws IllegalArgumentException when the plan is not one of this session's
     * @throws GraphException           when a step fails
     * @throws IllegalStateException    when the session or the graph is closed
     */
    public synchronized void execute(Plan plan) {
        checkOpen();
        Runnable[] bound = boundSteps(plan);
        List<Plan.Step> steps = plan.steps();
        for (int i = 0; i < bound.length; i++) {
            try {
                bound[i].run();
            } catch (dev.panatron.PanatronException | IllegalArgumentException e) {
                throw new GraphException(steps.get(i).node().describe() + " failed: " + e.getMessage(), e);
            }
        }
    }

    /**
     * Like {@link #run}, adding each op's wall time (ms) to {@code msPerOp} — for profiling
     * (benchmarks), not for production calls.
     */
    public synchronized Map<String, TensorData> runProfiled(Map<String, TensorData> inputs, Map<Op, Double> msPerOp) {
        return runProfiled(inputs, msPerOp, System::nanoTime);
    }

    /**
     * Like {@link #runProfiled(Map, Map)} with another clock (nanoseconds), e.g. the calling
     * thread's CPU time, which a single-threaded run on a loaded machine needs.
     */
    public synchronized Map<String, TensorData> runProfiled(Map<String, TensorData> inputs, Map<Op, Double> msPerOp,
                                                            java.util.function.LongSupplier clock) {
        checkOpen();
        Plan plan = plan(bind(inputs));
        for (Value in : graph.inputs()) copyIn(inputs.get(in.name()), plan.view(in), in.name());
        Runnable[] bound = boundSteps(plan);
        List<Plan.Step> steps = plan.steps();
        for (int i = 0; i < bound.length; i++) {
            long t0 = clock.getAsLong();
            bound[i].run();
            msPerOp.merge(steps.get(i).node().op(), (clock.getAsLong() - t0) / 1e6, Double::sum);
        }
        return outputs(plan);
    }

    private Map<String, TensorData> outputs(Plan plan) {
        Map<String, TensorData> out = new LinkedHashMap<>();
        Arena a = Arena.ofAuto();
        for (Value o : graph.outputs()) out.put(o.name(), plan.view(o).copy(a));
        return out;
    }

    /**
     * The plan for {@code bindings} (symbol -> size), made, bound and cached on first use.
     *
     * @throws IllegalArgumentException when a symbol is unbound or a bound is exceeded
     * @throws IllegalStateException    when the session or the graph is closed
     */
    public synchronized Plan plan(Map<String, Long> bindings) {
        checkOpen();
        Plan p = plans.get(bindings);
        if (p == null) {
            p = Planner.plan(graph, bindings, ctx.threads());
            try {
                List<Plan.Step> steps = p.steps();
                Runnable[] bound = new Runnable[steps.size()];
                for (int i = 0; i < bound.length; i++) {
                    Plan.Step s = steps.get(i);
                    bound[i] = options.reference() ? () -> RefOps.execute(ctx, s.node(), s.in(), s.out()) : NativeOps.bind(ctx, p, s, weights);
                }
                p.bind(this, bound);
            } catch (RuntimeException e) {
                p.close();
                throw e;
            }
            plans.put(Map.copyOf(bindings), p);
            if (plans.size() > MAX_PLANS) {
                Iterator<Plan> it = plans.values().iterator();
                it.next().close();
                it.remove();
            }
        }
        return p;
    }

    private Runnable[] boundSteps(Plan plan) {
        Runnable[] b = plan.bound(this);
        if (b == null || !plan.isOpen()) throw new IllegalArgumentException("the plan is not one of this session's open plans");
        return b;
    }

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

    /** Frees the plans' arenas and the packed weights. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Plan p : plans.values()) p.close();
        plans.clear();
        if (weights != null) weights.close();
    }
}
