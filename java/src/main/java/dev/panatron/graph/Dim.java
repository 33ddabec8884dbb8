package dev.panatron.graph;

import java.util.Collections;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * One dimension of a shape: a number ({@code 384}) or a product of a number and symbols
 * ({@code batch_size}, {@code 12*batch_size*sequence_length}). Symbols are bound to numbers when a
 * graph is planned for concrete inputs.
 *
 * <p>Products (monomials) are closed under multiplication and exact division, which is what
 * reshapes, flattens and matmuls of transformer graphs need. Sums of symbolic dims are not
 * representable: {@link #plus} and {@link #minus} return null for them, and shape inference
 * reports such a dim as unsupported.
 */
public final class Dim {
    private final long coef;
    private final Map<String, Integer> symbols; // symbol -> power, sorted, immutable

    private Dim(long coef, Map<String, Integer> symbols) {
        this.coef = coef;
        this.symbols = symbols;
    }

    /**
     * A static dim. Negative numbers are allowed only as elements of shape-valued vectors
     * (a Reshape target's -1, a Slice's negative start), never as a dim of a {@link Shape}.
     */
    public static Dim of(long value) {
        return new Dim(value, Map.of());
    }

    /** A symbolic dim named {@code name} (e.g. "batch_size"). */
    public static Dim sym(String name) {
        if (name == null || name.isEmpty()) throw new IllegalArgumentException("empty dim symbol");
        TreeMap<String, Integer> m = new TreeMap<>();
        m.put(name, 1);
        return new Dim(1, Collections.unmodifiableMap(m));
    }

    /** True when the dim is a number. */
    public boolean isStatic() { return symbols.isEmpty() || coef == 0; }

    /** The number of a static dim. @throws IllegalStateException for a symbolic dim */
    public long value() {
        if (!isStatic()) throw new IllegalStateException("dim " + this + " is symbolic");
        return coef;
    }

    /** The symbol of a dim that is exactly one symbol, else null. */
    public String symbol() {
        if (coef != 1 || symbols.size() != 1) return null;
        Map.Entry<String, Integer> e = symbols.entrySet().iterator().next();
        return e.getValue() == 1 ? e.getKey() : null;
    }

    /** The symbols this dim uses (empty for a static dim). */
    public java.util.Set<String> symbols() { return isStatic() ? java.util.Set.of() : symbols.keySet(); }

    public Dim times(Dim o) {
        if (coef == 0 || o.coef == 0) return of(0);
        TreeMap<String, Integer> m = new TreeMap<>(symbols);
        o.symbols.forEach((k, v) -> m.merge(k, v, Integer::sum));
        return new Dim(Math.multiplyExact(coef, o.coef), Collections.unmodifiableMap(m));
    }

    public Dim times(long k) { return times(of(k)); }

    /** {@code this / o} when it divides exactly as a monomial, else null. */
    public Dim div(Dim o) {
        if (o.coef == 0) return null;
        if (coef % o.coef != 0) return null;
        TreeMap<String, Integer> m = new TreeMap<>(symbols);
        for (Map.Entry<String, Integer> e : o.symbols.entrySet()) {
            int have = m.getOrDefault(e.getKey(), 0);
            if (have < e.getValue()) return null;
            if (have == e.getValue()) m.remove(e.getKey());
            else m.put(e.getKey(), have - e.getValue());
        }
        return new Dim(coef / o.coef, Collections.unmodifiableMap(m));
    }

    /** {@code this + o} when both are static or the same monomial up to the factor, else null. */
    public Dim plus(Dim o) {
        if (isStatic() && o.isStatic()) return of(Math.addExact(coef, o.coef));
        if (o.isStatic() && o.coef == 0) return this;
        if (isStatic() && coef == 0) return o;
        if (symbols.equals(o.symbols)) return new Dim(Math.addExact(coef, o.coef), symbols);
        return null;
    }

    /** {@code this - o} when representable (see {@link #plus}), else null. */
    public Dim minus(Dim o) {
        if (isStatic() && o.isStatic()) return of(Math.subtractExact(coef, o.coef));
        if (o.isStatic() && o.coef == 0) return this;
        if (symbols.equals(o.symbols) && coef >= o.coef) return coef == o.coef ? of(0) : new Dim(coef - o.coef, symbols);
        return null;
    }

    /**
     * The number this dim stands for under {@code bindings} (symbol -> value).
     *
     * @throws IllegalArgumentException when a symbol is not bound
     */
    public long eval(Map<String, Long> bindings) {
        long v = coef;
        for (Map.Entry<String, Integer> e : symbols.entrySet()) {
            Long b = bindings.get(e.getKey());
            if (b == null) throw new IllegalArgumentException("dim symbol '" + e.getKey() + "' is not bound (bound: " + bindings.keySet() + ")");
            for (int i = 0; i < e.getValue(); i++) v = Math.multiplyExact(v, b);
        }
        return v;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Dim d)) return false;
        if (isStatic() && d.isStatic()) return coef == d.coef;
        return coef == d.coef && symbols.equals(d.symbols);
    }

    @Override
    public int hashCode() { return isStatic() ? Long.hashCode(coef) : Objects.hash(coef, symbols); }

    @Override
    public String toString() {
        if (isStatic()) return Long.toString(coef);
        StringBuilder sb = new StringBuilder();
        if (coef != 1) sb.append(coef);
        for (Map.Entry<String, Integer> e : symbols.entrySet()) {
            for (int i = 0; i < e.getValue(); i++) {
                if (!sb.isEmpty()) sb.append('*');
                sb.append(e.getKey());
            }
        }
        return sb.toString();
    }
}
