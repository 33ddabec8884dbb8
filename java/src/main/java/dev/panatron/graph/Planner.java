package dev.panatron.graph;

import dev.panatron.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Lays a graph out for concrete dims: resolves every shape under the bindings, materializes
 * values known before run time (constants, shape vectors, and small node outputs that depend
 * on the dims only, such as position ids and their embeddings: computed here once), turns the
 * remaining nodes into steps, and gives every runtime value an offset in ONE arena.
 *
 * <p>Views (reshape, squeeze, unsqueeze, identity) share their source's buffer, which is then
 * live for the union of their lifetimes. Buffers are placed greedily, largest first, at the
 * lowest 64-byte-aligned offset that does not collide with a buffer live at the same time
 * (the "greedy by size" heuristic of TFLite's arena planner). A node's scratch (attention
 * scores) is a buffer live during that step only.
 */
public final class Planner {
    private Planner() {}

    /** Alignment of every buffer in the arena. */
    public static final long ALIGN = 64;

    /**
     * Plans {@code g} for {@code bindings} (symbol -> value).
     *
     * @throws IllegalArgumentException when a symbol is unbound or a constraint (e.g.
     *         sequence_length <= 512) is violated
     * @throws GraphException when a shape is not inferred
     */
    public static Plan plan(Graph g, Map<String, Long> bindings) { return plan(g, bindings, 1); }

    /**
     * Plans {@code g} for {@code bindings}, with per-node scratch sized for {@code workers}
     * threads (a session passes its context's thread count).
     *
     * @throws IllegalArgumentException when a symbol is unbound or a constraint is violated
     * @throws GraphException when a shape is not inferred
     */
    public static Plan plan(Graph g, Map<String, Long> bindings, int workers) {
        for (Graph.Constraint c : g.constraints()) {
            long v = c.dim().eval(bindings);
            if (v > c.max()) {
                throw new IllegalArgumentException(c.dim() + " = " + v + " exceeds " + c.max() + ": " + c.why());
            }
        }
        List<Node> nodes = g.nodes();
        Arena arena = Arena.ofShared();
        try {
            return layout(g, nodes, bindings, arena, Math.max(1, workers));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static final class Buf {
        final Value root;
        final List<Value> aliases = new ArrayList<>();
        final long bytes;
        int first, last;
        long offset = -1;

        Buf(Value root, long bytes, int first) {
            this.root = root;
            this.bytes = bytes;
            this.first = first;
            this.last = first;
        }
    }

    private static Plan layout(Graph g, List<Node> nodes, Map<String, Long> bindings, Arena arena, int workers) {
        Map<Value, TensorData> views = new IdentityHashMap<>();
        Map<Value, long[]> shapes = new IdentityHashMap<>();
        Map<Value, Buf> bufOf = new IdentityHashMap<>();
        List<Buf> bufs = new ArrayList<>();

        // 1. known values: constants and shape vectors
        for (Value c : g.constants()) views.put(c, c.constantData());
        for (Node n : nodes) {
            for (Value v : n.inputs()) if (v != null) known(v, bindings, views, arena);
            for (Value v : n.outputs()) known(v, bindings, views, arena);
        }
        for (Value v : g.outputs()) known(v, bindings, views, arena);

        // 2. runtime values: graph inputs, then outputs of nodes that must run
        for (Value in : g.inputs()) {
            Buf b = new Buf(in, bytes(in, bindings, shapes), -1);
            bufOf.put(in, b);
            bufs.add(b);
        }
        List<Node> run = new ArrayList<>();
        for (Node n : nodes) {
            boolean allKnown = true;
            for (Value o : n.outputs()) allKnown &= views.containsKey(o);
            if (allKnown) continue;
            if (foldAtPlanTime(n, bindings, views, shapes, arena)) continue;
            for (Value v : n.inputs()) {
                if (v != null && !views.containsKey(v) && !bufOf.containsKey(v)) {
                    throw new GraphException(n, "input '" + v.name() + "' has no data (not an input, constant, or earlier output)");
                }
            }
            Value src = n.input(0);
            if (n.op().isView() && bufOf.containsKey(src)) {
                Buf b = bufOf.get(src);          // same memory, new shape: no step
                bytes(n.output(0), bindings, shapes);
                bufOf.put(n.output(0), b);
                b.aliases.add(n.output(0));
                continue;
            }
            if (n.op().isView() && views.containsKey(src)) {
                TensorData d = views.get(src);
                views.put(n.output(0), d.reshape(shape(n.output(0), bindings, shapes)));
                continue;
            }
            int step = run.size();
            run.add(n);
            for (Value v : n.inputs()) if (v != null && bufOf.containsKey(v)) bufOf.get(v).last = step;
            for (Value o : n.outputs()) {
                Buf b = new Buf(o, bytes(o, bindings, shapes), step);
                bufOf.put(o, b);
                bufs.add(b);
            }
        }
        int end = run.size();
        for (Value o : g.outputs()) if (bufOf.containsKey(o)) bufOf.get(o).last = end;

        // scratch of the steps that need one (none today: flash attention keeps its tiles in
        // the kernel's own thread-local workspace)
        Map<Integer, Buf> scratch = new HashMap<>();

        // 3. place: largest first, lowest aligned offset free during the buffer's lifetime
        List<Buf> order = new ArrayList<>(bufs);
        order.sort(Comparator.comparingLong((Buf b) -> -b.bytes).thenComparingInt(b -> b.first));
        List<Buf> placed = new ArrayList<>();
        long peak = 0, naive = 0;
        for (Buf b : order) {
            naive += align(b.bytes);
            List<Buf> live = new ArrayList<>();
            for (Buf p : placed) if (p.first <= b.last && b.first <= p.last) live.add(p);
            live.sort(Comparator.comparingLong(p -> p.offset));
            long off = 0;
            for (Buf p : live) {
                if (off + b.bytes <= p.offset) break;
                off = Math.max(off, align(p.offset + p.bytes));
            }
            b.offset = off;
            placed.add(b);
            peak = Math.max(peak, align(off + b.bytes));
        }

        // 4. one arena, views into it
        MemorySegment mem = arena.allocate(Math.max(peak, ALIGN), ALIGN);
        for (Map.Entry<Value, Buf> e : bufOf.entrySet()) {
            Value v = e.getKey();
            Buf b = e.getValue();
            long[] s = shape(v, bindings, shapes);
            long n = TensorData.numel(s) * v.dtype().byteSize();
            views.put(v, TensorData.wrap(mem.asSlice(b.offset, n), v.dtype(), s));
        }
        List<Plan.Step> steps = new ArrayList<>();
        for (int i = 0; i < run.size(); i++) {
            Node n = run.get(i);
            TensorData[] in = new TensorData[n.inputs().size()];
            for (int j = 0; j < in.length; j++) in[j] = n.input(j) == null ? null : views.get(n.input(j));
            TensorData[] out = new TensorData[n.outputs().size()];
            for (int j = 0; j < out.length; j++) out[j] = views.get(n.output(j));
            Buf sb = scratch.get(i);
            TensorData sc = sb == null ? null : TensorData.wrap(mem.asSlice(sb.offset, sb.bytes), DType.U8, sb.bytes);
            steps.add(new Plan.Step(n, in, out, sc));
        }
        List<Plan.Buffer> report = new ArrayList<>();
        List<Buf> byOffset = new ArrayList<>(bufs);
        byOffset.sort(Comparator.comparingLong((Buf b) -> b.offset).thenComparingInt(b -> b.first));
        for (Buf b : byOffset) {
            String name = b.root == null ? "(scratch of step " + b.first + " " + run.get(b.first).op().label() + ")" : b.root.name();
            report.add(new Plan.Buffer(name, b.aliases.stream().map(Value::name).toList(), b.offset, b.bytes, b.first, b.last));
        }
        return new Plan(bindings, steps, report, peak, naive, arena, views);
    }

    /** Largest output (bytes) a node computed at plan time may have. */
    static final long MAX_PLAN_FOLD_BYTES = 4L << 20;

    /**
     * Computes {@code n} now (with {@link RefOps}) when all its inputs are known for these
     * bindings and its output is small: what depends only on the dims, such as the position ids
     * {@code Slice(position_ids, 0, sequence_length)} and the position embeddings gathered by
     * them, then costs nothing per run.
     */
    private static boolean foldAtPlanTime(Node n, Map<String, Long> bindings, Map<Value, TensorData> views, Map<Value, long[]> shapes,
                                          Arena arena) {
        if (n.outputs().size() != 1 || n.inputs().isEmpty() || n.op().isView()) return false;
        for (Value v : n.inputs()) if (v != null && !views.containsKey(v)) return false;
        Value o = n.output(0);
        long[] s = shape(o, bindings, shapes);
        if (TensorData.numel(s) * o.dtype().byteSize() > MAX_PLAN_FOLD_BYTES) return false;
        TensorData[] in = new TensorData[n.inputs().size()];
        for (int i = 0; i < in.length; i++) in[i] = n.input(i) == null ? null : views.get(n.input(i));
        TensorData out = TensorData.allocate(arena, o.dtype(), s);
        RefOps.execute(null, n, in, new TensorData[] {out});
        views.put(o, out);
        return true;
    }

    /** Materializes a value known before run time (symbolic content) under the bindings. */
    private static void known(Value v, Map<String, Long> bindings, Map<Value, TensorData> views, Arena arena) {
        if (views.containsKey(v)) return;
        if (v.isConstant()) {
            views.put(v, v.constantData());
            return;
        }
        List<Dim> c = v.symbolicData();
        if (c == null) return;
        long[] s = v.shape().eval(bindings);
        TensorData t = TensorData.allocate(arena, v.dtype(), s);
        for (int i = 0; i < c.size(); i++) t.setLong(i, c.get(i).eval(bindings));
        views.put(v, t);
    }

    private static long[] shape(Value v, Map<String, Long> bindings, Map<Value, long[]> cache) {
        long[] s = cache.get(v);
        if (s == null) {
            if (v.shape() == null) throw new GraphException("value '" + v.name() + "' has no inferred shape");
            s = v.shape().eval(bindings);
            cache.put(v, s);
        }
        return s;
    }

    private static long bytes(Value v, Map<String, Long> bindings, Map<Value, long[]> cache) {
        return TensorData.numel(shape(v, bindings, cache)) * v.dtype().byteSize();
    }

    static long align(long x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

    /** "12.3 MiB". */
    static String human(long bytes) {
        if (bytes < 1024) return bytes + " B";
        if (bytes < 1024 * 1024) return String.format("%.1f KiB", bytes / 1024.0);
        if (bytes < 1024L * 1024 * 1024) return String.format("%.1f MiB", bytes / (1024.0 * 1024));
        return String.format("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    }
}
