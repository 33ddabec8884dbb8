package dev.panatron;

import dev.panatron.ffm.panatron_h;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loads the native library once and turns native statuses into exceptions.
 *
 * <p>Where the library comes from, in order:
 * <ol>
 *   <li>the system property {@code panatron.library.path} or the environment variable
 *       {@code PANATRON_LIBRARY_PATH}: a library file, or a folder holding it (and oneDNN beside it);</li>
 *   <li>the jar: {@code /dev/panatron/native/<platform>/}, extracted once per process to a
 *       temporary folder (the library and the oneDNN/OpenMP runtime it links, side by side);</li>
 *   <li>{@code System.loadLibrary("panatron")}.</li>
 * </ol>
 */
public final class Native {
    private Native() {}

    /** The ABI major version these bindings were generated for. */
    static final int ABI_MAJOR = panatron_h.PT_VERSION_MAJOR();

    private static volatile boolean loaded;
    private static String loadedFrom = "";

    /** The platform folder name of this JVM: linux-x86_64, linux-aarch64, macos-aarch64, windows-x86_64. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String o = os.contains("win") ? "windows" : os.contains("mac") || os.contains("darwin") ? "macos" : "linux";
        String a = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> arch;
        };
        return o + "-" + a;
    }

    /** Files of the library folder, in load order (dependencies first). */
    private static List<String> libraryFiles(String platform) {
        if (platform.startsWith("windows")) return List.of("libiomp5md.dll", "dnnl.dll", "panatron.dll");
        if (platform.startsWith("macos")) return List.of("libiomp5.dylib", "libdnnl.3.dylib", "libpanatron.dylib");
        return List.of("libgomp.so.1", "libdnnl.so.3", "libpanatron.so");
    }

    /** Loads the library if needed; safe to call from any thread, any number of times. */
    public static void load() {
        if (loaded) return;
        synchronized (Native.class) {
            if (loaded) return;
            loadedFrom = doLoad();
            int v = panatron_h.pt_version();
            if ((v >>> 16) != ABI_MAJOR) {
                throw new UnsatisfiedLinkError("native library " + loadedFrom + " has ABI version " + (v >>> 16)
                        + "." + ((v >>> 8) & 0xff) + ", these bindings need major " + ABI_MAJOR);
            }
            loaded = true;
        }
    }

    /** Where the library was loaded from (a path, or "system"). */
    public static String loadedFrom() {
        load();
        return loadedFrom;
    }

    private static String doLoad() {
        String override = System.getProperty("panatron.library.path");
        if (override == null || override.isBlank()) override = System.getenv("PANATRON_LIBRARY_PATH");
        List<String> files = libraryFiles(platform());
        if (override != null && !override.isBlank()) {
            Path p = Path.of(override);
            if (Files.isDirectory(p)) {
                for (String f : files) {
                    Path c = p.resolve(f);
                    if (Files.exists(c)) System.load(c.toAbsolutePath().toString());
                }
                Path lib = p.resolve(files.getLast());
                if (!Files.exists(lib)) {
                    throw new UnsatisfiedLinkError("panatron.library.path=" + override + " holds no " + files.getLast());
                }
                return lib.toAbsolutePath().toString();
            }
            if (!Files.exists(p)) throw new UnsatisfiedLinkError("panatron.library.path=" + override + " does not exist");
            System.load(p.toAbsolutePath().toString());
            return p.toAbsolutePath().toString();
        }
        String folder = "/dev/panatron/native/" + platform() + "/";
        if (Native.class.getResource(folder + files.getLast()) != null) {
            try {
                Path dir = Files.createTempDirectory("panatron-native-");
                dir.toFile().deleteOnExit();
                List<Path> extracted = new ArrayList<>();
                for (String f : files) {
                    try (InputStream in = Native.class.getResourceAsStream(folder + f)) {
                        if (in == null) continue;
                        Path out = dir.resolve(f);
                        Files.copy(in, out, StandardCopyOption.REPLACE_EXISTING);
                        out.toFile().deleteOnExit();
                        extracted.add(out);
                    }
                }
                for (Path p : extracted) System.load(p.toAbsolutePath().toString());
                return "jar:" + folder + files.getLast();
            } catch (IOException e) {
                throw new UnsatisfiedLinkError("cannot extract the native library from the jar: " + e);
            }
        }
        try {
            System.loadLibrary("panatron");
            return "system";
        } catch (UnsatisfiedLinkError e) {
            throw new UnsatisfiedLinkError("no native library for platform " + platform()
                    + ": not in the jar (" + folder + "), not on java.library.path, and neither"
                    + " -Dpanatron.library.path nor PANATRON_LIBRARY_PATH is set");
        }
    }

    /** Throws {@link PanatronException} with the native message when {@code status} is not OK. */
    public static void check(int status) {
        if (status != 0) throw new PanatronException(Status.of(status), lastError());
    }

    /** The native library's last error message on this thread. */
    public static String lastError() {
        MemorySegment s = panatron_h.pt_last_error();
        return s.equals(MemorySegment.NULL) ? "" : s.reinterpret(1024).getString(0);
    }
}
