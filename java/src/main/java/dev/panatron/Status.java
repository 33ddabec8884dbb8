package dev.panatron;

/** The status codes of the C API ({@code pt_status}); the numeric values are the ABI. */
public enum Status {
    OK(0), INVALID_ARGUMENT(1), SHAPE(2), DTYPE(3), OUT_OF_MEMORY(4), UNSUPPORTED(5), BACKEND(6), INTERNAL(7),
    /** A code this version of the Java library does not know (a newer native library). */
    UNKNOWN(-1);

    private final int code;

    Status(int code) { this.code = code; }

    /** The C value of this status. */
    public int code() { return code; }

    /** The status for a C value; {@link #UNKNOWN} for values this version does not know. */
    public static Status of(int code) {
        for (Status s : values()) if (s.code == code) return s;
        return UNKNOWN;
    }
}
