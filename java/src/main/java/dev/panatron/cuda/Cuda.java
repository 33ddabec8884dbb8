package dev.panatron.cuda;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_cuda_device_info;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * Entry point of the CUDA backend: whether it is usable here, and the devices. Nothing here throws
 * for a machine without a GPU, a driver or libpanatron_cuda: {@link #devices()} is then empty and
 * {@link #status()} says why. See {@link CudaLibrary} for where the library is loaded from
 * ({@code -Dpanatron.cuda.library.path}, {@code PANATRON_CUDA_LIBRARY_PATH}, the jar).
 */
public final class Cuda {
    private Cuda() {}

    /** True when libpanatron_cuda is loaded and reports at least one device. */
    public static boolean isAvailable() { return deviceCount() > 0; }

    /** The number of CUDA devices; 0 without a driver, a device or libpanatron_cuda. */
    public static int deviceCount() {
        if (!CudaLibrary.ensureLoaded()) return 0;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(ValueLayout.JAVA_INT);
            if (panatron_h.pt_cuda_device_count(n) != 0) return 0;
            return n.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** The devices (empty where CUDA is unavailable). Free memory is read at the call. */
    public static List<CudaDevice> devices() {
        int n = deviceCount();
        List<CudaDevice> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) out.add(device(i));
        return List.copyOf(out);
    }

    /**
     * Properties of device {@code ordinal}.
     *
     * @throws IllegalArgumentException when ordinal is not in 0 .. deviceCount()-1
     * @throws IllegalStateException    when CUDA is unavailable (the message says why)
     */
    public static CudaDevice device(int ordinal) {
        requireLoaded();
        int n = deviceCount();
        if (ordinal < 0 || ordinal >= n) {
            throw new IllegalArgumentException("device ordinal " + ordinal + " out of range: " + n + " CUDA device(s)");
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment d = pt_cuda_device_info.allocate(a);
            CudaLibrary.check(panatron_h.pt_cuda_device_info_get(ordinal, d));
            return new CudaDevice(pt_cuda_device_info.device(d), pt_cuda_device_info.name(d).getString(0),
                    pt_cuda_device_info.cc_major(d), pt_cuda_device_info.cc_minor(d), pt_cuda_device_info.sm_count(d),
                    pt_cuda_device_info.total_mem(d), pt_cuda_device_info.free_mem(d), pt_cuda_device_info.l2_bytes(d),
                    pt_cuda_device_info.smem_per_block_optin(d), pt_cuda_device_info.mem_bus_width(d),
                    pt_cuda_device_info.driver_version(d), pt_cuda_device_info.runtime_version(d));
        }
    }

    /** Where libpanatron_cuda was loaded from, or why it was not (loads it if it can). */
    public static String status() { return CudaLibrary.status(); }

    /** True when libpanatron_cuda is loaded (whether or not it sees a device). */
    public static boolean isLibraryLoaded() { return CudaLibrary.ensureLoaded(); }

    static void requireLoaded() {
        if (!CudaLibrary.ensureLoaded()) throw new IllegalStateException("CUDA is unavailable: " + CudaLibrary.status());
    }
}
