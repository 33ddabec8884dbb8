package dev.panatron.graph;

import dev.panatron.DType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One operator call of a graph: {@code outputs = op(inputs, attributes)}. An input may be null
 * where an optional input is absent. Attribute values are {@code Long}, {@code Double},
 * {@code long[]}, {@code String}, {@link DType} or {@link TensorData} (see {@link Op}).
 */
public final class Node {
    private final Op op;
    private final String name;
    private final List<Value> inputs;
    private final List<Value> outputs;
    private final Map<String, Object> attrs;

    Node(Op op, String name, List<Value> inputs, List<Value> outputs, Map<String, Object> attrs) {
        this.op = Objects.requireNonNull(op, "op");
        this.name = name == null ? "" : name;
        this.inputs = new ArrayList<>(inputs);
        this.outputs = new ArrayList<>(outputs);
        this.attrs = new LinkedHashMap<>(attrs);
    }

    public Op op() { return op; }

    /** The node's name (from the model file or the builder; may be empty). */
    public String name() { return name; }

    public List<Value> inputs() { return Collections.unmodifiableList(inputs); }

    public List<Value> outputs() { return Collections.unmodifiableList(outputs); }

    /** Input {@code i}, or null when absent (optional input, or i past the end). */
    public Value input(int i) { return i < inputs.size() ? inputs.get(i) : null; }

    public Value output(int i) { return outputs.get(i); }

    public Map<String, Object> attributes() { return Collections.unmodifiableMap(attrs); }

    void setInput(int i, Value v) {
        while (inputs.size() <= i) inputs.add(null);
        inputs.set(i, v);
    }

    void trimInputs(int n) {
        while (inputs.size() > n) inputs.removeLast();
    }

    void setAttr(String key, Object v) { attrs.put(key, v); }

    public boolean hasAttr(String key) { return attrs.containsKey(key); }

    public long attrLong(String key, long dflt) {
        Object v = attrs.get(key);
        return v == null ? dflt : ((Number) v).longValue();
    }

    public double attrDouble(String key, double dflt) {
        Object v = attrs.get(key);
        return v == null ? dflt : ((Number) v).doubleValue();
    }

    public long[] attrLongs(String key) {
        Object v = attrs.get(key);
        return v == null ? null : ((long[]) v).clone();
    }

    public String attrString(String key, String dflt) {
        Object v = attrs.get(key);
        return v == null ? dflt : v.toString();
    }

    public Object attr(String key) { return attrs.get(key); }

    /** "layer_norm '/encoder/layer.0/output/LayerNorm'" — for error messages. */
    public String describe() {
        return op.label() + (name.isEmpty() ? "" : " '" + name + "'");
    }

    static String formatAttr(Object v) {
        if (v instanceof long[] a) return Arrays.toString(a);
        if (v instanceof Double d) return Float.toString(d.floatValue());
        if (v instanceof TensorData t) return t.numel() == 1 ? t.toString() + "{" + t.getDouble(0) + "}" : t.toString();
        if (v instanceof DType d) return d.name().toLowerCase();
        return String.valueOf(v);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < outputs.size(); i++) sb.append(i > 0 ? ", " : "").append(outputs.get(i).name());
        sb.append(" = ").append(op.label()).append('(');
        for (int i = 0; i < inputs.size(); i++) {
            sb.append(i > 0 ? ", " : "").append(inputs.get(i) == null ? "_" : inputs.get(i).name());
        }
        sb.append(')');
        if (!attrs.isEmpty()) {
            sb.append(" {");
            boolean first = true;
            for (Map.Entry<String, Object> e : attrs.entrySet()) {
                sb.append(first ? "" : ", ").append(e.getKey()).append('=').append(formatAttr(e.getValue()));
                first = false;
            }
            sb.append('}');
        }
        return sb.toString();
    }
}
