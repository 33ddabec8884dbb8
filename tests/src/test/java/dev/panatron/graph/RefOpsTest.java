package dev.panatron.graph;

import dev.panatron.DType;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every Java reference op against hand-computed expectations (small, exact cases). */
class RefOpsTest {
    static final Arena A = Arena.ofAuto();

    static TensorData f(float[] v, long... shape) { return TensorData.ofFloats(v, shape); }

    static TensorData l(long[] v, long... shape) { return TensorData.ofLongs(v, shape); }

    /** An output poisoned with NaN (floats) or a sentinel (ints), so unwritten elements show. */
    static TensorData out(DType dt, long... shape) {
        TensorData t = TensorData.allocate(A, dt, shape);
        for (long i = 0; i < t.numel(); i++) {
            if (dt.isFloat()) t.setDouble(i, Double.NaN);
            else t.setLong(i, 0x5a);
        }
        return t;
    }

    static void close(float[] want, TensorData got, double tol) {
        float[] g = got.toFloatArray();
        assertEquals(want.length, g.length);
        for (int i = 0; i < want.length; i++) assertEquals(want[i], g[i], tol, "element " + i);
    }

    @Test
    void binaryBroadcastsLikeNumpy() {
        TensorData a = f(new float[] {1, 2, 3, 4, 5, 6}, 2, 3), row = f(new float[] {10, 20, 30}, 3), col = f(new float[] {100, 200}, 2, 1);
        TensorData o = out(DType.F32, 2, 3);
        RefOps.binary(null, Op.ADD, a, row, o);
        close(new float[] {11, 22, 33, 14, 25, 36}, o, 0);
        RefOps.binary(null, Op.SUB, a, col, o);
        close(new float[] {-99, -98, -97, -196, -195, -194}, o, 0);
        RefOps.binary(null, Op.MUL, col, row, o);
        close(new float[] {1000, 2000, 3000, 2000, 4000, 6000}, o, 0);
        RefOps.binary(null, Op.DIV, a, TensorData.scalar(2f), o);
        close(new float[] {0.5f, 1, 1.5f, 2, 2.5f, 3}, o, 0);
        RefOps.binary(null, Op.POW, a, TensorData.scalar(2f), o);
        close(new float[] {1, 4, 9, 16, 25, 36}, o, 0);
        TensorData li = out(DType.I64, 3);
        RefOps.binary(null, Op.DIV, l(new long[] {7, -7, 9}, 3), TensorData.scalar(2L), li);
        assertArrayEquals(new long[] {3, -3, 4}, li.toLongArray());   // truncating
        TensorData b = out(DType.U8, 3);
        RefOps.binary(null, Op.EQUAL, l(new long[] {1, 2, 3}, 3), TensorData.scalar(2L), b);
        assertArrayEquals(new long[] {0, 1, 0}, b.toLongArray());
        RefOps.binary(null, Op.LESS, f(new float[] {1, 2, 3}, 3), TensorData.scalar(2f), b);
        assertArrayEquals(new long[] {1, 0, 0}, b.toLongArray());
        RefOps.binary(null, Op.GREATER, f(new float[] {1, 2, 3}, 3), TensorData.scalar(2f), b);
        assertArrayEquals(new long[] {0, 0, 1}, b.toLongArray());
    }

    @Test
    void whereSelectsWithBroadcast() {
        TensorData c = TensorData.allocate(A, DType.U8, 2, 1);
        c.setLong(0, 1);
        TensorData o = out(DType.F32, 2, 2);
        RefOps.where(c, f(new float[] {1, 2}, 2), TensorData.scalar(-1f), o);
        close(new float[] {1, 2, -1, -1}, o, 0);
    }

