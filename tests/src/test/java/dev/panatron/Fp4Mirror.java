package dev.panatron;

/**
 * What the FP4 GEMV does to x before multiplying, written plainly for test references (shared by
 * {@code Fp4Test} and the decoder's precision test).
 */
public final class Fp4Mirror {
    private Fp4Mirror() {}

    /** v rounded to bf16 (round to nearest even), as the W4A16 (AVX512_BF16) GEMV does. */
    public static float bf16(float v) {
        int u = Float.floatToRawIntBits(v);
        u += 0x7fff + ((u >>> 16) & 1);
        return Float.intBitsToFloat(u & 0xffff0000);
    }

    /**
     * x as the VNNI GEMV quantizes it (one row): per block of 8 elements the power of two 2^e with
     * max|x| 2^-e in [16320, 32639], then rint(x 2^-e) 2^e.
     */
    public static float[] vnniX(float[] x) {
        float[] out = new float[x.length];
        for (int b = 0; b < x.length; b += 8) {
            int end = Math.min(b + 8, x.length);
            double amax = 0;
            for (int j = b; j < end; j++) amax = Math.max(amax, Math.abs(x[j]));
            if (amax == 0) continue;
            int e = Math.getExponent(amax) + 1 - 15; // amax 2^-e in [16384, 32768)
            if (Math.scalb(amax, -e) > 32639) e++;
            for (int j = b; j < end; j++) out[j] = (float) Math.scalb(Math.rint(Math.scalb((double) x[j], -e)), e);
        }
        return out;
    }
}
