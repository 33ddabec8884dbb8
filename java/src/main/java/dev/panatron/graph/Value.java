package dev.panatron.graph;

import dev.panatron.DType;

import java.util.List;
import java.util.Objects;

/**
 * A value of a graph: a graph input, a constant (weights, folded results), or the output of a
 * node. It has a name, a dtype and a {@link Shape} (null until shape inference has run for
 * values without a declared shape).
 *
 * <p>Small integer vectors computed from shapes (ONNX's {@code Shape -> Gather -> Concat}
 * chains) may carry a {@linkplain #symbolicData() symbolic content}: their elements as
 * {@link Dim}s, known before run time. The planner materializes them for concrete inputs.
 */
public final class Value {
    private final String name;
    private DType dtype;
    private Shape shape;
    private TensorData constant;   // non-null for constants
    private List<Dim> symbolic;    // known content of a small int vector (shape values), or null

    Value(String name, DType dtype, Shape shape) {
        this.name = Objects.requireNonNull(name, "name");
        this.dtype = Objects.requireNonNull(dtype, "dtype");
        this.shape = shape;
    }

    static Value constant(String name, TensorData data) {
        Value v = new Value(name, data.dtype(), Shape.of(data.shape()));
        v.constant = data;
        return v;
    }

    public String name() { return name; }

    public DType dtype() { return dtype; }

    /** The shape, or null when not inferred yet. */
    public Shape shape() { return shape; }

    /** True for a constant (an initializer, a folded value). */
    public boolean isConstant() { return constant != null; }

    /** The data of a constant, else null. */
    public TensorData constantData() { return constant; }

    /** The symbolic content of a shape-valued int vector, else null (see the class doc). */
    public List<Dim> symbolicData() { return symbolic; }

    /** True when the value's content is known before run time (constant or symbolic). */
    public boolean isKnown() { return constant != null || symbolic != null; }

    void setShape(Shape s) { this.shape = s; }

    void setDtype(DType d) { this.dtype = d; }

    void makeConstant(TensorData data) {
        this.constant = data;
        this.dtype = data.dtype();
        this.shape = Shape.of(data.shape());
        this.symbolic = null;
    }

    void setSymbolic(List<Dim> content) { this.symbolic = content == null ? null : List.copyOf(content); }

    /** "f32[batch_size, sequence_length, 384]". */
    public String typeString() {
        return dtype.name().toLowerCase() + (shape == null ? "[?]" : shape.toString());
    }

    @Override
    public String toString() { return name + ": " + typeString(); }
}