    @Test
    void unaryMath() {
        TensorData x = f(new float[] {0.25f, 1, 4}, 3), o = out(DType.F32, 3);
        RefOps.unary(null, Op.SQRT, x, o);
        close(new float[] {0.5f, 1, 2}, o, 0);
        RefOps.unary(null, Op.RECIPROCAL, x, o);
        close(new float[] {4, 1, 0.25f}, o, 0);
        RefOps.unary(null, Op.NEG, x, o);
        close(new float[] {-0.25f, -1, -4}, o, 0);
        RefOps.unary(null, Op.EXP, f(new float[] {0, 1, -1}, 3), o);
        close(new float[] {1, (float) Math.E, (float) (1 / Math.E)}, o, 1e-7);
        RefOps.unary(null, Op.TANH, f(new float[] {0, 1, -1}, 3), o);
        close(new float[] {0, 0.7615942f, -0.7615942f}, o, 1e-7);
        RefOps.unary(null, Op.SIGMOID, f(new float[] {0, 2, -2}, 3), o);
        close(new float[] {0.5f, 0.880797f, 0.119203f}, o, 1e-6);
        RefOps.unary(null, Op.RELU, f(new float[] {-1, 0, 2}, 3), o);
        close(new float[] {0, 0, 2}, o, 0);
        TensorData b = TensorData.allocate(A, DType.U8, 2), nb = out(DType.U8, 2);
        b.setLong(1, 1);
        RefOps.unary(null, Op.NOT, b, nb);
        assertArrayEquals(new long[] {1, 0}, nb.toLongArray());
    }

    @Test
    void erfMatchesTabulatedValues() {
        // values from tables of the error function (Abramowitz & Stegun 7.1, to 1e-15 via mpmath)
        double[][] cases = {{0, 0}, {0.1, 0.1124629160182849}, {0.5, 0.5204998778130465}, {1, 0.8427007929497149},
                {2, 0.9953222650189527}, {2.9, 0.9999589021219005}, {3.1, 0.9999883513426328}, {4, 0.9999999845827421},
                {-1.5, -0.9661051464753108}, {7, 1}};
        for (double[] c : cases) assertEquals(c[1], RefOps.erf(c[0]), 1e-14, "erf(" + c[0] + ")");
        TensorData o = out(DType.F32, 2);
        RefOps.unary(null, Op.ERF, f(new float[] {0.5f, -2}, 2), o);
        close(new float[] {0.52049988f, -0.99532227f}, o, 1e-7);
    }

    @Test
    void geluErfAndTanh() {
        TensorData x = f(new float[] {-1, 0, 1, 3}, 4), o = out(DType.F32, 4);
        RefOps.gelu(null, x, false, o);
        // x/2 (1 + erf(x/sqrt2)): gelu(1) = 0.8413447460685429, gelu(-1) = -0.15865525393145707
        close(new float[] {-0.15865525f, 0, 0.84134475f, 2.9959502f}, o, 1e-6);
        RefOps.gelu(null, x, true, o);
        close(new float[] {-0.15880801f, 0, 0.84119199f, 2.9963627f}, o, 1e-6);
    }

    @Test
    void castConverts() {
        TensorData o = out(DType.I64, 3);
        RefOps.cast(f(new float[] {1.9f, -1.9f, 0}, 3), o);
        assertArrayEquals(new long[] {1, -1, 0}, o.toLongArray());
        TensorData of = out(DType.F32, 2);
        RefOps.cast(l(new long[] {3, -4}, 2), of);
        close(new float[] {3, -4}, of, 0);
        TensorData oi = out(DType.I32, 2);
        RefOps.cast(l(new long[] {3, -4}, 2), oi);
        assertArrayEquals(new long[] {3, -4}, oi.toLongArray());
    }

