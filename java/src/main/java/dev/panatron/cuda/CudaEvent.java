package dev.panatron.cuda;

import dev.panatron.ffm.panatron_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * A timing event on a context's stream ({@code cudaEvent_t}): {@link #record()} marks a point in
 * the stream, {@link #elapsedMs(CudaEvent)} gives the GPU time between two marks. Close it, or it
 * is freed with its context.
 */
public final class CudaEvent implements AutoCloseable {
    private final CudaContext ctx;
    private final MemorySegment event;
    private volatile boolean closed;

    CudaEvent(CudaContext ctx, MemorySegment event) {
        this.ctx = ctx;
        this.event = event;
    }

    private MemorySegment live() {
        if (closed) throw new IllegalStateException("CUDA event is closed");
        return event;
    }

    /** Enqueues this event on the context's stream. */
    public void record() { CudaLibrary.check(panatron_h.pt_cuda_event_record(ctx.handle(), live())); }

    /**
     * Milliseconds of GPU time from this event's record to {@code end}'s (waits for {@code end}).
     *
     * @throws IllegalArgumentException when {@code end} belongs to another context
     */
    public float elapsedMs(CudaEvent end) {
        Objects.requireNonNull(end, "end");
        if (end.ctx != ctx) throw new IllegalArgumentException("elapsedMs: the events belong to different contexts");
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.JAVA_FLOAT);
            CudaLibrary.check(panatron_h.pt_cuda_event_elapsed_ms(ctx.handle(), live(), end.live(), out));
            return out.get(ValueLayout.JAVA_FLOAT, 0);
        }
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
            if (ctx.isOpen()) CudaLibrary.check(panatron_h.pt_cuda_event_destroy(ctx.handle(), event));
        }
    }
}
