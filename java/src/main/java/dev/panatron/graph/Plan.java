package dev.panatron.graph;

import java.lang.foreign.Arena;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * A graph laid out for concrete dims: every runtime value has a place in ONE arena (reused by
 * liveness), every node to run is a {@link Step} with its input and output views bound.
 * Made by {@link Planner#plan}; owned and run by a {@link Session}; {@link #close()} frees the arena.
 */
public final class Plan implements AutoCloseable {
    /** One node to execute, with its views (an absent optional input is null). */
    public record Step(Node node, TensorData[] in, TensorData[] out, TensorData scratch) {}

    /**
     * A region of the arena: the value it holds (the first of its alias group: views share
     * their source's buffer), byte offset and size, and the steps between which it is live
     * (inclusive; graph inputs are live from -1, graph outputs to the last step).
     */
    public record Buffer(String value, List<String> aliases, long offset, long bytes, int firstStep, int lastStep) {
        /** True when the two buffers are live at a common step. */
        public boolean overlapsInTime(Buffer o) { return firstStep <= o.lastStep && o.firstStep <= lastStep; }

        /** True when the two buffers share a byte of the arena. */
        public boolean overlapsInMemory(Buffer o) { return offset < o.offset + o.bytes && o.offset < offset + bytes; }
    }

    private final Map<String, Long> bindings;
    private final List<Step> steps;
    private final List<Buffer> buffers;
    private final long peakBytes;
    private final long naiveBytes;
    private final Arena arena;
    final Map<Value, TensorData> views; // every value's data for these dims (runtime and known)
    private final Map<String, TensorData> byName = new java.util.HashMap<>();
    private TensorData packedSeqlens;   // i32 [B+1] cumulative offsets of a packed plan, else null
    private Object owner;               // the session that bound the steps
    private Runnable[] bound;           // the steps' code, bound by that session

    Plan(Map<String, Long> bindings, List<Step> steps, List<Buffer> buffers, long peakBytes, long naiveBytes, Arena arena,
         Map<Value, TensorData> views) {
        this.bindings = Map.copyOf(bindings);
        this.steps = List.copyOf(steps);
        this.buffers = List.copyOf(buffers);
        this.peakBytes = peakBytes;
        this.naiveBytes = naiveBytes;
        this.arena = arena;
        this.views = views;
        for (Map.Entry<Value, TensorData> e : views.entrySet()) byName.put(e.getKey().name(), e.getValue());
    }

    /**
     * The cumulative sequence offsets of a packed plan ({@link Session#planPacked}): i32
     * [maxSequences + 1], filled by the caller before each run (0 = cu[0] <= ... <= cu[last] =
     * the token count; empty sequences allowed); null for a padded plan.
     */
    public TensorData packedSeqlens() { return packedSeqlens; }

    void setPackedSeqlens(TensorData cu) { this.packedSeqlens = cu; }

    /** The arena of this plan (for buffers its bound steps own). */
    Arena arena() { return arena; }

    synchronized void bind(Object session, Runnable[] steps) {
        this.owner = session;
        this.bound = steps;
    }

    /** The bound steps, when {@code session} bound them. */
    synchronized Runnable[] bound(Object session) { return owner == session ? bound : null; }

    /** True until {@link #close()}. */
    public boolean isOpen() { return arena.scope().isAlive(); }

    /** The symbol values this plan is for. */
    public Map<String, Long> bindings() { return bindings; }

    public List<Step> steps() { return steps; }

    public List<Buffer> buffers() { return Collections.unmodifiableList(buffers); }

    /** Bytes of the arena (the peak of simultaneously live intermediates, with alignment). */
    public long peakBytes() { return peakBytes; }

    /** Bytes the same values would take without reuse (each its own buffer). */
    public long naiveBytes() { return naiveBytes; }

    /** The data of {@code v} under this plan (a view into the arena, or constant data). */
    public TensorData view(Value v) { return views.get(v); }

    /**
     * The data of the value named {@code name} (a graph input or output, say) under this plan:
     * a view into the arena that later runs overwrite.
     *
     * @throws IllegalArgumentException when no value of that name has data in this plan
     */
    public TensorData view(String name) {
        TensorData t = byName.get(name);
        if (t == null) throw new IllegalArgumentException("no value '" + name + "' in this plan");
        return t;
    }

    /** A readable listing: bindings, peak vs. no-reuse bytes, the buffers, then the steps. */
    public String dump() {
        StringBuilder sb = new StringBuilder();
        sb.append("plan for ").append(bindings).append(": ").append(steps.size()).append(" steps, ")
                .append(buffers.size()).append(" buffers, arena ").append(Planner.human(peakBytes))
                .append(" (").append(peakBytes).append(" B; without reuse ").append(Planner.human(naiveBytes)).append(")\n");
        sb.append("  buffers (offset, bytes, live steps, value [+ views]):\n");
        for (Buffer b : buffers) {
            sb.append(String.format("    @%-10d %10d  [%3d, %3d]  %s", b.offset(), b.bytes(), b.firstStep(), b.lastStep(), b.value()));
            if (!b.aliases().isEmpty()) sb.append(" + ").append(b.aliases());
            sb.append('\n');
        }
        sb.append("  steps:\n");
        for (int i = 0; i < steps.size(); i++) {
            Step s = steps.get(i);
            sb.append(String.format("    %3d  %-12s", i, s.node().op().label()));
            for (int j = 0; j < s.out().length; j++) sb.append(j > 0 ? ", " : "").append(s.node().output(j).name()).append(' ').append(s.out()[j]);
            if (s.scratch() != null) sb.append("  scratch ").append(s.scratch().byteSize()).append(" B");
            sb.append('\n');
        }
        return sb.toString();
    }

    /** Frees the arena. Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) arena.close();
    }
}