    @Test
    void reduceMeanAndSum() {
        TensorData x = f(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        TensorData o = out(DType.F32, 2, 1);
        RefOps.reduce(true, x, new boolean[] {false, true}, o);
        close(new float[] {2, 5}, o, 0);
        TensorData o2 = out(DType.F32, 3);
        RefOps.reduce(false, x, new boolean[] {true, false}, o2);
        close(new float[] {5, 7, 9}, o2, 0);
        TensorData o3 = out(DType.F32);
        RefOps.reduce(false, x, new boolean[] {true, true}, o3);
        close(new float[] {21}, o3, 0);
    }

    @Test
    void softmaxAlongAnyAxis() {
        TensorData x = f(new float[] {0, (float) Math.log(3), 1000, 1000}, 2, 2), o = out(DType.F32, 2, 2);
        RefOps.softmax(null, x, 1, o);
        close(new float[] {0.25f, 0.75f, 0.5f, 0.5f}, o, 1e-7);
        RefOps.softmax(null, f(new float[] {0, 0, 0, (float) Math.log(3)}, 2, 2), 0, o);
        close(new float[] {0.5f, 0.25f, 0.5f, 0.75f}, o, 1e-7);
    }

    @Test
    void layerNormNormalizesRows() {
        TensorData x = f(new float[] {1, 2, 3, 4, -1, -1, -1, -1}, 2, 4), o = out(DType.F32, 2, 4);
        RefOps.layerNorm(null, x, f(new float[] {1, 1, 2, 2}, 4), f(new float[] {0, 0, 0, 1}, 4), 1e-5, o);
        double s = Math.sqrt(1.25 + 1e-5); // var of 1..4 is 1.25; the constant row normalizes to 0
        close(new float[] {(float) (-1.5 / s), (float) (-0.5 / s), (float) (2 * 0.5 / s), (float) (2 * 1.5 / s + 1), 0, 0, 0, 1}, o, 1e-6);
    }

    @Test
    void shapeTransposeConcatSlice() {
        TensorData x = f(new float[] {0, 1, 2, 3, 4, 5}, 2, 3);
        TensorData s = out(DType.I64, 2);
        RefOps.shape(x, 0, s);
        assertArrayEquals(new long[] {2, 3}, s.toLongArray());
        TensorData t = out(DType.F32, 3, 2);
        RefOps.transpose(x, new long[] {1, 0}, t);
        close(new float[] {0, 3, 1, 4, 2, 5}, t, 0);
        TensorData x3 = f(new float[] {0, 1, 2, 3, 4, 5, 6, 7}, 2, 2, 2), t3 = out(DType.F32, 2, 2, 2);
        RefOps.transpose(x3, new long[] {1, 0, 2}, t3);   // inner dim kept: row copies
        close(new float[] {0, 1, 4, 5, 2, 3, 6, 7}, t3, 0);
        TensorData c = out(DType.F32, 2, 4);
        RefOps.concat(List.of(f(new float[] {1, 2}, 2, 1), x), 1, c);
        close(new float[] {1, 0, 1, 2, 2, 3, 4, 5}, c, 0);
        TensorData sl = out(DType.F32, 2, 2);
        RefOps.slice(x, l(new long[] {1}, 1), l(new long[] {Long.MAX_VALUE}, 1), l(new long[] {1}, 1), null, sl);
        close(new float[] {1, 2, 4, 5}, sl, 0);
        TensorData rev = out(DType.F32, 2, 3);
        RefOps.slice(x, l(new long[] {-1}, 1), l(new long[] {Long.MIN_VALUE}, 1), l(new long[] {-1}, 1), l(new long[] {-1}, 1), rev);
        close(new float[] {2, 1, 0, 5, 4, 3}, rev, 0);
    }

    @Test
    void gatherRowsAndIndexErrors() {
        TensorData table = f(new float[] {0, 1, 10, 11, 20, 21}, 3, 2);
        TensorData o = out(DType.F32, 2, 2, 2);
        RefOps.gather(table, l(new long[] {2, 0, -1, 1}, 2, 2), 0, o);
        close(new float[] {20, 21, 0, 1, 20, 21, 10, 11}, o, 0);
        TensorData o1 = out(DType.F32, 3);
        RefOps.gather(table, TensorData.scalar(1L), 1, o1.reshape(3));
        close(new float[] {1, 11, 21}, o1, 0);
        var e = assertThrows(GraphException.class, () -> RefOps.gather(table, l(new long[] {3}, 1), 0, out(DType.F32, 1, 2)));
        assertTrue(e.getMessage().contains("index 3"), e.getMessage());
    }

    @Test
    void expandConstantOfShapeRange() {
        TensorData o = out(DType.F32, 2, 3);
        RefOps.expand(f(new float[] {1, 2, 3}, 1, 3), o);
        close(new float[] {1, 2, 3, 1, 2, 3}, o, 0);
        TensorData c = out(DType.I64, 2, 2);
        RefOps.constantOfShape(TensorData.scalar(7L), c);
        assertArrayEquals(new long[] {7, 7, 7, 7}, c.toLongArray());
        TensorData r = out(DType.I64, 4);
        RefOps.range(TensorData.scalar(3L), TensorData.scalar(2L), r);
        assertArrayEquals(new long[] {3, 5, 7, 9}, r.toLongArray());
    }

    @Test
    void matmulGemmLinear() {
        TensorData a = f(new float[] {1, 2, 3, 4, 5, 6}, 2, 3), b = f(new float[] {1, 0, 0, 1, 1, 1}, 3, 2);
        TensorData o = out(DType.F32, 2, 2);
        RefOps.matmul(null, a, b, o);
        close(new float[] {4, 5, 10, 11}, o, 0);
        // broadcast batch: [2, 2, 3] @ [3, 2]
        TensorData a3 = f(new float[] {1, 2, 3, 4, 5, 6, 0, 0, 1, 1, 0, 0}, 2, 2, 3), o3 = out(DType.F32, 2, 2, 2);
        RefOps.matmul(null, a3, b, o3);
        close(new float[] {4, 5, 10, 11, 1, 1, 1, 0}, o3, 0);
        TensorData g = out(DType.F32, 2, 2);
        RefOps.gemm(a, f(new float[] {1, 0, 1, 0, 1, 1}, 2, 3), f(new float[] {1, -1}, 2), 2, 1, false, true, g);
        close(new float[] {2 * 4 + 1, 2 * 5 - 1, 2 * 10 + 1, 2 * 11 - 1}, g, 0);
        TensorData lo = out(DType.F32, 2, 2);
        RefOps.linear(null, a, f(new float[] {1, 0, 1, 0, 1, 1}, 2, 3), f(new float[] {0, -10}, 2), null, true, "relu", lo);
        close(new float[] {4, 0, 10, 1}, lo, 0);
        RefOps.linear(null, a, b, null, f(new float[] {1, 2, 3, 4}, 2, 2), false, "none", lo);
        close(new float[] {5, 7, 13, 15}, lo, 0);
        RefOps.linear(null, a, b, null, null, false, "gelu", lo);
        close(new float[] {(float) RefOps.gelu(4, false), (float) RefOps.gelu(5, false), 10, 11}, lo, 1e-5);
    }

    @Test
    void attentionByHand() {
        // B=1, S=2, H=1, D=2; q=k: row0 [1,0], row1 [0,1]; scale 1; v rows [1,2], [3,4]
        TensorData q = f(new float[] {1, 0, 0, 1}, 1, 2, 2), v = f(new float[] {1, 2, 3, 4}, 1, 2, 2);
        TensorData o = out(DType.F32, 1, 2, 2);
        RefOps.attention(null, q, q, v, null, 1, 1, o);
        double p = Math.E / (Math.E + 1); // softmax([1, 0])
        close(new float[] {(float) (p * 1 + (1 - p) * 3), (float) (p * 2 + (1 - p) * 4),
                (float) ((1 - p) * 1 + p * 3), (float) ((1 - p) * 2 + p * 4)}, o, 1e-6);
        // mask out key 1: every query sees only v row 0
        TensorData mask = f(new float[] {0, -Float.MAX_VALUE}, 1, 1, 1, 2);
        RefOps.attention(null, q, q, v, mask, 1, 1, o);
        close(new float[] {1, 2, 1, 2}, o, 0);
    }
}
