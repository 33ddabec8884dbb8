package dev.panatron.graph;

import java.util.Arrays;
import java.util.Objects;
import java.util.stream.IntStream;

/**
 * GPTQ (Frantar et al., 2022) for the FP4 codes + group scales format of {@link dev.panatron.Fp4}:
 * error-compensating quantization of a linear layer's weight {@code W [N, K]} against the
 * second moment of its calibration inputs {@code H = XᵀX [K, K]} (any positive multiple).
 * Columns are quantized one after the other (in order of decreasing {@code H[k, k]} with
 * {@link Params#actOrder}); each column's rounding error is spread over the columns not yet
 * quantized so that {@code ||X Wᵀ - X Qᵀ||²} stays small, using the upper Cholesky factor U of
 * {@code H⁻¹} (after damping {@code H += damp * mean(diag H) * I}). The result is the SAME stored
 * format as round-to-nearest (codes decoding to {@code level[code] * scale}, one f32 scale per
 * group of G consecutive elements of a row): only which codes and scales are chosen changes, the
 * kernels at inference are the same.
 *
 * <p>Scales: each group's scale is {@code c * absmax / max|level|} with the clip c among
 * {@link Params#clips} minimizing {@code sum_k H[k, k] (w_k - q_k)²} over the group. With act
 * order they are chosen before GPTQ runs, from the original weights ("static groups", so the
 * groups stay contiguous along K whatever the column order); without, when GPTQ reaches the
 * group's first column, from the weights updated so far (as the reference implementation).
 *
 * <p>Double precision throughout; deterministic (no randomness; parallel over independent row
 * blocks, each computed the same way whatever the thread count).
 */
public final class Gptq {
    private Gptq() {}

    /**
     * GPTQ settings.
     *
     * @param damp     dampening, a fraction of the mean diagonal of H added to the diagonal (> 0)
     * @param actOrder quantize columns in order of decreasing H[k, k] (static group scales)
     * @param clips    candidate clipping ratios in (0, 1] for each group's scale
     */
    public record Params(double damp, boolean actOrder, float[] clips) {
        /**
         * damp 0.1, columns in index order (group scales chosen as GPTQ reaches them), clips 1 .. 0.7:
         * the best of damp 0.01 / 0.1 / 0.3 x act order on / off on all-MiniLM-L6-v2 (BENCHMARKS.md).
         */
        public static final Params DEFAULT = new Params(0.1, false, new float[] {1f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.7f});

        /** @throws IllegalArgumentException for damp <= 0, no clips or a clip outside (0, 1] */
        public Params {
            if (!(damp > 0) || Double.isInfinite(damp)) throw new IllegalArgumentException("damp must be > 0 and finite, got " + damp);
            clips = Objects.requireNonNull(clips, "clips").clone();
            if (clips.length == 0) throw new IllegalArgumentException("clips must not be empty");
            for (float c : clips) if (!(c > 0f && c <= 1f)) throw new IllegalArgumentException("clip " + c + " must be in (0, 1]");
        }

        public Params withDamp(double d) { return new Params(d, actOrder, clips); }

        public Params withActOrder(boolean a) { return new Params(damp, a, clips); }

        public Params withClips(float... c) { return new Params(damp, actOrder, c); }

        @Override
        public float[] clips() { return clips.clone(); }
    }

    /**
     * A quantized weight.
     *
     * @param codes  [N, K/2] bytes, two codes per byte (element 2i in the low nibble), as {@code U4}
     * @param scales [N, groups] f32 (groups = K / G, or 1 per channel)
     * @param loss   {@code sum_n (w_n - q_n) H' (w_n - q_n)ᵀ} with H' the damped H: the
     *               calibration output error GPTQ minimizes (H in the caller's scale)
     */
    public record Result(byte[] codes, float[] scales, double loss) {}

    /** The upper Cholesky factor of (damped H)⁻¹ with its column order and the damped diagonal. */
    record Factor(int k, int[] perm, double[] u, double[] diag, boolean[] dead) {}

