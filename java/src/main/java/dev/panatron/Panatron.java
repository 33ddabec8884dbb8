package dev.panatron;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_build_info;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** Facts about the loaded native library: version, CPU capabilities, oneDNN. */
public final class Panatron {
    private Panatron() {}

    private static MemorySegment info() {
        Native.load();
        MemorySegment s = Arena.ofAuto().allocate(pt_build_info.layout());
        Native.check(panatron_h.pt_build_info_get(s));
        return s;
    }

    private static String unpack(int v) { return (v >>> 16) + "." + ((v >>> 8) & 0xff) + "." + (v & 0xff); }

    /** The native library version, "major.minor.patch". */
    public static String version() { return unpack(pt_build_info.version(info())); }

    /** The {@link CpuCaps} bits of this CPU. */
    public static int cpuCaps() { return pt_build_info.cpu_caps(info()); }

    /** The oneDNN version built in, or null when the library was built without it. */
    public static String oneDnnVersion() {
        int v = pt_build_info.onednn_version(info());
        return v == 0 ? null : unpack(v);
    }

    /** The number of online cores (the default thread count). */
    public static int defaultThreads() { return pt_build_info.default_threads(info()); }
}
