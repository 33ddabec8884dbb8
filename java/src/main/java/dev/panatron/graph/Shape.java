package dev.panatron.graph;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The shape of a value: a list of {@link Dim}s, outermost first; rank 0 is a scalar.
 * Immutable.
 */
public final class Shape {
    private final List<Dim> dims;

    private Shape(List<Dim> dims) {
        for (Dim d : dims) {
            if (d.isStatic() && d.value() < 0) throw new IllegalArgumentException("negative dim in shape " + dims);
        }
        this.dims = List.copyOf(dims);
    }

    public static Shape of(List<Dim> dims) { return new Shape(dims); }

    public static Shape of(Dim... dims) { return new Shape(Arrays.asList(dims)); }

    /** A static shape. */
    public static Shape of(long... dims) {
        List<Dim> l = new ArrayList<>(dims.length);
        for (long d : dims) l.add(Dim.of(d));
        return new Shape(l);
    }

    /** The rank-0 shape of a scalar. */
    public static Shape scalar() { return new Shape(List.of()); }

    public int rank() { return dims.size(); }

    /** Dim {@code i}; negative i counts from the end. */
    public Dim dim(int i) { return dims.get(i < 0 ? dims.size() + i : i); }

    public List<Dim> dims() { return dims; }

    /** True when every dim is a number. */
    public boolean isStatic() {
        for (Dim d : dims) if (!d.isStatic()) return false;
        return true;
    }

    /** The product of the dims (a Dim, possibly symbolic). */
    public Dim numel() {
        Dim n = Dim.of(1);
        for (Dim d : dims) n = n.times(d);
        return n;
    }

    /** The numbers of a static shape. @throws IllegalStateException when symbolic */
    public long[] toLongs() {
        long[] r = new long[dims.size()];
        for (int i = 0; i < r.length; i++) r[i] = dims.get(i).value();
        return r;
    }

    /** The concrete shape under {@code bindings}. */
    public long[] eval(Map<String, Long> bindings) {
        long[] r = new long[dims.size()];
        for (int i = 0; i < r.length; i++) r[i] = dims.get(i).eval(bindings);
        return r;
    }

    @Override
    public boolean equals(Object o) { return o instanceof Shape s && s.dims.equals(dims); }

    @Override
    public int hashCode() { return dims.hashCode(); }

    @Override
    public String toString() { return dims.toString(); }
}
