package dev.panatron.graph;

import dev.panatron.DType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Infers the dtype and (symbolic) shape of every node output from its inputs, and the
 * symbolic content of small shape-valued int vectors ({@code Shape -> Gather -> Unsqueeze ->
 * Concat -> Reshape} chains), so that reshapes whose target depends on the input size get a
 * known output shape such as {@code [batch_size, sequence_length, 12, 32]}.
 *
 * <p>Broadcasting follows numpy. Dims are {@link Dim} monomials; a result that needs a sum of
 * symbols (concatenating two symbolic dims, say) is reported as unsupported.
 */
final class ShapeInference {
    private ShapeInference() {}

    /** Largest int vector whose content is tracked symbolically. */
    static final int MAX_CONTENT = 64;

    /** Infers every node, in order. @throws GraphException at the first node that does not fit */
    static void run(Graph g) {
        for (Node n : g.nodes()) infer(g, n);
    }

    /** Sets the dtype, shape and symbolic content of {@code n}'s outputs. */
    static void infer(Graph g, Node n) {
        for (Value in : n.inputs()) {
            if (in != null && in.shape() == null) throw new GraphException(n, "input '" + in.name() + "' has no known shape");
        }
        try {
            inferOp(g, n);
        } catch (GraphException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new GraphException(n, "shape inference failed: " + e.getMessage() + " (inputs " + inputTypes(n) + ")");
        }
        for (Value o : n.outputs()) {
            List<Dim> c = o.symbolicData();
            if (c != null && o.shape() != null && (o.shape().rank() > 1 || !o.shape().numel().equals(Dim.of(c.size())))) {
                o.setSymbolic(null);
            }
        }
    }

    static String inputTypes(Node n) {
        List<String> l = new ArrayList<>();
        for (Value v : n.inputs()) l.add(v == null ? "_" : v.name() + ": " + v.typeString());
        return l.toString();
    }

    /** The {@code dtype} attribute of a fused op (its output dtype), else {@code dflt}. */
    static DType outDtype(Node n, DType dflt) {
        Object d = n.attr("dtype");
        return d instanceof DType t ? t : dflt;
    }

    private static void set(Value out, DType dt, Shape s) {
        out.setDtype(dt);
        out.setShape(s);
        out.setSymbolic(null);
    }

