package dev.panatron.graph;

import dev.panatron.DType;

/**
 * Graph rewrites for packed variable-length batches: several sequences laid end to end as one
 * row of {@code T} tokens (batch 1, no padding token computed), attention kept within each
 * sequence by cumulative offsets ({@link Session#planPacked}).
 *
 * <p>What depends on a token's position inside its sequence must then come from the caller:
 * {@link #positionIdsAsInput} turns the position ids that BERT-family graphs slice from a
 * constant {@code arange} ({@code Slice(position_ids, 0, seq)}, folded at plan time) into a
 * graph input, which a padded batch fills with 0 .. S-1 and a packed one with each sequence's
 * own positions.
 */
public final class Packing {
    private Packing() {}

    /**
     * Replaces the ids of the position-embedding gather ({@code Gather(table, Slice(arange, 0,
     * seq))} with a constant float table and a constant arange) by a new i64 graph input of the
     * same shape, removes the slice (and the sequence-length bound it implied: the caller checks
     * each sequence against the table's rows) and returns the input's name; null (graph
     * unchanged) when there is not exactly one such gather.
     */
    public static String positionIdsAsInput(Graph g) {
        Node found = null;
        Node slice = null;
        for (Node n : g.nodes()) {
            if (n.op() != Op.GATHER || n.inputs().size() < 2) continue;
            Value table = n.input(0), ids = n.input(1);
            if (!table.isConstant() || !table.dtype().isFloat() || table.shape().rank() != 2 || ids.isConstant() || ids.dtype().isFloat()) continue;
            Node p = null;
            for (Node m : g.nodes()) if (m.outputs().contains(ids)) p = m;
            if (p == null || p.op() != Op.SLICE || !p.input(0).isConstant() || !isArange(p.input(0).constantData())) continue;
            if (found != null) return null;
            found = n;
            slice = p;
        }
        if (found == null) return null;
        Value ids = found.input(1);
        for (Node m : g.nodes()) if (m != found && m.inputs().contains(ids)) return null;   // the slice feeds something else too
        Value in = new Value(g.freshName("position_ids"), DType.I64, ids.shape());
        g.addInput(in);
        found.setInput(1, in);
        String why = slice.describe() + " on '" + slice.input(0).name() + "'";
        g.removeConstraints(c -> c.why().equals(why));
        Passes.eliminateDeadCode(g);
        return in.name();
    }

    /** True when every ATTENTION node has a key-padding mask or none (the packed layout then needs no mask). */
    public static boolean attentionPackable(Graph g) {
        boolean any = false;
        for (Node n : g.nodes()) {
            if (n.op() != Op.ATTENTION) continue;
            any = true;
            if (n.inputs().size() > 3 && n.input(3) != null && n.attrLong("key_padding", 0) == 0) return false;
        }
        return any;
    }

    private static boolean isArange(TensorData t) {
        if (t.dtype().isFloat() || t.numel() < 2) return false;
        for (long i = 0; i < t.numel(); i++) if (t.getLong(i) != i) return false;
        return true;
    }
}
