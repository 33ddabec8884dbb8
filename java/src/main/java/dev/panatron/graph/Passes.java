package dev.panatron.graph;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Graph rewrites that do not change results: shape inference, constant folding (including the
 * shape-computing chains of exported graphs), dead-code elimination, and {@link #optimize} —
 * the standard pipeline with the {@link Fusions}.
 */
public final class Passes {
    private Passes() {}

    /** Largest result (bytes) constant folding materializes. */
    static final long MAX_FOLD_BYTES = 64L << 20;

    /** What a pipeline did: node counts before and after, and per-pass rewrite counts. */
    public record Report(int nodesBefore, int nodesAfter, List<String> log) {
        @Override
        public String toString() {
            return nodesBefore + " -> " + nodesAfter + " nodes " + log;
        }
    }

    /**
     * The standard pipeline: infer shapes, fold constants and shape chains, drop dead nodes, fuse
     * LayerNorm (with its residual add), GELU, MatMul+Add (+GELU), attention and its key-padding
     * mask, drop dead nodes again.
     *
     * @throws GraphException when shapes cannot be inferred
     */
    public static Report optimize(Graph g) {
        int before = g.nodes().size();
        List<String> log = new ArrayList<>();
        inferShapes(g);
        log.add("fold " + foldConstants(g));
        log.add("dce " + eliminateDeadCode(g));
        log.add("layer_norm " + Fusions.layerNorm(g));
        log.add("add_layer_norm " + Fusions.addLayerNorm(g));
        log.add("gelu " + Fusions.gelu(g));
        log.add("linear " + Fusions.linear(g));
        log.add("attention " + Fusions.attention(g));
        log.add("key_padding " + Fusions.keyPaddingMask(g));
        log.add("dce " + eliminateDeadCode(g));
        inferShapes(g);
        g.validate();
        return new Report(before, g.nodes().size(), log);
    }

    /** Infers dtypes, shapes and shape-vector contents of every node output. */
    public static void inferShapes(Graph g) { ShapeInference.run(g); }

    /**
     * Evaluates every node whose inputs are all known before run time: constants are computed by
     * {@link RefOps} (up to {@value #MAX_FOLD_BYTES} bytes per result), shape vectors keep their
     * symbolic content. The folded nodes are removed; their outputs become constants or
     * symbolic values. Needs inferred shapes.
     *
     * @return the number of nodes folded
     */
    public static int foldConstants(Graph g) {
        List<Node> folded = new ArrayList<>();
        for (Node n : g.nodes()) {
            boolean outputsKnown = true;
            for (Value o : n.outputs()) outputsKnown &= o.symbolicData() != null;
            boolean inputsConst = true;
            for (Value i : n.inputs()) inputsConst &= i == null || i.isConstant();
            if (inputsConst && !n.inputs().isEmpty() && n.outputs().size() == 1) {
                Value o = n.output(0);
                if (o.shape().isStatic() && o.shape().numel().value() * o.dtype().byteSize() <= MAX_FOLD_BYTES) {
                    TensorData[] in = new TensorData[n.inputs().size()];
                    for (int i = 0; i < in.length; i++) in[i] = n.input(i) == null ? null : n.input(i).constantData();
                    TensorData out = TensorData.allocate(g.arena(), o.dtype(), o.shape().toLongs());
                    try {
                        RefOps.execute(null, n, in, new TensorData[] {out});
                    } catch (RuntimeException e) {
                        throw new GraphException(n, "constant folding failed: " + e.getMessage());
                    }
                    g.promoteToConstant(o, out);
                    folded.add(n);
                    continue;
                }
            }
            if (outputsKnown) {
                for (Value o : n.outputs()) {
                    if (ShapeInference.allStatic(o.symbolicData()) && o.shape().isStatic()) {
                        TensorData t = TensorData.allocate(g.arena(), o.dtype(), o.shape().toLongs());
                        List<Dim> c = o.symbolicData();
                        for (int i = 0; i < c.size(); i++) t.setLong(i, c.get(i).value());
                        g.promoteToConstant(o, t);
                    }
                }
                folded.add(n);
            }
        }
        g.removeNodes(folded);
        return folded.size();
    }

    /**
     * Removes nodes none of whose outputs is used (by a node or as a graph output), repeatedly,
     * and the constants nothing uses any more.
     *
     * @return the number of nodes removed
     */
    public static int eliminateDeadCode(Graph g) {
        Set<Value> live = Graph.identitySet(g.outputs());
        List<Node> dead = new ArrayList<>();
        List<Node> nodes = g.nodes();
        for (int i = nodes.size() - 1; i >= 0; i--) {
            Node n = nodes.get(i);
            boolean used = false;
            for (Value o : n.outputs()) used |= live.contains(o);
            if (!used) {
                dead.add(n);
                continue;
            }
            for (Value in : n.inputs()) if (in != null) live.add(in);
        }
        g.removeNodes(dead);
        Set<Value> unused = Graph.identitySet();
        for (Value c : g.constants()) if (!live.contains(c)) unused.add(c);
        g.removeConstants(unused);
        for (Node n : dead) for (Value o : n.outputs()) g.forget(o);
        return dead.size();
    }
}