    /**
     * Damps H, orders its columns (act order) and factors it.
     *
     * @param h [K, K] row-major, symmetric positive semi-definite (not modified)
     * @throws IllegalArgumentException when H is not [K, K] or not positive definite after damping
     */
    static Factor factor(double[] h, int k, Params p) {
        if (h.length != (long) k * k) throw new IllegalArgumentException("H has " + h.length + " values, expected K*K = " + (long) k * k);
        boolean[] dead = new boolean[k];
        double mean = 0;
        for (int i = 0; i < k; i++) {
            double d = h[i * k + i];
            if (!(d > 0)) dead[i] = true;
            else mean += d;
        }
        mean = k == 0 ? 0 : mean / k;
        if (!(mean > 0)) mean = 1;
        double[] diag = new double[k];
        for (int i = 0; i < k; i++) diag[i] = (dead[i] ? 1 : h[i * k + i]) + p.damp() * mean;
        Integer[] order = new Integer[k];
        for (int i = 0; i < k; i++) order[i] = i;
        if (p.actOrder()) Arrays.sort(order, (a, b) -> Double.compare(diag[b], diag[a])); // stable: ties keep index order
        int[] perm = new int[k];
        for (int i = 0; i < k; i++) perm[i] = order[i];
        // A = J Hp J (Hp = H permuted, J = reversal), lower Cholesky A = L Lᵀ; then
        // Hp = R Rᵀ with R = J L J upper, and U = R⁻¹ = J L⁻¹ J is upper with Hp⁻¹ = Uᵀ U.
        double[] a = new double[k * k];
        for (int i = 0; i < k; i++) {
            int pi = perm[k - 1 - i];
            for (int j = 0; j <= i; j++) {
                int pj = perm[k - 1 - j];
                double v = dead[pi] || dead[pj] ? 0 : h[pi * k + pj];
                a[i * k + j] = pi == pj ? diag[pi] : v;
            }
        }
        double[] u = reversedLowerInverse(cholesky(a, k), k);
        return new Factor(k, perm, u, diag, dead);
    }

    /** Rows (Cholesky) and columns (inverse) handled together, so each row of Lᵀ read serves all of them. */
    private static final int BLOCK = 32;

    /**
     * In-place lower Cholesky of the lower triangle of a [K, K] (L left in the lower triangle;
     * the upper triangle is not read), returning Lᵀ as a new row-major [K, K] array (upper
     * triangle and diagonal). Right-looking, restricted to blocks of {@link #BLOCK} rows at a
     * time (the block stays in cache while the rows of Lᵀ stream by); the inner loops are
     * axpys over contiguous rows.
     */
    static double[] cholesky(double[] a, int k) {
        double[] t = new double[k * k];
        for (int i0 = 0; i0 < k; i0 += BLOCK) {
            int i1 = Math.min(k, i0 + BLOCK);
            for (int p = 0; p < i1; p++) {
                int prow = p * k;
                double lpp = a[prow + p];
                if (p >= i0) {
                    if (!(lpp > 0) || Double.isInfinite(lpp)) {
                        throw new IllegalArgumentException("H is not positive definite after damping (pivot " + p + " = " + lpp + ")");
                    }
                    lpp = Math.sqrt(lpp);
                    a[prow + p] = lpp;
                    t[prow + p] = lpp;
                }
                int from = Math.max(i0, p + 1);
                for (int i = from; i < i1; i++) {
                    double lip = a[i * k + p] / lpp;
                    a[i * k + p] = lip;
                    t[prow + i] = lip;
                }
                for (int i = from; i < i1; i++) {
                    int irow = i * k;
                    double lip = a[irow + p];
                    if (lip == 0) continue;
                    for (int j = p + 1; j <= i; j++) a[irow + j] -= lip * t[prow + j];
                }
            }
        }
        return t;
    }

    /**
     * The inverse of L (given as t = Lᵀ) in the order GPTQ needs it: U[i][j] = (L⁻¹)[K-1-i][K-1-j].
     * Column j of L⁻¹ is the forward substitution of e_j; blocks of {@link #BLOCK} columns are
     * independent (run in parallel, each computed the same way whatever the threads).
     */
    static double[] reversedLowerInverse(double[] t, int k) {
        double[] u = new double[k * k];
        int blocks = (k + BLOCK - 1) / BLOCK;
        IntStream.range(0, blocks).parallel().forEach(b -> {
            int j0 = b * BLOCK, j1 = Math.min(k, j0 + BLOCK);
            double[][] col = new double[j1 - j0][k];
            for (int j = j0; j < j1; j++) col[j - j0][j] = 1;
            for (int p = j0; p < k; p++) {
                int prow = p * k;
                double tpp = t[prow + p];
                for (int j = j0; j < j1 && j <= p; j++) {
                    double[] c = col[j - j0];
                    double v = c[p] / tpp;
                    c[p] = v;
                    if (v == 0) continue;
                    for (int q = p + 1; q < k; q++) c[q] -= v * t[prow + q];
                }
            }
            for (int j = j0; j < j1; j++) {
                double[] c = col[j - j0];
                for (int i = j; i < k; i++) u[(k - 1 - i) * k + (k - 1 - j)] = c[i];
            }
        });
        return u;
    }

