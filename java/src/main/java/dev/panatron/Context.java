package dev.panatron;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_ctx_params;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A native kernel context: the thread count kernels use and the oneDNN engine. One context
 * may be used from several threads at once. {@link #close()} frees it (twice is harmless);
 * a closed context throws {@link IllegalStateException}.
 */
public final class Context implements AutoCloseable {
    private static volatile Context shared;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final int threads;
    private final boolean oneDnn;
    private volatile boolean closed;

    private Context(int threads, boolean useOneDnn, int disableCaps) {
        Native.load();
        if (threads < 0) throw new IllegalArgumentException("threads must be >= 0 (0 = all cores), got " + threads);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = pt_ctx_params.allocate(tmp);
            pt_ctx_params.n_threads(p, threads);
            pt_ctx_params.disable_caps(p, disableCaps);
            pt_ctx_params.use_onednn(p, useOneDnn ? 1 : 0);
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            Native.check(panatron_h.pt_ctx_create(p, out));
            MemorySegment raw = out.get(ValueLayout.ADDRESS, 0);
            // The native context is destroyed when (and only when) our arena closes.
            this.handle = raw.reinterpret(arena, h -> panatron_h.pt_ctx_destroy(h));
            MemorySegment n = tmp.allocate(ValueLayout.JAVA_INT);
            Native.check(panatron_h.pt_ctx_threads(handle, n));
            this.threads = n.get(ValueLayout.JAVA_INT, 0);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
        this.oneDnn = useOneDnn && Panatron.oneDnnVersion() != null;
    }

    /** A context using {@code threads} threads (0: every online core), oneDNN where built in. */
    public static Context create(int threads) { return new Context(threads, true, 0); }

    /**
     * A context with explicit choices.
     *
     * @param threads     threads per kernel call (0: every online core)
     * @param useOneDnn   false forces our own kernels even where oneDNN is built in
     * @param disableCaps {@link CpuCaps} bits the kernels must not use (to test fallbacks)
     */
    public static Context create(int threads, boolean useOneDnn, int disableCaps) {
        return new Context(threads, useOneDnn, disableCaps);
    }

    /** A process-wide context on every core, created on first use and never closed. */
    public static Context shared() {
        Context c = shared;
        if (c == null) {
            synchronized (Context.class) {
                c = shared;
                if (c == null) shared = c = new Context(0, true, 0);
            }
        }
        return c;
    }

    /** The threads each kernel call uses. */
    public int threads() { return threads; }

    /** True when matmuls go through oneDNN. */
    public boolean usesOneDnn() { return oneDnn; }

    MemorySegment handle() {
        if (closed) throw new IllegalStateException("context is closed");
        return handle;
    }

    @Override
    public void close() {
        if (this == shared) return;
        synchronized (this) {
            if (closed) return;
            closed = true;
            arena.close();
        }
    }
}
