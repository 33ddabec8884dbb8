package dev.panatron;

/** A failure reported by the native library: its status and the message it gave. */
public final class PanatronException extends RuntimeException {
    private final Status status;

    /** Creates an exception for {@code status} with the native library's message. */
    public PanatronException(Status status, String message) {
        super(status + ": " + message);
        this.status = status;
    }

    /** The native status code. */
    public Status status() { return status; }
}