    /**
     * Quantizes {@code w} with GPTQ.
     *
     * @param w      [N, K] row-major f32 (not modified)
     * @param h      [K, K] row-major, the calibration inputs' XᵀX (any positive multiple)
     * @param levels the format's 16 levels in code order ({@link dev.panatron.Fp4#levels})
     * @param group  0 (one scale per row), or the group size G along K (K % G == 0)
     * @throws IllegalArgumentException on a size mismatch, odd K, or a bad group
     */
    public static Result quantize(float[] w, int n, int k, double[] h, float[] levels, int group, Params p) {
        return quantize(w, n, k, factor(h, k, p), levels, group, p);
    }

    /** {@link #quantize(float[], int, int, double[], float[], int, Params)} with a factor computed once (shared by layers with one input). */
    static Result quantize(float[] w, int n, int k, Factor f, float[] levels, int group, Params p) {
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(levels, "levels");
        if (levels.length != 16) throw new IllegalArgumentException("levels must hold 16 values, got " + levels.length);
        if (w.length != (long) n * k) throw new IllegalArgumentException("w has " + w.length + " values, expected N*K = " + n + "*" + k);
        if (f.k() != k) throw new IllegalArgumentException("factor is for K=" + f.k() + ", w has K=" + k);
        if (k % 2 != 0) throw new IllegalArgumentException("K = " + k + " must be even (two codes per byte)");
        int g = group == 0 ? k : group;
        if (group < 0 || k % g != 0) throw new IllegalArgumentException("K = " + k + " is not a multiple of the group size " + group);
        int groups = k / g;
        Quantizer qz = new Quantizer(levels, p.clips());
        byte[] codes = new byte[n * (k / 2)];
        float[] scales = new float[n * groups];
        final int rb = 16;
        int blocks = (n + rb - 1) / rb;
        double[] losses = new double[blocks];
        IntStream.range(0, blocks).parallel().forEach(b -> losses[b] = rowBlock(w, k, f, qz, g, groups, p.actOrder(), b * rb, Math.min(n, (b + 1) * rb), codes, scales));
        double loss = 0;
        for (double l : losses) loss += l;
        return new Result(codes, scales, loss);
    }

    /** GPTQ on rows [r0, r1): writes their codes and scales, returns their loss. */
    private static double rowBlock(float[] w, int k, Factor f, Quantizer qz, int g, int groups, boolean staticGroups, int r0, int r1,
                                   byte[] codes, float[] scales) {
        int rows = r1 - r0;
        int[] perm = f.perm();
        double[] u = f.u(), diag = f.diag();
        double[][] wp = new double[rows][k];
        for (int r = 0; r < rows; r++) {
            int base = (r0 + r) * k;
            for (int i = 0; i < k; i++) wp[r][i] = f.dead()[perm[i]] ? 0 : w[base + perm[i]];
        }
        double[] gw = new double[g], gd = new double[g];
        if (staticGroups) {
            for (int r = 0; r < rows; r++) {
                int base = (r0 + r) * k;
                for (int gi = 0; gi < groups; gi++) {
                    for (int j = 0; j < g; j++) {
                        int c = gi * g + j;
                        gw[j] = f.dead()[c] ? 0 : w[base + c];
                        gd[j] = diag[c];
                    }
                    scales[(r0 + r) * groups + gi] = qz.bestScale(gw, gd, g);
                }
            }
        }
        double[] e = new double[rows];
        double loss = 0;
        for (int i = 0; i < k; i++) {
            int c = perm[i];
            if (!staticGroups && i % g == 0) {      // identity order: the group starting here, from the updated weights
                for (int r = 0; r < rows; r++) {
                    for (int j = 0; j < g; j++) {
                        gw[j] = wp[r][i + j];
                        gd[j] = diag[perm[i + j]];
                    }
                    scales[(r0 + r) * groups + i / g] = qz.bestScale(gw, gd, g);
                }
            }
            double uii = u[i * k + i];
            for (int r = 0; r < rows; r++) {
                float s = scales[(r0 + r) * groups + c / g];
                double v = wp[r][i];
                int code = qz.code(v, s);
                double q = qz.value(code, s);
                int bi = (r0 + r) * (k / 2) + (c >> 1);
                codes[bi] = (byte) ((c & 1) == 0 ? (codes[bi] & 0xF0) | code : (codes[bi] & 0x0F) | (code << 4));
                e[r] = (v - q) / uii;
                loss += e[r] * e[r];
            }
            int urow = i * k;
            for (int r = 0; r < rows; r++) {
                double er = e[r];
                if (er == 0) continue;
                double[] row = wp[r];
                for (int j = i + 1; j < k; j++) row[j] -= er * u[urow + j];
            }
        }
        return loss;
    }

