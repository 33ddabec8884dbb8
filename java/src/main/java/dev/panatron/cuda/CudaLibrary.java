package dev.panatron.cuda;

import dev.panatron.Native;
import dev.panatron.PanatronException;
import dev.panatron.Status;
import dev.panatron.ffm.panatron_h;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loads libpanatron_cuda at most once per process, and only when it can be useful: an NVIDIA
 * driver is present (or the library was named explicitly). The CPU path never touches this class.
 *
 * <p>Where the library comes from, in order:
 * <ol>
 *   <li>{@code -Dpanatron.cuda.library.path} or {@code PANATRON_CUDA_LIBRARY_PATH}: the library
 *       file, or a folder holding it (e.g. {@code build/native/native/src/cuda}). Loaded even when
 *       no driver is detected (the library then reports 0 devices); a path that does not hold the
 *       library makes CUDA unavailable with that reason, never silently another library;</li>
 *   <li>{@code -Dpanatron.cuda=false} or {@code PANATRON_CUDA=0}: CUDA is disabled;</li>
 *   <li>no NVIDIA driver detected (no {@code /proc/driver/nvidia}, {@code /dev/nvidiactl},
 *       {@code /dev/dxg} or {@code libcuda.so.1}): not loaded;</li>
 *   <li>the jar ({@code /dev/panatron/native/linux-x86_64/libpanatron_cuda.so}, present when the
 *       jar was built with {@code -Dpanatron.cuda=ON});</li>
 *   <li>beside the loaded CPU library, or in its CMake build tree ({@code native/src/cuda/});</li>
 *   <li>{@code System.loadLibrary("panatron_cuda")}.</li>
 * </ol>
 * The outcome, loaded or not and why, is kept: {@link #status()}.
 */
final class CudaLibrary {
    private CudaLibrary() {}

    static final String LIB = "libpanatron_cuda.so";

    private static volatile boolean tried;
    private static volatile boolean loaded;
    private static String status = "not loaded";

    /** Loads the library if it can be loaded; true when it is. Never throws. */
    static boolean ensureLoaded() {
        if (tried) return loaded;
        synchronized (CudaLibrary.class) {
            if (tried) return loaded;
            try {
                String from = doLoad();
                if (from != null) {
                    loaded = true;
                    status = "loaded from " + from;
                }
            } catch (UnsatisfiedLinkError | RuntimeException e) {
                status = e.getMessage();
            }
            tried = true;
            return loaded;
        }
    }

    /** Where the library was loaded from, or why it was not. */
    static String status() {
        ensureLoaded();
        return status;
    }

    /** Returns the path loaded from, or null (with {@link #status} set) when not loaded. */
    private static String doLoad() {
        String override = System.getProperty("panatron.cuda.library.path");
        String from = "-Dpanatron.cuda.library.path";
        if (override == null || override.isBlank()) {
            override = System.getenv("PANATRON_CUDA_LIBRARY_PATH");
            from = "PANATRON_CUDA_LIBRARY_PATH";
        }
        if (override != null && !override.isBlank()) return loadOverride(override.strip(), from);

        String off = System.getProperty("panatron.cuda");
        if (off == null) off = System.getenv("PANATRON_CUDA");
        if (off != null && (off.equalsIgnoreCase("false") || off.equals("0") || off.equalsIgnoreCase("off"))) {
            status = "disabled (-Dpanatron.cuda / PANATRON_CUDA)";
            return null;
        }
        String platform = Native.platform();
        if (!platform.equals("linux-x86_64") && !platform.equals("linux-aarch64")) {
            status = "libpanatron_cuda is built for Linux only (this is " + platform + ")";
            return null;
        }
        String driver = driverEvidence();
        if (driver == null) {
            status = "no NVIDIA driver found (no /proc/driver/nvidia, /dev/nvidiactl or libcuda.so.1)";
            return null;
        }
        List<Path> candidates = new ArrayList<>();
        Path bundled = Native.bundledFile(LIB);
        if (bundled != null) candidates.add(bundled);
        try {
            Native.load();
            String cpu = Native.loadedFrom();
            if (!cpu.equals("system")) {
                Path dir = Path.of(cpu).getParent();
                candidates.add(dir.resolve(LIB));
                candidates.add(dir.resolve("native/src/cuda").resolve(LIB));
            }
        } catch (UnsatisfiedLinkError | InvalidPathException e) {
            // no CPU library: only the jar and java.library.path are searched
        }
        for (Path p : candidates) {
            if (Files.isRegularFile(p)) {
                System.load(p.toAbsolutePath().toString());
                return p.toAbsolutePath().toString();
            }
        }
        try {
            System.loadLibrary("panatron_cuda");
            return "system (java.library.path)";
        } catch (UnsatisfiedLinkError e) {
            status = "libpanatron_cuda not found (driver: " + driver + "): not in the jar (build it with -Dpanatron.cuda=ON),"
                    + " not beside the CPU library, not on java.library.path; set -Dpanatron.cuda.library.path";
            return null;
        }
    }

    private static String loadOverride(String override, String from) {
        Path p;
        try {
            p = Path.of(override).toAbsolutePath();
        } catch (InvalidPathException e) {
            throw new UnsatisfiedLinkError(from + "=" + override + " is not a valid path: " + e.getMessage());
        }
        if (Files.isDirectory(p)) p = p.resolve(LIB);
        if (!Files.isRegularFile(p)) {
            throw new UnsatisfiedLinkError(from + "=" + override + ": " + p + " does not exist (expected " + LIB
                    + " or a folder holding it)");
        }
        try {
            System.load(p.toString());
        } catch (UnsatisfiedLinkError e) {
            throw new UnsatisfiedLinkError("cannot load " + p + " (" + from + "): " + e.getMessage());
        }
        return p.toString();
    }

    /** A short description of what shows an NVIDIA driver is installed, or null. */
    static String driverEvidence() {
        for (String f : List.of("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")) {
            if (Files.exists(Path.of(f))) return f;
        }
        List<String> dirs = new ArrayList<>();
        String ld = System.getenv("LD_LIBRARY_PATH");
        if (ld != null) for (String d : ld.split(":")) if (!d.isBlank()) dirs.add(d);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String triple = arch.equals("aarch64") ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
        dirs.addAll(List.of("/usr/lib/" + triple, "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64",
                "/usr/local/nvidia/lib", "/usr/lib/wsl/lib"));
        for (String d : dirs) {
            try {
                Path p = Path.of(d, "libcuda.so.1");
                if (Files.exists(p)) return p.toString();
            } catch (InvalidPathException e) {
                // skip odd LD_LIBRARY_PATH entries
            }
        }
        return null;
    }

    /** Throws {@link PanatronException} with libpanatron_cuda's message when {@code status} is not OK. */
    static void check(int status) {
        if (status != 0) throw new PanatronException(Status.of(status), lastError());
    }

    static String lastError() {
        MemorySegment s = panatron_h.pt_cuda_last_error();
        return s.equals(MemorySegment.NULL) ? "" : s.reinterpret(1024).getString(0);
    }
}
