package dev.panatron;

/** Element types of tensors. The codes are {@code pt_dtype} values of the C API. */
public enum DType {
    F32(0, 32), F16(1, 16), BF16(2, 16), I8(3, 8), U8(4, 8), I32(5, 32),
    /** Packed 4-bit codes, two per byte, element 2i in the low nibble. */
    U4(6, 4),
    I64(7, 64);

    private final int code;
    private final int bits;

    DType(int code, int bits) {
        this.code = code;
        this.bits = bits;
    }

    /** The {@code pt_dtype} value. */
    public int code() { return code; }

    /** Bits per element. */
    public int bits() { return bits; }

    /** Bytes per element; 0 for {@link #U4} (see {@link #bytesFor(long)}). */
    public int byteSize() { return bits >= 8 ? bits / 8 : 0; }

    /** Bytes needed to store {@code n} contiguous elements. */
    public long bytesFor(long n) { return bits >= 8 ? n * (bits / 8) : (n * bits + 7) / 8; }

    /** True for the floating-point types. */
    public boolean isFloat() { return this == F32 || this == F16 || this == BF16; }

    /** The dtype with C value {@code code}. */
    public static DType of(int code) {
        for (DType d : values()) if (d.code == code) return d;
        throw new IllegalArgumentException("unknown dtype code " + code);
    }
}