    /** Round to nearest onto the scaled levels of one format, and the group scale search. */
    static final class Quantizer {
        final float[] levels;
        final float[] clips;
        final float maxAbs;
        final double[] sorted;      // ascending levels
        final int[] sortedCode;     // their codes
        final double[] mid;         // midpoints between consecutive sorted levels
        final int zeroCode;

        Quantizer(float[] levels, float[] clips) {
            this.levels = levels.clone();
            this.clips = clips.clone();
            Integer[] idx = new Integer[16];
            for (int i = 0; i < 16; i++) idx[i] = i;
            // ascending; among equal levels (+0 / -0) the lower code
            Arrays.sort(idx, (a, b) -> levels[a] != levels[b] ? Float.compare(levels[a], levels[b]) : Integer.compare(a, b));
            sorted = new double[16];
            sortedCode = new int[16];
            float mx = 0;
            int z = -1;
            for (int i = 0; i < 16; i++) {
                sorted[i] = levels[idx[i]];
                sortedCode[i] = idx[i];
                mx = Math.max(mx, Math.abs(levels[idx[i]]));
                if (levels[idx[i]] == 0 && z < 0) z = idx[i];
            }
            maxAbs = mx;
            mid = new double[15];
            for (int i = 0; i < 15; i++) mid[i] = (sorted[i] + sorted[i + 1]) / 2;
            zeroCode = z >= 0 ? z : sortedCode[nearestSorted(0)];
        }

        /** Index into sorted of the level nearest t (ties: the one of smaller magnitude). */
        int nearestSorted(double t) {
            int lo = 0;
            while (lo < 15 && t > mid[lo]) lo++;
            // t <= mid[lo] (or lo == 15); a tie t == mid[lo] goes to the level of smaller magnitude
            if (lo < 15 && t == mid[lo] && Math.abs(sorted[lo + 1]) < Math.abs(sorted[lo])) lo++;
            return lo;
        }

        int code(double v, float s) {
            if (!(s > 0) || Float.isInfinite(s)) return zeroCode;
            return sortedCode[nearestSorted(v / s)];
        }

        /** The decoded value, exactly as the kernels compute it (f32 level times f32 scale). */
        double value(int code, float s) {
            return !(s > 0) || Float.isInfinite(s) ? 0 : levels[code] * s;
        }

        /** The clip among {@link #clips} whose scale minimizes sum d_j (w_j - q_j)² over the group. */
        float bestScale(double[] w, double[] d, int g) {
            double amax = 0;
            for (int j = 0; j < g; j++) amax = Math.max(amax, Math.abs(w[j]));
            if (!(amax > 0) || maxAbs == 0) return 0f;
            float best = 0f;
            double bestErr = Double.POSITIVE_INFINITY;
            for (float c : clips) {
                float s = (float) (c * amax / maxAbs);
                if (!(s > 0)) continue;
                double err = 0;
                for (int j = 0; j < g; j++) {
                    double q = value(code(w[j], s), s);
                    err += d[j] * (w[j] - q) * (w[j] - q);
                }
                if (err < bestErr) {
                    bestErr = err;
                    best = s;
                }
            }
            return best;
        }
    }
}