    private static void inferOp(Graph g, Node n) {
        Value x = n.input(0);
        Value out = n.output(0);
        switch (n.op()) {
            case ADD, SUB, MUL, DIV, POW -> {
                Value y = need(n, 1);
                if (x.dtype() != y.dtype()) throw new GraphException(n, "dtypes differ: " + x.typeString() + " vs " + y.typeString());
                set(out, x.dtype(), broadcast(n, x.shape(), y.shape()));
                out.setSymbolic(arith(n.op(), content(x), content(y)));
            }
            case EQUAL, LESS, GREATER -> {
                Value y = need(n, 1);
                set(out, DType.U8, broadcast(n, x.shape(), y.shape()));
                out.setSymbolic(compare(n.op(), content(x), content(y)));
            }
            case WHERE -> {
                Value a = need(n, 1), b = need(n, 2);
                if (a.dtype() != b.dtype()) throw new GraphException(n, "branch dtypes differ: " + a.typeString() + " vs " + b.typeString());
                set(out, a.dtype(), broadcast(n, broadcast(n, x.shape(), a.shape()), b.shape()));
                out.setSymbolic(where(content(x), content(a), content(b)));
            }
            case SQRT, ERF, EXP, TANH, SIGMOID, RELU, RECIPROCAL, SOFTMAX -> {
                if (!x.dtype().isFloat()) throw new GraphException(n, "needs a float input, got " + x.typeString());
                set(out, x.dtype(), x.shape());
            }
            case GELU -> {
                if (!x.dtype().isFloat()) throw new GraphException(n, "needs a float input, got " + x.typeString());
                set(out, outDtype(n, x.dtype()), x.shape());
            }
            case NEG -> {
                set(out, x.dtype(), x.shape());
                List<Dim> c = content(x);
                if (c != null && allStatic(c)) out.setSymbolic(c.stream().map(d -> Dim.of(-d.value())).toList());
            }
            case NOT -> set(out, DType.U8, x.shape());
            case IDENTITY -> {
                set(out, x.dtype(), x.shape());
                out.setSymbolic(content(x));
            }
            case CAST -> {
                DType to = (DType) n.attr("to");
                if (to == null) throw new GraphException(n, "missing attribute 'to'");
                set(out, to, x.shape());
                if (!to.isFloat()) out.setSymbolic(content(x));
            }
            case REDUCE_MEAN, REDUCE_SUM -> {
                int r = x.shape().rank();
                boolean[] red = reducedAxes(n, r);
                boolean keep = n.attrLong("keepdims", 1) != 0;
                List<Dim> dims = new ArrayList<>();
                for (int i = 0; i < r; i++) {
                    if (!red[i]) dims.add(x.shape().dim(i));
                    else if (keep) dims.add(Dim.of(1));
                }
                set(out, x.dtype(), Shape.of(dims));
            }
            case SHAPE -> {
                int r = x.shape().rank();
                int start = (int) normClamp(n.attrLong("start", 0), r), end = (int) normClamp(n.attrLong("end", r), r);
                List<Dim> c = x.shape().dims().subList(start, Math.max(start, end));
                set(out, DType.I64, Shape.of(c.size()));
                out.setSymbolic(c);
            }
            case RESHAPE -> {
                List<Dim> target = content(need(n, 1));
                if (target == null) throw new GraphException(n, "the target shape '" + n.input(1).name() + "' is not known before run time");
                set(out, x.dtype(), reshape(n, x.shape(), target, n.attrLong("allowzero", 0) != 0));
                out.setSymbolic(content(x));
            }
            case TRANSPOSE -> {
                int r = x.shape().rank();
                long[] perm = n.attrLongs("perm");
                if (perm == null) {
                    perm = new long[r];
                    for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
                }
                checkPerm(n, perm, r);
                List<Dim> dims = new ArrayList<>();
                for (long p : perm) dims.add(x.shape().dim((int) p));
                set(out, x.dtype(), Shape.of(dims));
            }
            case UNSQUEEZE -> {
                long[] axes = requireAxes(n);
                int r = x.shape().rank() + axes.length;
                boolean[] ins = new boolean[r];
                for (long a : axes) {
                    int ax = (int) norm(n, a, r);
                    if (ins[ax]) throw new GraphException(n, "axis " + a + " repeated in " + Arrays.toString(axes));
                    ins[ax] = true;
                }
                List<Dim> dims = new ArrayList<>();
                int k = 0;
                for (int i = 0; i < r; i++) dims.add(ins[i] ? Dim.of(1) : x.shape().dim(k++));
                set(out, x.dtype(), Shape.of(dims));
                out.setSymbolic(content(x));
            }
            case SQUEEZE -> {
                int r = x.shape().rank();
                long[] axes = n.attrLongs("axes");
                boolean[] sq = new boolean[r];
                if (axes == null) {
                    for (int i = 0; i < r; i++) sq[i] = x.shape().dim(i).equals(Dim.of(1));
                } else {
                    for (long a : axes) {
                        int ax = (int) norm(n, a, r);
                        if (!x.shape().dim(ax).equals(Dim.of(1))) throw new GraphException(n, "cannot squeeze axis " + a + " of size " + x.shape().dim(ax));
                        sq[ax] = true;
                    }
                }
                List<Dim> dims = new ArrayList<>();
                for (int i = 0; i < r; i++) if (!sq[i]) dims.add(x.shape().dim(i));
                set(out, x.dtype(), Shape.of(dims));
                out.setSymbolic(content(x));
            }
            case CONCAT -> {
                int r = x.shape().rank();
                int axis = (int) norm(n, n.attrLong("axis", 0), r);
                List<Dim> dims = new ArrayList<>(x.shape().dims());
                Dim sum = Dim.of(0);
                List<Dim> cat = new ArrayList<>();
                for (Value v : n.inputs()) {
                    if (v.dtype() != x.dtype()) throw new GraphException(n, "dtypes differ: " + x.typeString() + " vs " + v.typeString());
                    if (v.shape().rank() != r) throw new GraphException(n, "ranks differ: " + x.typeString() + " vs " + v.typeString());
                    for (int i = 0; i < r; i++) {
                        if (i != axis && !v.shape().dim(i).equals(x.shape().dim(i))) {
                            throw new GraphException(n, "dim " + i + " differs: " + x.typeString() + " vs " + v.typeString());
                        }
                    }
                    sum = sum.plus(v.shape().dim(axis));
                    if (sum == null) throw new GraphException(n, "concatenating symbolic dims along axis " + axis + " is not supported");
                    List<Dim> c = content(v);
                    if (cat != null && c != null) cat.addAll(c);
                    else cat = null;
                }
                dims.set(axis, sum);
                set(out, x.dtype(), Shape.of(dims));
                if (r == 1) out.setSymbolic(cat);
            }
            case SLICE -> inferSlice(g, n, x, out);
            case GATHER -> {
                Value idx = need(n, 1);
                if (idx.dtype() != DType.I64 && idx.dtype() != DType.I32) throw new GraphException(n, "indices must be i32 or i64, got " + idx.typeString());
                int r = x.shape().rank();
                int axis = (int) norm(n, n.attrLong("axis", 0), r);
                List<Dim> dims = new ArrayList<>(x.shape().dims().subList(0, axis));
                dims.addAll(idx.shape().dims());
                dims.addAll(x.shape().dims().subList(axis + 1, r));
                set(out, x.dtype(), Shape.of(dims));
                List<Dim> c = content(x);
                if (c != null && r == 1 && idx.isConstant() && idx.shape().rank() <= 1) {
                    List<Dim> picked = new ArrayList<>();
                    TensorData id = idx.constantData();
                    for (long i = 0; i < id.numel(); i++) {
                        long k = id.getLong(i);
                        if (k < 0) k += c.size();
                        if (k < 0 || k >= c.size()) throw new GraphException(n, "index " + id.getLong(i) + " out of range for " + c.size() + " elements");
                        picked.add(c.get((int) k));
                    }
                    out.setSymbolic(picked);
                }
            }
            case EXPAND -> {
                List<Dim> target = content(need(n, 1));
                if (target == null) throw new GraphException(n, "the target shape '" + n.input(1).name() + "' is not known before run time");
                set(out, x.dtype(), broadcast(n, x.shape(), Shape.of(target)));
                if (x.shape().numel().equals(Dim.of(1)) && content(x) != null && target.size() == 1 && target.getFirst().isStatic()) {
                    List<Dim> c = new ArrayList<>();
                    for (long i = 0; i < target.getFirst().value(); i++) c.add(content(x).getFirst());
                    out.setSymbolic(c);
                }
            }
            case CONSTANT_OF_SHAPE -> {
                List<Dim> target = content(x);
                if (target == null) throw new GraphException(n, "the shape input '" + x.name() + "' is not known before run time");
                TensorData v = (TensorData) n.attr("value");
                DType dt = v == null ? DType.F32 : v.dtype();
                set(out, dt, Shape.of(target));
                if (v != null && !dt.isFloat() && target.size() == 1) {
                    List<Dim> c = new ArrayList<>();
                    Dim fill = Dim.of(v.getLong(0));
                    if (target.getFirst().isStatic()) {
                        for (long i = 0; i < target.getFirst().value() && i < MAX_CONTENT; i++) c.add(fill);
                        out.setSymbolic(c);
                    }
                }
            }
            case RANGE -> {
                List<Dim> s = content(x), l = content(need(n, 1)), d = content(need(n, 2));
                if (s == null || l == null || d == null) throw new GraphException(n, "start, limit and delta must be known before run time");
                Dim len;
                if (s.getFirst().isStatic() && l.getFirst().isStatic() && d.getFirst().isStatic()) {
                    long st = s.getFirst().value(), li = l.getFirst().value(), de = d.getFirst().value();
                    if (de == 0) throw new GraphException(n, "delta is 0");
                    len = Dim.of(Math.max(0, (long) Math.ceil((double) (li - st) / de)));
                } else if (s.getFirst().equals(Dim.of(0)) && d.getFirst().equals(Dim.of(1))) {
                    len = l.getFirst();
                } else {
                    throw new GraphException(n, "symbolic range length (" + l.getFirst() + " - " + s.getFirst() + ") / " + d.getFirst() + " is not supported");
                }
                set(out, x.dtype(), Shape.of(len));
            }
            case MATMUL -> set(out, x.dtype(), matmul(n, x.shape(), need(n, 1).shape()));
            case GEMM -> {
                Shape a = x.shape(), b = need(n, 1).shape();
                if (a.rank() != 2 || b.rank() != 2) throw new GraphException(n, "gemm needs 2-D inputs");
                boolean ta = n.attrLong("transA", 0) != 0, tb = n.attrLong("transB", 0) != 0;
                Dim m = a.dim(ta ? 1 : 0), k = a.dim(ta ? 0 : 1), bk = b.dim(tb ? 1 : 0), nn = b.dim(tb ? 0 : 1);
                if (!k.equals(bk)) throw new GraphException(n, "inner dims differ: " + k + " vs " + bk);
                set(out, x.dtype(), Shape.of(m, nn));
            }
            case LINEAR -> {
                Shape w = need(n, 1).shape();
                if (w.rank() != 2) throw new GraphException(n, "weight must be 2-D, got " + w);
                boolean tb = n.attrLong("transB", 0) != 0;
                Dim k = w.dim(tb ? 1 : 0), nn = w.dim(tb ? 0 : 1);
                if (x.shape().rank() < 1 || !x.shape().dim(-1).equals(k)) {
                    throw new GraphException(n, "x " + x.typeString() + " does not end in K=" + k + " of weight " + w);
                }
                Value bias = n.input(2);
                if (bias != null && (bias.shape().rank() != 1 || !bias.shape().dim(0).equals(nn))) {
                    throw new GraphException(n, "bias must be [" + nn + "], got " + bias.typeString());
                }
                List<Dim> dims = new ArrayList<>(x.shape().dims());
                dims.set(dims.size() - 1, nn);
                Value res = n.input(3);
                if (res != null && (!res.shape().equals(Shape.of(dims)) || !res.dtype().isFloat())) {
                    throw new GraphException(n, "residual must be a float " + Shape.of(dims) + ", got " + res.typeString());
                }
                set(out, outDtype(n, x.dtype()), Shape.of(dims));
            }
            case QLINEAR -> {
                Value codes = need(n, 1);
                long k = n.attrLong("k", -1);
                if (!n.hasAttr("n") && codes.shape().rank() != 2) throw new GraphException(n, "codes must be 2-D [N, K or K/2], got " + codes.typeString());
                Dim nn = n.hasAttr("n") ? Dim.of(n.attrLong("n", 0)) : codes.shape().dim(0);
                if (x.shape().rank() < 1 || !x.shape().dim(-1).equals(Dim.of(k))) {
                    throw new GraphException(n, "x " + x.typeString() + " does not end in K=" + k);
                }
                List<Dim> dims = new ArrayList<>(x.shape().dims());
                dims.set(dims.size() - 1, nn);
                set(out, outDtype(n, x.dtype()), Shape.of(dims));
            }
            case LAYER_NORM -> {
                Dim c = x.shape().dim(-1);
                for (int i = 1; i <= 2; i++) {
                    Value p = n.input(i);
                    if (p != null && (p.shape().rank() != 1 || !p.shape().dim(0).equals(c))) {
                        throw new GraphException(n, (i == 1 ? "gamma" : "beta") + " must be [" + c + "], got " + p.typeString());
                    }
                }
                Value res = n.input(3);
                if (res != null && (!res.shape().equals(x.shape()) || !res.dtype().isFloat())) {
                    throw new GraphException(n, "residual must be a float " + x.shape() + " like x, got " + res.typeString());
                }
                set(out, outDtype(n, x.dtype()), x.shape());
            }
            case ATTENTION -> {
                Value k = need(n, 1), v = need(n, 2);
                long h = n.attrLong("num_heads", 0);
                if (h <= 0) throw new GraphException(n, "num_heads must be > 0");
                if (x.shape().rank() != 3 || !k.shape().equals(x.shape()) || !v.shape().equals(x.shape())) {
                    throw new GraphException(n, "q, k, v must be [B, S, H*D] of one shape, got " + inputTypes(n));
                }
                if (x.shape().dim(2).isStatic() && x.shape().dim(2).value() % h != 0) {
                    throw new GraphException(n, "hidden size " + x.shape().dim(2) + " is not a multiple of num_heads " + h);
                }
                Value mask = n.input(3);
                if (n.attrLong("key_padding", 0) != 0) {
                    if (mask == null || mask.shape().rank() != 2 || mask.dtype().isFloat()) {
                        throw new GraphException(n, "a key-padding mask must be an integer [B, S], got " + (mask == null ? "none" : mask.typeString()));
                    }
                } else if (mask != null && mask.shape().rank() != 4) {
                    throw new GraphException(n, "mask must be 4-D [B|1, H|1, S|1, S], got " + mask.typeString());
                }
                set(out, outDtype(n, x.dtype()), x.shape());
            }
        }
    }

