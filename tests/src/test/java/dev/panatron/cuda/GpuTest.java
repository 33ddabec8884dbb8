package dev.panatron.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Base of the GPU test classes: one {@link CudaContext} per test class, opened where a GPU, its
 * driver and libpanatron_cuda are present; {@link #gpu()} skips a test (JUnit assumption)
 * everywhere else, as in CI.
 */
abstract class GpuTest {
    static CudaContext ctx;

    @BeforeAll
    static void openContext() {
        if (Cuda.isAvailable()) ctx = CudaContext.create();
    }

    @AfterAll
    static void closeContext() {
        if (ctx != null) ctx.close();
        ctx = null;
    }

    /** Skips the calling test where there is no usable GPU. */
    static void gpu() {
        assumeTrue(ctx != null, () -> "no CUDA device: " + Cuda.status());
    }
}
