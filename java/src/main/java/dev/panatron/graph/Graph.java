package dev.panatron.graph;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * A model as a dataflow graph: typed {@link Value}s (inputs, constants, intermediates) and
 * {@link Node}s in topological order. Importers and builders make graphs, passes
 * ({@link Passes}, {@link Fusions}) rewrite them in place, the {@link Planner} lays their
 * intermediates out in one arena, and a {@link Session} runs them.
 *
 * <p>A graph owns the memory of its constants (memory-mapped weight files, folded constants):
 * {@link #close()} frees it; sessions made from a graph must not outlive it. Graphs are not
 * thread-safe while being rewritten; a finished graph may be run by several sessions.
 */
public final class Graph implements AutoCloseable {
    private final String name;
    private final List<Value> inputs = new ArrayList<>();
    private final List<Value> outputs = new ArrayList<>();
    private final List<Node> nodes = new ArrayList<>();
    private final List<Value> constants = new ArrayList<>();
    private final Map<String, Value> names = new HashMap<>();
    private final List<Constraint> constraints = new ArrayList<>();
    private final Arena arena = Arena.ofShared();
    private final List<AutoCloseable> resources = new ArrayList<>();
    private boolean closed;

    /** A bound a symbolic dim must respect at run time, e.g. sequence_length <= 512. */
    public record Constraint(Dim dim, long max, String why) {
        @Override
        public String toString() { return dim + " <= " + max + " (" + why + ")"; }
    }

    Graph(String name) { this.name = name == null || name.isEmpty() ? "graph" : name; }

    public String name() { return name; }

    public List<Value> inputs() { return Collections.unmodifiableList(inputs); }

    public List<Value> outputs() { return Collections.unmodifiableList(outputs); }

    /** The nodes in execution (topological) order. */
    public List<Node> nodes() { return Collections.unmodifiableList(nodes); }

    /** The constants the graph holds (weights and folded values). */
    public List<Value> constants() { return Collections.unmodifiableList(constants); }

    /** Bounds on symbolic dims found by shape inference (checked when planning). */
    public List<Constraint> constraints() { return Collections.unmodifiableList(constraints); }

    /** The value named {@code name}, or null. */
    public Value value(String name) { return names.get(name); }

    /** The input named {@code name}. @throws IllegalArgumentException when there is none */
    public Value input(String name) {
        for (Value v : inputs) if (v.name().equals(name)) return v;
        throw new IllegalArgumentException("graph '" + this.name + "' has no input '" + name + "' (inputs: " + inputNames() + ")");
    }

    List<String> inputNames() { return inputs.stream().map(Value::name).toList(); }

    /** Number of nodes per op, in op order. */
    public Map<Op, Integer> opCounts() {
        Map<Op, Integer> m = new TreeMap<>();
        for (Node n : nodes) m.merge(n.op(), 1, Integer::sum);
        return m;
    }

    /** Total bytes of the constants. */
    public long constantBytes() {
        long b = 0;
        for (Value v : constants) b += v.constantData().byteSize();
        return b;
    }

    /** The arena folded constants and imported copies live in (closed with the graph). */
    public Arena arena() {
        if (closed) throw new IllegalStateException("graph '" + name + "' is closed");
        return arena;
    }

    /** Ties the lifetime of {@code r} (e.g. a mapped weight file) to this graph. */
    public void own(AutoCloseable r) { resources.add(r); }

    // ---------------------------------------------------------------- building (package)

    String freshName(String base) {
        if (!names.containsKey(base)) return base;
        for (int i = 1; ; i++) {
            String n = base + "_" + i;
            if (!names.containsKey(n)) return n;
        }
    }

    private void register(Value v) {
        if (names.containsKey(v.name())) throw new IllegalArgumentException("graph '" + name + "': duplicate value name '" + v.name() + "'");
        names.put(v.name(), v);
    }

    Value addInput(Value v) {
        register(v);
        inputs.add(v);
        return v;
    }

    Value addConstant(String n, TensorData data) {
        Value v = Value.constant(n, data);
        register(v);
        constants.add(v);
        return v;
    }

    Value newValue(String n, dev.panatron.DType dtype, Shape shape) {
        Value v = new Value(freshName(n), dtype, shape);
        register(v);
        return v;
    }

    /** Registers a value created elsewhere under its name (import). */
    Value addValue(Value v) {
        register(v);
        return v;
    }

    void addOutput(Value v) { outputs.add(v); }

    void setOutput(int i, Value v) { outputs.set(i, v); }

    Node addNode(Node n) {
        nodes.add(n);
        return n;
    }

    void insertNode(int index, Node n) { nodes.add(index, n); }

    int indexOf(Node n) {
        for (int i = 0; i < nodes.size(); i++) if (nodes.get(i) == n) return i;
        return -1;
    }

    void removeNodes(Collection<Node> dead) {
        Set<Node> s = Collections.newSetFromMap(new IdentityHashMap<>());
        s.addAll(dead);
        nodes.removeIf(s::contains);
    }

    /** Turns an intermediate into a constant (constant folding) and records it. */
    void promoteToConstant(Value v, TensorData data) {
        v.makeConstant(data);
        constants.add(v);
    }

    void removeConstants(Set<Value> dead) {
        constants.removeIf(dead::contains);
        for (Value v : dead) names.remove(v.name());
    }

    void forget(Value v) { names.remove(v.name()); }

    void removeConstraints(java.util.function.Predicate<Constraint> p) { constraints.removeIf(p); }

    void addConstraint(Constraint c) {
        if (!constraints.contains(c)) constraints.add(c);
    }

    /** Replaces every use of {@code old} (node inputs and graph outputs) by {@code by}. */
    void replaceUses(Value old, Value by) {
        for (Node n : nodes) {
            for (int i = 0; i < n.inputs().size(); i++) if (n.input(i) == old) n.setInput(i, by);
        }
        for (int i = 0; i < outputs.size(); i++) if (outputs.get(i) == old) outputs.set(i, by);
    }

    /** Producer and consumer index of the current nodes (rebuild after rewriting). */
    Uses uses() { return new Uses(this); }

    static final class Uses {
        final Map<Value, Node> producer = new IdentityHashMap<>();
        final Map<Value, List<Node>> consumers = new IdentityHashMap<>();
        final Set<Value> graphOutputs = Collections.newSetFromMap(new IdentityHashMap<>());

        Uses(Graph g) {
            for (Node n : g.nodes) {
                for (Value o : n.outputs()) producer.put(o, n);
                for (Value i : n.inputs()) if (i != null) consumers.computeIfAbsent(i, k -> new ArrayList<>()).add(n);
            }
            graphOutputs.addAll(g.outputs);
        }

        Node producer(Value v) { return v == null ? null : producer.get(v); }

        List<Node> consumers(Value v) { return consumers.getOrDefault(v, List.of()); }

        /** The producer of v if it is an {@code op} node, else null. */
        Node producer(Value v, Op op) {
            Node n = producer(v);
            return n != null && n.op() == op ? n : null;
        }

        /** True when v is used only by nodes in {@code set} and is not a graph output. */
        boolean onlyUsedBy(Value v, Set<Node> set) {
            if (graphOutputs.contains(v)) return false;
            for (Node c : consumers(v)) if (!set.contains(c)) return false;
            return true;
        }
    }

    // ---------------------------------------------------------------- checks

    /**
     * Checks that nodes are in topological order, every input is defined before use, and every
     * value has one producer.
     *
     * @throws GraphException naming the first offending node and value
     */
    public void validate() {
        Set<Value> defined = Collections.newSetFromMap(new IdentityHashMap<>());
        defined.addAll(inputs);
        defined.addAll(constants);
        for (Node n : nodes) {
            for (Value i : n.inputs()) {
                if (i != null && !defined.contains(i) && !i.isKnown()) {
                    throw new GraphException(n, "input '" + i.name() + "' is not defined before this node (no producer, initializer or graph input)");
                }
            }
            for (Value o : n.outputs()) {
                if (!defined.add(o)) throw new GraphException(n, "output '" + o.name() + "' is produced twice");
            }
        }
        for (Value o : outputs) {
            if (!defined.contains(o) && !o.isKnown()) throw new IllegalStateException("graph '" + name + "': output '" + o.name() + "' is never produced");
        }
    }

    // ---------------------------------------------------------------- dump

    /** A readable listing: inputs, outputs, op counts, and one line per node with types. */
    public String dump() {
        StringBuilder sb = new StringBuilder();
        sb.append("graph ").append(name).append(": ").append(nodes.size()).append(" nodes, ")
                .append(constants.size()).append(" constants (").append(Planner.human(constantBytes())).append(")\n");
        for (Value v : inputs) sb.append("  input  ").append(v).append('\n');
        for (Value v : outputs) sb.append("  output ").append(v).append('\n');
        for (Constraint c : constraints) sb.append("  where  ").append(c).append('\n');
        Map<String, Integer> counts = new LinkedHashMap<>();
        opCounts().forEach((k, v) -> counts.put(k.label(), v));
        sb.append("  ops    ").append(counts).append('\n');
        for (Node n : nodes) {
            sb.append("  ").append(n);
            sb.append("  : ");
            for (int i = 0; i < n.outputs().size(); i++) sb.append(i > 0 ? ", " : "").append(n.output(i).typeString());
            sb.append('\n');
        }
        return sb.toString();
    }

    @Override
    public String toString() { return "graph " + name + " (" + nodes.size() + " nodes)"; }

    /** Frees the memory of the constants (and mapped files). Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        RuntimeException first = null;
        for (AutoCloseable r : resources.reversed()) {
            try {
                r.close();
            } catch (Exception e) {
                if (first == null) first = new IllegalStateException("closing " + r + " failed", e);
            }
        }
        arena.close();
        if (first != null) throw first;
    }

    boolean isClosed() { return closed; }

    static <T> Set<T> identitySet() { return Collections.newSetFromMap(new IdentityHashMap<>()); }

    static <T> Set<T> identitySet(Collection<T> c) {
        Set<T> s = identitySet();
        s.addAll(c);
        return s;
    }
}