    // ---------------------------------------------------------------- rules

    static Value need(Node n, int i) {
        Value v = n.input(i);
        if (v == null) throw new GraphException(n, "input " + i + " is missing");
        return v;
    }

    /** The known content of a small int vector value: symbolic or constant, else null. */
    static List<Dim> content(Value v) {
        if (v == null) return null;
        if (v.symbolicData() != null) return v.symbolicData();
        TensorData c = v.constantData();
        if (c != null && !c.dtype().isFloat() && c.rank() <= 1 && c.numel() <= MAX_CONTENT) {
            List<Dim> r = new ArrayList<>();
            for (long i = 0; i < c.numel(); i++) r.add(Dim.of(c.getLong(i)));
            return r;
        }
        return null;
    }

    static boolean allStatic(List<Dim> c) {
        for (Dim d : c) if (!d.isStatic()) return false;
        return true;
    }

    private static List<Dim> arith(Op op, List<Dim> a, List<Dim> b) {
        if (a == null || b == null) return null;
        int n = Math.max(a.size(), b.size());
        if (a.size() != n && a.size() != 1 || b.size() != n && b.size() != 1) return null;
        List<Dim> r = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Dim x = a.get(a.size() == 1 ? 0 : i), y = b.get(b.size() == 1 ? 0 : i);
            Dim z = switch (op) {
                case ADD -> x.plus(y);
                case SUB -> x.minus(y);
                case MUL -> x.times(y);
                case DIV -> x.isStatic() && y.isStatic() && y.value() != 0 ? Dim.of(x.value() / y.value()) : x.div(y);
                default -> null;
            };
            if (z == null) return null;
            r.add(z);
        }
        return r;
    }

    /** Comparisons; a symbolic dim is taken to be >= 1, so it never equals a number < 1. */
    private static List<Dim> compare(Op op, List<Dim> a, List<Dim> b) {
        if (a == null || b == null) return null;
        int n = Math.max(a.size(), b.size());
        if (a.size() != n && a.size() != 1 || b.size() != n && b.size() != 1) return null;
        List<Dim> r = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Dim x = a.get(a.size() == 1 ? 0 : i), y = b.get(b.size() == 1 ? 0 : i);
            Boolean v;
            if (x.isStatic() && y.isStatic()) {
                v = switch (op) {
                    case EQUAL -> x.value() == y.value();
                    case LESS -> x.value() < y.value();
                    default -> x.value() > y.value();
                };
            } else if (op == Op.EQUAL && x.equals(y)) {
                v = true;
            } else if (op == Op.EQUAL && (x.isStatic() && x.value() < 1 || y.isStatic() && y.value() < 1)) {
                v = false;
            } else {
                return null;
            }
            r.add(Dim.of(v ? 1 : 0));
        }
        return r;
    }

    private static List<Dim> where(List<Dim> c, List<Dim> a, List<Dim> b) {
        if (c == null || a == null || b == null || !allStatic(c)) return null;
        int n = Math.max(c.size(), Math.max(a.size(), b.size()));
        List<Dim> r = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            boolean t = c.get(c.size() == 1 ? 0 : i).value() != 0;
            List<Dim> s = t ? a : b;
            if (s.size() != 1 && s.size() != n) return null;
            r.add(s.get(s.size() == 1 ? 0 : i));
        }
        return r;
    }

    /** numpy broadcasting of two shapes. */
    static Shape broadcast(Node n, Shape a, Shape b) {
        int r = Math.max(a.rank(), b.rank());
        List<Dim> dims = new ArrayList<>();
        for (int i = 0; i < r; i++) {
            int ia = i - (r - a.rank()), ib = i - (r - b.rank());
            Dim da = ia >= 0 ? a.dim(ia) : Dim.of(1), db = ib >= 0 ? b.dim(ib) : Dim.of(1);
            Dim d;
            if (da.equals(db) || db.equals(Dim.of(1))) d = da;
            else if (da.equals(Dim.of(1))) d = db;
            else if (da.isStatic() && db.isStatic()) throw new GraphException(n, "shapes " + a + " and " + b + " do not broadcast");
            else d = da.isStatic() ? da : db; // a symbol against a number: the number it must be
            dims.add(d);
        }
        return Shape.of(dims);
    }

    private static Shape matmul(Node n, Shape a, Shape b) {
        if (a.rank() < 1 || b.rank() < 1) throw new GraphException(n, "matmul of scalars");
        boolean av = a.rank() == 1, bv = b.rank() == 1;
        Shape a2 = av ? Shape.of(Dim.of(1), a.dim(0)) : a, b2 = bv ? Shape.of(b.dim(0), Dim.of(1)) : b;
        if (!a2.dim(-1).equals(b2.dim(-2))) throw new GraphException(n, "inner dims differ: " + a + " @ " + b);
        Shape batch = broadcast(n, Shape.of(a2.dims().subList(0, a2.rank() - 2)), Shape.of(b2.dims().subList(0, b2.rank() - 2)));
        List<Dim> dims = new ArrayList<>(batch.dims());
        if (!av) dims.add(a2.dim(-2));
        if (!bv) dims.add(b2.dim(-1));
        return Shape.of(dims);
    }

    private static Shape reshape(Node n, Shape in, List<Dim> target, boolean allowZero) {
        List<Dim> dims = new ArrayList<>();
        int infer = -1;
        Dim known = Dim.of(1);
        for (int i = 0; i < target.size(); i++) {
            Dim t = target.get(i);
            if (t.isStatic() && t.value() == -1) {
                if (infer >= 0) throw new GraphException(n, "more than one -1 in target " + target);
                infer = i;
                dims.add(null);
                continue;
            }
            if (t.isStatic() && t.value() == 0 && !allowZero) {
                if (i >= in.rank()) throw new GraphException(n, "0 at position " + i + " copies a dim the input " + in + " does not have");
                t = in.dim(i);
            }
            if (t.isStatic() && t.value() < 0) throw new GraphException(n, "negative dim in target " + target);
            dims.add(t);
            known = known.times(t);
        }
        if (infer >= 0) {
            Dim d = in.numel().div(known);
            if (d == null) throw new GraphException(n, "cannot infer the -1 of target " + target + " for input " + in);
            dims.set(infer, d);
        } else if (!known.equals(in.numel()) && in.isStatic() && Shape.of(dims).isStatic()) {
            throw new GraphException(n, "cannot reshape " + in + " (" + in.numel() + " elements) to " + dims);
        }
        return Shape.of(dims);
    }

    private static void inferSlice(Graph g, Node n, Value x, Value out) {
        int r = x.shape().rank();
        List<Dim> starts = content(need(n, 1)), ends = content(need(n, 2));
        List<Dim> axesC = n.input(3) == null ? null : content(n.input(3));
        List<Dim> stepsC = n.input(4) == null ? null : content(n.input(4));
        if (starts == null || ends == null || (n.input(3) != null && axesC == null) || (n.input(4) != null && stepsC == null)) {
            throw new GraphException(n, "starts, ends, axes and steps must be known before run time");
        }
        if (starts.size() != ends.size()) throw new GraphException(n, "starts and ends differ in length");
        List<Dim> dims = new ArrayList<>(x.shape().dims());
        List<Dim> c = content(x);
        List<Dim> sliced = c != null && r == 1 ? new ArrayList<>(c) : null;
        for (int i = 0; i < starts.size(); i++) {
            int axis = (int) norm(n, axesC == null ? i : staticOf(n, axesC.get(i), "axes"), r);
            long step = stepsC == null ? 1 : staticOf(n, stepsC.get(i), "steps");
            if (step == 0) throw new GraphException(n, "step 0");
            Dim d = x.shape().dim(axis);
            Dim st = starts.get(i), en = ends.get(i);
            if (d.isStatic() && st.isStatic() && en.isStatic()) {
                long[] se = SliceMath.clamp(st.value(), en.value(), step, d.value());
                long len = SliceMath.length(se[0], se[1], step);
                dims.set(axis, Dim.of(len));
                if (sliced != null) {
                    List<Dim> s = new ArrayList<>();
                    for (long k = 0; k < len; k++) s.add(sliced.get((int) (se[0] + k * step)));
                    sliced = s;
                }
            } else if (step == 1 && st.isStatic() && st.value() == 0 && en.isStatic() && en.value() >= Integer.MAX_VALUE) {
                sliced = null; // the whole (symbolic) dim
            } else if (step == 1 && st.isStatic() && st.value() == 0 && !en.isStatic()) {
                // x[0:e] with a symbolic end: the output is e long, as long as e <= the dim
                if (d.isStatic()) g.addConstraint(new Graph.Constraint(en, d.value(), n.describe() + " on '" + x.name() + "'"));
                else if (!d.equals(en)) throw new GraphException(n, "slice end " + en + " against symbolic dim " + d + " is not supported");
                dims.set(axis, en);
                sliced = null;
            } else {
                throw new GraphException(n, "slice [" + st + ":" + en + ":" + step + "] of dim " + d + " is not supported symbolically");
            }
        }
        set(out, x.dtype(), Shape.of(dims));
        out.setSymbolic(sliced);
    }

    private static long staticOf(Node n, Dim d, String what) {
        if (!d.isStatic()) throw new GraphException(n, what + " must be static, got " + d);
        return d.value();
    }

    static boolean[] reducedAxes(Node n, int r) {
        long[] axes = n.attrLongs("axes");
        boolean[] red = new boolean[r];
        if (axes == null || axes.length == 0) {
            if (n.attrLong("noop_with_empty_axes", 0) == 0) Arrays.fill(red, true);
        } else {
            for (long a : axes) red[(int) norm(n, a, r)] = true;
        }
        return red;
    }

    private static long[] requireAxes(Node n) {
        long[] axes = n.attrLongs("axes");
        if (axes == null) throw new GraphException(n, "missing attribute 'axes'");
        return axes;
    }

    static void checkPerm(Node n, long[] perm, int r) {
        if (perm.length != r) throw new GraphException(n, "perm " + Arrays.toString(perm) + " does not fit rank " + r);
        boolean[] seen = new boolean[r];
        for (long p : perm) {
            if (p < 0 || p >= r || seen[(int) p]) throw new GraphException(n, "perm " + Arrays.toString(perm) + " is not a permutation");
            seen[(int) p] = true;
        }
    }

    /** Normalizes a possibly negative axis for rank r. */
    static long norm(Node n, long axis, int r) {
        long a = axis < 0 ? axis + r : axis;
        if (a < 0 || a >= Math.max(r, 1)) throw new GraphException(n, "axis " + axis + " out of range for rank " + r);
        return a;
    }

    private static long normClamp(long v, int r) {
        long a = v < 0 ? v + r : v;
        return Math.max(0, Math.min(r, a));
    }

    /** ONNX Slice index arithmetic. */
    static final class SliceMath {
        private SliceMath() {}

        /** [start, end] clamped for a dim of size d and the step's direction. */
        static long[] clamp(long start, long end, long step, long d) {
            if (start < 0) start += d;
            if (end < 0) end += d;
            if (step > 0) {
                start = Math.max(0, Math.min(d, start));
                end = Math.max(0, Math.min(d, end));
            } else {
                start = Math.max(-1, Math.min(d - 1, start));
                end = Math.max(-1, Math.min(d - 1, end));
            }
            return new long[] {start, end};
        }

        static long length(long start, long end, long step) {
            if (step > 0) return end <= start ? 0 : (end - start + step - 1) / step;
            return start <= end ? 0 : (start - end + (-step) - 1) / (-step);
        }
    }
}
