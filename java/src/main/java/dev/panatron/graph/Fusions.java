package dev.panatron.graph;

import dev.panatron.DType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Pattern fusions: the decomposed subgraphs that ONNX exporters emit, rewritten into the ops
 * our kernels implement. Each pass matches around an anchor op, checks that every value inside
 * the pattern is used only inside it, and replaces the pattern by one node whose output is the
 * pattern's final value (so graph outputs and later consumers stay connected).
 *
 * <ul>
 *   <li>{@link #layerNorm}: ReduceMean, Sub, Pow(2), ReduceMean, Add(eps), Sqrt, Div [, Mul(gamma)] [, Add(beta)]</li>
 *   <li>{@link #gelu}: Div(√2) | Mul(1/√2), Erf, Add(1), Mul(x), Mul(0.5) — in any of the usual orders</li>
 *   <li>{@link #linear}: MatMul(x, W const) [+ Add(bias const)] and Gemm → LINEAR; LINEAR + GELU → LINEAR with a GELU
 *       epilogue; LINEAR + Add(residual of the same shape) → LINEAR accumulating onto the residual</li>
 *   <li>{@link #attention}: Reshape/Transpose of q, k, v, MatMul, Div|Mul by the scale, Add(mask), Softmax, MatMul,
 *       Transpose, Reshape → ATTENTION</li>
 *   <li>{@link #addLayerNorm}: Add(a, b) of two same-shape values feeding only a LayerNorm → LAYER_NORM with a
 *       residual input (one pass: the sum is never stored)</li>
 *   <li>{@link #keyPaddingMask}: an ATTENTION mask computed as {@code (1 - cast(unsqueeze(m))) * c} (c <= -1e4)
 *       from an integer [B, S] attention mask m → ATTENTION reading m directly as a key-padding mask</li>
 * </ul>
 * Each returns the number of patterns it replaced. Shapes must be inferred.
 */
public final class Fusions {
    private Fusions() {}

    // ================================================================ LayerNorm

    public static int layerNorm(Graph g) {
        int count = 0;
        for (Node div : new ArrayList<>(g.nodes())) {
            if (div.op() != Op.DIV) continue;
            Graph.Uses u = g.uses();
            Value a = div.input(0);
            Node sqrt = u.producer(div.input(1), Op.SQRT);
            if (sqrt == null) continue;
            Node addEps = u.producer(sqrt.input(0), Op.ADD);
            if (addEps == null) continue;
            int ei = scalarIndex(addEps);
            if (ei < 0) continue;
            double eps = scalar(addEps.input(ei));
            Node rm2 = u.producer(addEps.input(1 - ei), Op.REDUCE_MEAN);
            if (rm2 == null || !lastAxisKeep(rm2)) continue;
            Node pow = u.producer(rm2.input(0));
            if (pow == null || !isSquareOf(pow, a)) continue;
            Node sub = u.producer(a, Op.SUB);
            if (sub == null) continue;
            Value x = sub.input(0);
            Node rm1 = u.producer(sub.input(1), Op.REDUCE_MEAN);
            if (rm1 == null || rm1.input(0) != x || !lastAxisKeep(rm1)) continue;
            if (x.dtype() != DType.F32 || x.shape().rank() < 1 || !x.shape().dim(-1).isStatic()) continue;
            long c = x.shape().dim(-1).value();
            List<Node> pattern = new ArrayList<>(List.of(rm1, sub, pow, rm2, addEps, sqrt, div));
            Value out = div.output(0), gamma = null, beta = null;
            Node mul = single(u, out, Op.MUL);
            if (mul != null) {
                Value gm = mul.input(0) == out ? mul.input(1) : mul.input(0);
                if (isVector(gm, c)) {
                    gamma = gm;
                    pattern.add(mul);
                    out = mul.output(0);
                }
            }
            Node add = single(u, out, Op.ADD);
            if (add != null) {
                Value bt = add.input(0) == out ? add.input(1) : add.input(0);
                if (isVector(bt, c)) {
                    beta = bt;
                    pattern.add(add);
                    out = add.output(0);
                }
            }
            if (!interiorOnly(u, pattern, out)) continue;
            if (gamma == null) gamma = ones(g, c);
            gamma = asVector(g, gamma, c);
            if (beta != null) beta = asVector(g, beta, c);
            Node ln = new Node(Op.LAYER_NORM, div.name().replaceAll("/Div$", ""), beta == null ? List.of(x, gamma) : List.of(x, gamma, beta),
                    List.of(out), Map.of("epsilon", eps));
            replace(g, pattern, ln);
            count++;
        }
        return count;
    }

    private static boolean lastAxisKeep(Node rm) {
        long[] axes = rm.attrLongs("axes");
        int r = rm.input(0).shape().rank();
        return axes != null && axes.length == 1 && (axes[0] == -1 || axes[0] == r - 1) && rm.attrLong("keepdims", 1) == 1;
    }

    private static boolean isSquareOf(Node n, Value a) {
        if (n.op() == Op.POW) return n.input(0) == a && near(scalar(n.input(1)), 2);
        return n.op() == Op.MUL && n.input(0) == a && n.input(1) == a;
    }

    // ================================================================ residual + LayerNorm

    /**
     * {@code LayerNorm(Add(a, b))} where a and b have the output's shape and dtype and the sum
     * feeds only the LayerNorm → LAYER_NORM(a, gamma, beta, residual b). Run after
     * {@link #layerNorm}; before {@link #linear}, so a residual add next to a LayerNorm goes
     * here instead of into the GEMM.
     */
    public static int addLayerNorm(Graph g) {
        int count = 0;
        for (Node ln : new ArrayList<>(g.nodes())) {
            if (ln.op() != Op.LAYER_NORM || ln.input(3) != null) continue;
            Graph.Uses u = g.uses();
            Node add = u.producer(ln.input(0), Op.ADD);
            if (add == null || !interiorOnly(u, List.of(add, ln), ln.output(0))) continue;
            Value a = add.input(0), b = add.input(1);
            Shape s = add.output(0).shape();
            if (a.isConstant() || b.isConstant() || !a.shape().equals(s) || !b.shape().equals(s) || a.dtype() != b.dtype()
                    || a.dtype() != add.output(0).dtype()) continue;
            List<Value> in = new ArrayList<>(Arrays.asList(a, ln.input(1), ln.input(2), b));
            replace(g, List.of(add, ln), new Node(Op.LAYER_NORM, ln.name(), in, List.of(ln.output(0)), ln.attributes()));
            count++;
        }
        return count;
    }

    // ================================================================ key-padding masks

    /**
     * ATTENTION nodes whose additive mask is {@code (1 - cast(unsqueeze(m))) * c}, with m an
     * integer or bool [B, S] attention mask (1 = attend), the unsqueezes making it [B, 1, 1, S]
     * and c a constant <= -1e4 (so that e^(score + c) is exactly 0 in f32): the node reads m
     * itself ({@code key_padding = 1}), which the flash-attention kernel takes as is. The mask
     * arithmetic becomes dead code. Rows whose keys are all masked then give zeros instead of a
     * uniform average (no real input has such rows: [CLS] is always attended).
     */
    public static int keyPaddingMask(Graph g) {
        int count = 0;
        for (Node at : new ArrayList<>(g.nodes())) {
            if (at.op() != Op.ATTENTION || at.input(3) == null || at.attrLong("key_padding", 0) != 0) continue;
            Graph.Uses u = g.uses();
            Value m = keepMask(u, at.input(3));
            if (m == null) continue;
            Shape q = at.input(0).shape();
            if (!m.shape().dim(0).equals(q.dim(0)) || !m.shape().dim(1).equals(q.dim(1))) continue;
            Map<String, Object> attrs = new HashMap<>(at.attributes());
            attrs.put("key_padding", 1L);
            List<Value> in = new ArrayList<>(at.inputs());
            in.set(3, m);
            replace(g, List.of(at), new Node(Op.ATTENTION, at.name(), in, List.of(at.output(0)), attrs));
            count++;
        }
        return count;
    }

    /** The [B, S] keep mask behind an additive mask value, or null when it is not that pattern. */
    private static Value keepMask(Graph.Uses u, Value mask) {
        Shape ms = mask.shape();
        if (ms.rank() != 4 || !ms.dim(1).equals(Dim.of(1)) || !ms.dim(2).equals(Dim.of(1))) return null;
        Node mul = u.producer(mask, Op.MUL);
        if (mul == null || scalarIndex(mul) < 0 || !(scalar(mul.input(scalarIndex(mul))) <= -1e4)) return null;
        Node sub = u.producer(mul.input(1 - scalarIndex(mul)), Op.SUB);
        if (sub == null || !isScalar(sub.input(0)) || scalar(sub.input(0)) != 1) return null;
        Value v = sub.input(1);
        boolean cast = false;
        for (int hops = 0; hops < 4 && v.shape().rank() != 2; hops++) {
            Node p = u.producer(v);
            if (p == null) return null;
            if (p.op() == Op.CAST && p.output(0).dtype().isFloat() && !cast) cast = true;
            else if (p.op() != Op.UNSQUEEZE) return null;
            v = p.input(0);
        }
        if (!cast && v.shape().rank() == 2) {
            Node p = u.producer(v, Op.CAST);     // cast applied before the unsqueezes
            if (p != null && p.output(0).dtype().isFloat()) {
                v = p.input(0);
                cast = true;
            }
        }
        if (!cast || v.shape().rank() != 2 || v.dtype().isFloat() || v.dtype() == DType.U4) return null;
        if (!v.shape().dim(0).equals(ms.dim(0)) || !v.shape().dim(1).equals(ms.dim(3))) return null;
        return v;
    }

    // ================================================================ GELU

    public static int gelu(Graph g) {
        int count = 0;
        for (Node erf : new ArrayList<>(g.nodes())) {
            if (erf.op() != Op.ERF) continue;
            Graph.Uses u = g.uses();
            Node scale = u.producer(erf.input(0));
            if (scale == null) continue;
            Value x;
            if (scale.op() == Op.DIV && near(scalar(scale.input(1)), Math.sqrt(2))) x = scale.input(0);
            else if (scale.op() == Op.MUL && scalarIndex(scale) >= 0 && near(scalar(scale.input(scalarIndex(scale))), Math.sqrt(0.5))) {
                x = scale.input(1 - scalarIndex(scale));
            } else continue;
            Node add1 = single(u, erf.output(0), Op.ADD);
            if (add1 == null || scalarIndex(add1) < 0 || !near(scalar(add1.input(scalarIndex(add1))), 1)) continue;
            Value e1 = add1.output(0);
            Node m1 = single(u, e1, Op.MUL);
            if (m1 == null) continue;
            Value other = m1.input(0) == e1 ? m1.input(1) : m1.input(0);
            List<Node> pattern = new ArrayList<>(List.of(scale, erf, add1, m1));
            Value out;
            if (other == x) {                                   // (x * (1 + erf)) * 0.5
                Node m2 = single(u, m1.output(0), Op.MUL);
                if (m2 == null || scalarIndex(m2) < 0 || !near(scalar(m2.input(scalarIndex(m2))), 0.5)) continue;
                pattern.add(m2);
                out = m2.output(0);
            } else if (isScalar(other) && near(scalar(other), 0.5)) { // x * ((1 + erf) * 0.5)
                Node m2 = single(u, m1.output(0), Op.MUL);
                if (m2 == null || (m2.input(0) != x && m2.input(1) != x)) continue;
                pattern.add(m2);
                out = m2.output(0);
            } else {                                            // (x * 0.5) * (1 + erf)
                Node half = u.producer(other, Op.MUL);
                if (half == null || scalarIndex(half) < 0 || half.input(1 - scalarIndex(half)) != x
                        || !near(scalar(half.input(scalarIndex(half))), 0.5)) continue;
                pattern.add(0, half);
                out = m1.output(0);
            }
            if (!interiorOnly(u, pattern, out)) continue;
            Node gl = new Node(Op.GELU, erf.name().replaceAll("/Erf$", ""), List.of(x), List.of(out), Map.of("approximate", "none"));
            replace(g, pattern, gl);
            count++;
        }
        return count;
    }

    // ================================================================ Linear

    public static int linear(Graph g) {
        int count = 0;
        for (Node n : new ArrayList<>(g.nodes())) {
            Graph.Uses u = g.uses();
            if (n.op() == Op.MATMUL) {
                Value x = n.input(0), w = n.input(1);
                if (!w.isConstant() || w.shape().rank() != 2 || x.shape().rank() < 2 || x.dtype() != w.dtype()) continue;
                long nOut = w.shape().dim(1).value();
                List<Node> pattern = new ArrayList<>(List.of(n));
                Value out = n.output(0), bias = null;
                Node add = single(u, out, Op.ADD);
                if (add != null) {
                    Value b = add.input(0) == out ? add.input(1) : add.input(0);
                    if (isVector(b, nOut) && b.dtype() == DType.F32 && add.output(0).shape().equals(out.shape())) {
                        bias = asVector(g, b, nOut);
                        pattern.add(add);
                        out = add.output(0);
                    }
                }
                if (!interiorOnly(u, pattern, out)) continue;
                List<Value> in = bias == null ? List.of(x, w) : List.of(x, w, bias);
                replace(g, pattern, new Node(Op.LINEAR, n.name().replaceAll("/MatMul$", ""), in, List.of(out),
                        Map.of("transB", 0L, "activation", "none")));
                count++;
            } else if (n.op() == Op.GEMM) {
                Value a = n.input(0), w = n.input(1), c = n.input(2);
                if (!w.isConstant() || n.attrLong("transA", 0) != 0 || n.attrDouble("alpha", 1) != 1) continue;
                long nOut = n.output(0).shape().dim(1).value();
                if (c != null && (n.attrDouble("beta", 1) != 1 || !isVector(c, nOut) || c.dtype() != DType.F32)) continue;
                List<Value> in = c == null ? List.of(a, w) : List.of(a, w, asVector(g, c, nOut));
                replace(g, List.of(n), new Node(Op.LINEAR, n.name(), in, List.of(n.output(0)),
                        Map.of("transB", n.attrLong("transB", 0), "activation", "none")));
                count++;
            }
        }
        for (Node n : new ArrayList<>(g.nodes())) {       // GELU epilogue
            if (n.op() != Op.LINEAR || !"none".equals(n.attrString("activation", "none")) || n.input(3) != null) continue;
            Graph.Uses u = g.uses();
            Node gl = single(u, n.output(0), Op.GELU);
            if (gl == null || !interiorOnly(u, List.of(n, gl), gl.output(0))) continue;
            Map<String, Object> attrs = new HashMap<>(n.attributes());
            attrs.put("activation", "tanh".equals(gl.attrString("approximate", "none")) ? "gelu_tanh" : "gelu");
            replace(g, List.of(n, gl), new Node(Op.LINEAR, n.name(), n.inputs(), List.of(gl.output(0)), attrs));
            count++;
        }
        for (Node n : new ArrayList<>(g.nodes())) {       // residual add: the GEMM accumulates onto it (beta = 1)
            if (n.op() != Op.LINEAR || !"none".equals(n.attrString("activation", "none")) || n.input(3) != null) continue;
            Graph.Uses u = g.uses();
            Value out = n.output(0);
            Node add = single(u, out, Op.ADD);
            if (add == null) continue;
            Value r = add.input(0) == out ? add.input(1) : add.input(0);
            if (r == out || !r.shape().equals(out.shape()) || r.dtype() != out.dtype() || !add.output(0).shape().equals(out.shape())) continue;
            List<Value> in = new ArrayList<>(n.inputs());
            while (in.size() < 3) in.add(null);
            in.add(r);
            replace(g, List.of(n, add), new Node(Op.LINEAR, n.name(), in, List.of(add.output(0)), n.attributes()));
            count++;
        }
        return count;
    }

    // ================================================================ Attention

    public static int attention(Graph g) {
        int count = 0;
        for (Node sm : new ArrayList<>(g.nodes())) {
            if (sm.op() != Op.SOFTMAX) continue;
            Graph.Uses u = g.uses();
            Value s = sm.input(0);
            if (s.shape().rank() != 4 || ShapeInference.norm(sm, sm.attrLong("axis", -1), 4) != 3) continue;
            List<Node> pattern = new ArrayList<>();
            // scores (+ mask)
            Value scores = s, mask = null;
            Node maskAdd = u.producer(s, Op.ADD);
            if (maskAdd != null) {
                for (int i = 0; i < 2; i++) {
                    if (leadsToMatmul(u, maskAdd.input(i))) {
                        scores = maskAdd.input(i);
                        mask = maskAdd.input(1 - i);
                        break;
                    }
                }
                if (mask == null) continue;
                pattern.add(maskAdd);
            }
            double scale = 1;
            Node sc = u.producer(scores);
            Value mmv = scores;
            if (sc != null && sc.op() == Op.DIV && isScalar(sc.input(1))) {
                scale = 1 / scalar(sc.input(1));
                mmv = sc.input(0);
                pattern.add(sc);
            } else if (sc != null && sc.op() == Op.MUL && scalarIndex(sc) >= 0) {
                scale = scalar(sc.input(scalarIndex(sc)));
                mmv = sc.input(1 - scalarIndex(sc));
                pattern.add(sc);
            }
            Node mm = u.producer(mmv, Op.MATMUL);
            if (mm == null) continue;
            pattern.add(mm);
            pattern.add(sm);
            // q: Reshape [B,S,H,D] -> Transpose [0,2,1,3]
            Head q = head(u, mm.input(0), new long[] {0, 2, 1, 3}, pattern);
            // k: Reshape -> Transpose [0,2,3,1] (or [0,2,1,3] then [0,1,3,2])
            Head k = head(u, mm.input(1), new long[] {0, 2, 3, 1}, pattern);
            if (k == null) {
                Node t2 = u.producer(mm.input(1), Op.TRANSPOSE);
                if (t2 != null && Arrays.equals(t2.attrLongs("perm"), new long[] {0, 1, 3, 2})) {
                    k = head(u, t2.input(0), new long[] {0, 2, 1, 3}, pattern);
                    if (k != null) pattern.add(t2);
                }
            }
            if (q == null || k == null) continue;
            // p @ v, back to [B, S, H*D]
            Node mm2 = single(u, sm.output(0), Op.MATMUL);
            if (mm2 == null || mm2.input(0) != sm.output(0)) continue;
            Head v = head(u, mm2.input(1), new long[] {0, 2, 1, 3}, pattern);
            if (v == null) continue;
            Node tr = single(u, mm2.output(0), Op.TRANSPOSE);
            if (tr == null || !Arrays.equals(tr.attrLongs("perm"), new long[] {0, 2, 1, 3})) continue;
            Node rs = single(u, tr.output(0), Op.RESHAPE);
            if (rs == null) continue;
            pattern.addAll(List.of(mm2, tr, rs));
            Value out = rs.output(0);
            if (q.heads != k.heads || q.heads != v.heads || !q.x.shape().equals(k.x.shape()) || !q.x.shape().equals(v.x.shape())
                    || !out.shape().equals(q.x.shape()) || q.x.dtype() != DType.F32) continue;
            if (mask != null && (mask.shape().rank() != 4 || mask.dtype() != DType.F32)) continue;
            if (!interiorOnly(u, pattern, out)) continue;
            List<Value> in = mask == null ? List.of(q.x, k.x, v.x) : List.of(q.x, k.x, v.x, mask);
            String name = sm.name().replaceAll("/Softmax$", "");
            replace(g, pattern, new Node(Op.ATTENTION, name, in, List.of(out), Map.of("num_heads", q.heads, "scale", scale)));
            count++;
        }
        return count;
    }

    /** x [B, S, H*D] reshaped to [B, S, H, D] and transposed by {@code perm}. */
    private record Head(Value x, long heads) {}

    private static Head head(Graph.Uses u, Value t, long[] perm, List<Node> pattern) {
        Node tp = u.producer(t, Op.TRANSPOSE);
        if (tp == null || !Arrays.equals(tp.attrLongs("perm"), perm)) return null;
        Node rs = u.producer(tp.input(0), Op.RESHAPE);
        if (rs == null) return null;
        Value x = rs.input(0);
        Shape s4 = rs.output(0).shape();
        if (x.shape().rank() != 3 || s4.rank() != 4 || !s4.dim(2).isStatic() || !s4.dim(3).isStatic()) return null;
        if (!s4.dim(0).equals(x.shape().dim(0)) || !s4.dim(1).equals(x.shape().dim(1))
                || !s4.dim(2).times(s4.dim(3)).equals(x.shape().dim(2))) return null;
        pattern.add(rs);
        pattern.add(tp);
        return new Head(x, s4.dim(2).value());
    }

    private static boolean leadsToMatmul(Graph.Uses u, Value v) {
        Node p = u.producer(v);
        if (p != null && (p.op() == Op.DIV || p.op() == Op.MUL) && scalarIndex(p) >= 0) p = u.producer(p.input(p.op() == Op.DIV ? 0 : 1 - scalarIndex(p)));
        return p != null && p.op() == Op.MATMUL;
    }

    // ================================================================ helpers

    /** Replaces {@code pattern} by {@code fused}, placed where the last pattern node was. */
    private static void replace(Graph g, List<Node> pattern, Node fused) {
        int at = -1;
        for (Node p : pattern) at = Math.max(at, g.indexOf(p));
        g.insertNode(at + 1, fused);
        g.removeNodes(pattern);
        Set<Value> keep = Graph.identitySet(fused.outputs());
        for (Node p : pattern) for (Value o : p.outputs()) if (!keep.contains(o)) g.forget(o);
    }

    /** True when every value the pattern makes, except {@code out}, is used only inside it. */
    private static boolean interiorOnly(Graph.Uses u, List<Node> pattern, Value out) {
        Set<Node> set = Graph.identitySet(pattern);
        for (Node p : pattern) {
            for (Value o : p.outputs()) if (o != out && !u.onlyUsedBy(o, set)) return false;
        }
        return true;
    }

    /** The single consumer of v if it is an {@code op} node (and v is not a graph output). */
    private static Node single(Graph.Uses u, Value v, Op op) {
        List<Node> c = u.consumers(v);
        if (c.size() != 1 || u.graphOutputs.contains(v) || c.getFirst().op() != op) return null;
        return c.getFirst();
    }

    private static boolean isScalar(Value v) {
        return v != null && v.isConstant() && v.constantData().numel() == 1 && v.dtype().isFloat();
    }

    private static double scalar(Value v) { return isScalar(v) ? v.constantData().getDouble(0) : Double.NaN; }

    /** Index (0 or 1) of the scalar-constant input of a binary node, or -1. */
    private static int scalarIndex(Node n) {
        if (isScalar(n.input(1))) return 1;
        if (isScalar(n.input(0))) return 0;
        return -1;
    }

    private static boolean near(double a, double b) { return Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(b)); }

    /** A float constant with exactly c elements in its last dim and no other non-1 dim. */
    private static boolean isVector(Value v, long c) {
        return v != null && v.isConstant() && v.dtype() == DType.F32 && v.constantData().numel() == c
                && (v.shape().rank() == 0 ? c == 1 : v.shape().dim(-1).equals(Dim.of(c)));
    }

    private static Value asVector(Graph g, Value v, long c) {
        if (v.shape().rank() == 1) return v;
        Value r = g.addConstant(g.freshName(v.name() + "_vec"), v.constantData().reshape(c));
        return r;
    }

    private static Value ones(Graph g, long c) {
        TensorData t = TensorData.allocate(g.arena(), DType.F32, c);
        for (long i = 0; i < c; i++) t.setFloat(i, 1f);
        return g.addConstant(g.freshName("ones_" + c), t);
    }
}
