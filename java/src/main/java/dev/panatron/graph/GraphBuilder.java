package dev.panatron.graph;

import dev.panatron.DType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Builds a {@link Graph} node by node; each node's output types are inferred as it is added,
 * so a mistake fails at the node that makes it. Importers and model builders use it; the
 * typed helpers ({@link #linear}, {@link #layerNorm}, {@link #attention}, ...) keep a
 * hand-written forward pass readable:
 *
 * <pre>{@code
 * GraphBuilder b = GraphBuilder.create("mlp");
 * Value x = b.input("x", DType.F32, Dim.sym("batch"), Dim.of(64));
 * Value h = b.linear(x, b.constant("w1", w1), b.constant("b1", b1), false, "gelu");
 * b.output(b.layerNorm(h, b.constant("g", g), b.constant("beta", beta), 1e-5));
 * Graph g = b.build();
 * }</pre>
 */
public final class GraphBuilder {
    private final Graph g;
    private int counter;
    private boolean built;

    private GraphBuilder(String name) { this.g = new Graph(name); }

    public static GraphBuilder create(String name) { return new GraphBuilder(name); }

    /** The graph being built (to {@link Graph#own} resources, or use its {@link Graph#arena()}). */
    public Graph graph() { return g; }

    /** A graph input of {@code dtype} and shape {@code dims} (symbolic dims name the symbol). */
    public Value input(String name, DType dtype, Dim... dims) {
        check();
        return g.addInput(new Value(name, dtype, Shape.of(dims)));
    }

    /** A constant (the data's memory must outlive the graph, or be owned by it). */
    public Value constant(String name, TensorData data) {
        check();
        return g.addConstant(g.freshName(name), data);
    }

    /** A scalar f32 constant. */
    public Value scalar(float v) { return constant("const", copy(TensorData.scalar(v))); }

    /** An i64 vector whose elements are dims (symbolic ones resolved when planned): a reshape target. */
    public Value dims(Dim... dims) {
        check();
        Value v = g.addValue(new Value(g.freshName("dims"), DType.I64, Shape.of(dims.length)));
        v.setSymbolic(Arrays.asList(dims));
        boolean allStatic = true;
        for (Dim d : dims) allStatic &= d.isStatic();
        if (allStatic) {
            long[] l = new long[dims.length];
            for (int i = 0; i < l.length; i++) l[i] = dims[i].value();
            g.forget(v);
            return constant(v.name(), copy(TensorData.ofLongs(l, l.length)));
        }
        return v;
    }

    private TensorData copy(TensorData t) { return t.copy(g.arena()); }

    /**
     * Adds {@code op(inputs)} with {@code attrs}, named {@code name}, whose outputs are named
     * {@code outputNames}; infers their types.
     *
     * @throws GraphException when the inputs do not fit the op
     */
    public List<Value> node(Op op, String name, Map<String, Object> attrs, List<Value> inputs, List<String> outputNames) {
        check();
        List<Value> outs = new ArrayList<>();
        for (String o : outputNames) outs.add(g.addValue(new Value(o, DType.F32, null)));
        Node n = new Node(op, name, inputs, outs, attrs);
        g.addNode(n);
        ShapeInference.infer(g, n);
        return outs;
    }

    /** Adds a one-output node with generated names. */
    public Value node(Op op, Map<String, Object> attrs, Value... inputs) {
        String base = op.label() + "_" + (counter++);
        return node(op, base, attrs, Arrays.asList(inputs), List.of(g.freshName(base))).getFirst();
    }

    /** Marks {@code v} as a graph output. */
    public void output(Value v) {
        check();
        g.addOutput(v);
    }

    /**
     * Finishes the graph.
     *
     * @throws GraphException when the graph is not well formed (see {@link Graph#validate()})
     */
    public Graph build() {
        check();
        if (g.outputs().isEmpty()) throw new GraphException("graph '" + g.name() + "' has no outputs");
        g.validate();
        built = true;
        return g;
    }

    private void check() {
        if (built) throw new IllegalStateException("graph '" + g.name() + "' is already built");
    }

    // ---------------------------------------------------------------- typed helpers

    public Value add(Value a, Value b) { return node(Op.ADD, Map.of(), a, b); }

    public Value sub(Value a, Value b) { return node(Op.SUB, Map.of(), a, b); }

    public Value mul(Value a, Value b) { return node(Op.MUL, Map.of(), a, b); }

    public Value div(Value a, Value b) { return node(Op.DIV, Map.of(), a, b); }

    public Value matmul(Value a, Value b) { return node(Op.MATMUL, Map.of(), a, b); }

    /** {@code act(x @ w + bias)}; w [K, N], or [N, K] (PyTorch layout) when transB; bias may be null. */
    public Value linear(Value x, Value w, Value bias, boolean transB, String activation) {
        Value[] in = bias == null ? new Value[] {x, w} : new Value[] {x, w, bias};
        return node(Op.LINEAR, Map.of("transB", transB ? 1L : 0L, "activation", activation), in);
    }

    public Value layerNorm(Value x, Value gamma, Value beta, double eps) {
        return node(Op.LAYER_NORM, Map.of("epsilon", eps), beta == null ? new Value[] {x, gamma} : new Value[] {x, gamma, beta});
    }

    public Value gelu(Value x) { return node(Op.GELU, Map.of("approximate", "none"), x); }

    public Value softmax(Value x, int axis) { return node(Op.SOFTMAX, Map.of("axis", (long) axis), x); }

    public Value reshape(Value x, Dim... dims) { return node(Op.RESHAPE, Map.of(), x, dims(dims)); }

    public Value transpose(Value x, long... perm) { return node(Op.TRANSPOSE, Map.of("perm", perm.clone()), x); }

    public Value unsqueeze(Value x, long... axes) { return node(Op.UNSQUEEZE, Map.of("axes", axes.clone()), x); }

    public Value cast(Value x, DType to) { return node(Op.CAST, Map.of("to", to), x); }

    /** Rows of {@code table} picked by {@code ids} (an embedding lookup: Gather on axis 0). */
    public Value gather(Value table, Value ids) { return node(Op.GATHER, Map.of("axis", 0L), table, ids); }

    /** Multi-head attention over packed [B, S, H*D] q, k, v with an additive mask (or null). */
    public Value attention(Value q, Value k, Value v, Value mask, int heads, double scale) {
        return node(Op.ATTENTION, Map.of("num_heads", (long) heads, "scale", scale), mask == null ? new Value[] {q, k, v} : new Value[] {q, k, v, mask});
    }
}
