package dev.panatron;

import dev.panatron.ffm.panatron_h;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.net.JarURLConnection;
import java.net.URISyntaxException;
import java.net.URL;
import java.net.URLConnection;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.jar.JarEntry;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import java.util.zip.CheckedInputStream;

/**
 * Loads the native library once per process and turns native statuses into exceptions.
 *
 * <p>Where the library comes from, in order:
 * <ol>
 *   <li>the system property {@code panatron.library.path} or the environment variable
 *       {@code PANATRON_LIBRARY_PATH}: a library file, or a folder holding it (for example a CMake
 *       build folder such as {@code build/native}); the oneDNN/OpenMP libraries found beside it are
 *       loaded first. A path that does not hold the library is an error, never silently skipped;</li>
 *   <li>the jar: {@code /dev/panatron/native/<platform>/} (the library and the oneDNN/OpenMP
 *       runtime it links, side by side). Run from a classes folder, the files are loaded in place.
 *       From a jar they are extracted once into a cache folder named after the version and a hash
 *       of the files' sizes and CRCs ({@code <java.io.tmpdir>/panatron-native-<user>/<version>-<hash>/},
 *       or {@code -Dpanatron.native.cache.dir}), so later JVMs load them without copying ~100 MB
 *       again; files are written under a temporary name and moved into place atomically, so
 *       concurrent JVMs never see a partial file. {@code -Dpanatron.native.cache=false} extracts
 *       into a private temporary folder per process instead;</li>
 *   <li>{@code System.loadLibrary("panatron")} ({@code java.library.path}).</li>
 * </ol>
 */
public final class Native {
    private Native() {}

    /** The ABI major version these bindings were generated for. */
    static final int ABI_MAJOR = panatron_h.PT_VERSION_MAJOR();

    /** Where the loaded library came from. */
    enum Source { OVERRIDE, JAR, CLASSES_FOLDER, SYSTEM }

    private static volatile boolean loaded;
    private static String loadedFrom = "";
    private static Source source;

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

    /**
     * Files of the library folder, in load order (dependencies first); the last one is ours. Those
     * absent are skipped (a build without oneDNN has only the last). The names are what the
     * org.bytedeco:dnnl 3.13-1.5.14 jars ship (java/pom.xml copies the same set into the jar).
     */
    static List<String> libraryFiles(String platform) {
        if (platform.startsWith("windows")) {
            // dnnl.dll and an MSVC-built panatron.dll import the MSVC runtime: OpenMP (vcomp140),
            // C (vcruntime140, _1) and C++ (msvcp140); shipped from org.bytedeco:javacpp.
            return List.of("vcruntime140.dll", "vcruntime140_1.dll", "msvcp140.dll", "vcomp140.dll",
                    "dnnl.dll", "panatron.dll");
        }
        if (platform.startsWith("macos")) {
            // macosx-arm64 ships libomp.dylib, macosx-x86_64 libiomp5.dylib
            return List.of("libomp.dylib", "libiomp5.dylib", "libdnnl.3.dylib", "libpanatron.dylib");
        }
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

    /** Where the library was loaded from: the absolute path of the library file, or "system". */
    public static String loadedFrom() {
        load();
        return loadedFrom;
    }

    /** How the library was found (for tests and diagnostics). */
    static Source source() {
        load();
        return source;
    }

    private static String doLoad() {
        String platform = platform();
        List<String> files = libraryFiles(platform);
        String libName = files.getLast();

        String override = System.getProperty("panatron.library.path");
        String from = "-Dpanatron.library.path";
        if (override == null || override.isBlank()) {
            override = System.getenv("PANATRON_LIBRARY_PATH");
            from = "PANATRON_LIBRARY_PATH";
        }
        if (override != null && !override.isBlank()) {
            source = Source.OVERRIDE;
            return loadOverride(override.strip(), from, files);
        }

        String folder = "/dev/panatron/native/" + platform + "/";
        URL url = Native.class.getResource(folder + libName);
        if (url != null) {
            try {
                if ("file".equals(url.getProtocol())) {
                    // a classes folder (tests, IDE): load in place, nothing to copy
                    Path dir = Path.of(url.toURI()).getParent();
                    source = Source.CLASSES_FOLDER;
                    return loadFolder(dir, files, "classes folder " + dir);
                }
                Path dir = extract(folder, files);
                source = Source.JAR;
                return loadFolder(dir, files, "extracted from the jar (" + url + ") into " + dir);
            } catch (IOException | URISyntaxException e) {
                throw new UnsatisfiedLinkError("cannot extract the native library " + url + ": " + e);
            }
        }
        try {
            System.loadLibrary("panatron");
            source = Source.SYSTEM;
            return "system";
        } catch (UnsatisfiedLinkError e) {
            throw new UnsatisfiedLinkError("no native library for platform " + platform
                    + ": not in the jar (" + folder + libName + "), not on java.library.path ("
                    + e.getMessage() + "), and neither -Dpanatron.library.path nor PANATRON_LIBRARY_PATH is set");
        }
    }

    /** -Dpanatron.library.path / PANATRON_LIBRARY_PATH: a library file or a folder holding it. */
    private static String loadOverride(String override, String from, List<String> files) {
        String libName = files.getLast();
        Path p;
        try {
            p = Path.of(override).toAbsolutePath();
        } catch (InvalidPathException e) {
            throw new UnsatisfiedLinkError(from + "=" + override + " is not a valid path: " + e.getMessage());
        }
        String what = from + "=" + override;
        if (Files.isDirectory(p)) {
            if (!Files.isRegularFile(p.resolve(libName))) {
                throw new UnsatisfiedLinkError(what + ": the folder " + p + " holds no " + libName
                        + " (point it at a folder with the built library, e.g. build/native, or at the file)");
            }
            return loadFolder(p, files, what);
        }
        if (!Files.exists(p)) {
            throw new UnsatisfiedLinkError(what + ": " + p + " does not exist (expected " + libName
                    + " or a folder holding it)");
        }
        // a file: load the dependencies found beside it first
        Path dir = p.getParent();
        for (String f : files.subList(0, files.size() - 1)) loadIfPresent(dir.resolve(f), what);
        loadFile(p, what);
        return p.toString();
    }

    private static String loadFolder(Path dir, List<String> files, String what) {
        for (String f : files.subList(0, files.size() - 1)) loadIfPresent(dir.resolve(f), what);
        Path lib = dir.resolve(files.getLast()).toAbsolutePath();
        loadFile(lib, what);
        return lib.toString();
    }

    private static void loadIfPresent(Path p, String what) {
        if (!Files.isRegularFile(p)) return;
        // The JDK on Windows ships (and has loaded) its own MSVC C/C++ runtime in bin/, which is
        // also first in the DLL search order: use it rather than loading a second copy.
        String name = p.getFileName().toString().toLowerCase(Locale.ROOT);
        if ((name.startsWith("vcruntime140") || name.startsWith("msvcp140"))
                && Files.exists(Path.of(System.getProperty("java.home"), "bin", name))) {
            return;
        }
        loadFile(p, what);
    }

    private static void loadFile(Path p, String what) {
        try {
            System.load(p.toAbsolutePath().toString());
        } catch (UnsatisfiedLinkError e) {
            throw new UnsatisfiedLinkError("cannot load " + p + " (" + what + "): " + e.getMessage());
        }
    }

    // ---- extraction from the jar into a versioned, hashed cache folder ----

    /** One library file inside the jar. */
    private record Entry(String name, URL url, long size, long crc) {}

    private static Path extract(String folder, List<String> files) throws IOException {
        List<Entry> entries = new ArrayList<>();
        boolean described = true;
        String version = null;
        for (String f : files) {
            URL u = Native.class.getResource(folder + f);
            if (u == null) continue;
            long size = -1, crc = -1;
            URLConnection c = u.openConnection();
            if (c instanceof JarURLConnection jc) {
                JarEntry je = jc.getJarEntry();
                size = je.getSize();
                crc = je.getCrc();
                if (version == null && jc.getManifest() != null) {
                    version = jc.getManifest().getMainAttributes().getValue("Implementation-Version");
                }
            }
            if (size < 0 || crc < 0) described = false;
            entries.add(new Entry(f, u, size, crc));
        }
        boolean cache = !"false".equalsIgnoreCase(System.getProperty("panatron.native.cache", "true"));
        if (cache && described) {
            Path dir = cacheFolder(entries, version == null ? "dev" : version);
            if (dir != null) {
                boolean fresh = false;
                for (Entry e : entries) {
                    Path f = dir.resolve(e.name());
                    if (!(Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS) && Files.size(f) == e.size())) fresh = true;
                    extractInto(dir, e, true);
                }
                if (fresh) pruneCache(dir);
                return dir;
            }
        }
        // no cache (disabled, unusable folder, or a jar that does not tell sizes and CRCs)
        Path dir = Files.createTempDirectory("panatron-native-");
        dir.toFile().deleteOnExit();
        for (Entry e : entries) {
            Path out = extractInto(dir, e, false);
            out.toFile().deleteOnExit();
        }
        return dir;
    }

    /** The cache folder for these files, created private to this user; null if unusable. */
    private static Path cacheFolder(List<Entry> entries, String version) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(platform().getBytes(StandardCharsets.UTF_8));
            for (Entry e : entries) {
                md.update(("\n" + e.name() + " " + e.size() + " " + e.crc()).getBytes(StandardCharsets.UTF_8));
            }
            String hash = HexFormat.of().formatHex(md.digest(), 0, 8);
            String base = System.getProperty("panatron.native.cache.dir");
            Path root = base != null && !base.isBlank() ? Path.of(base).toAbsolutePath()
                    : Path.of(System.getProperty("java.io.tmpdir"), "panatron-native-" + safeUser());
            if (!privateFolder(root)) return null;
            Path dir = root.resolve(version.replaceAll("[^A-Za-z0-9._-]", "_") + "-" + hash);
            try {
                Files.createDirectory(dir);
            } catch (java.nio.file.FileAlreadyExistsException e) {
                if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) return null;
                Files.setLastModifiedTime(dir, FileTime.fromMillis(System.currentTimeMillis())); // in use: keep it
            }
            return dir;
        } catch (IOException | NoSuchAlgorithmException | InvalidPathException | SecurityException e) {
            return null;
        }
    }

    private static String safeUser() {
        return System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9._-]", "_");
    }

    /**
     * Creates {@code root} (owner-only on POSIX) and checks that it is a real folder owned by this
     * user and not writable by others: a shared temp folder must not let another user plant a
     * library for us to load. Windows' temp folder is per user already.
     */
    private static boolean privateFolder(Path root) throws IOException {
        PosixFileAttributeView posix = Files.getFileAttributeView(root.getParent() == null ? root : root.getParent(),
                PosixFileAttributeView.class);
        if (posix == null) {
            Files.createDirectories(root);
            return Files.isDirectory(root, LinkOption.NOFOLLOW_LINKS);
        }
        if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
            try {
                Files.createDirectories(root.getParent());
                Files.createDirectory(root, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            } catch (java.nio.file.FileAlreadyExistsException e) {
                // another JVM made it meanwhile: checked below
            }
        }
        if (!Files.isDirectory(root, LinkOption.NOFOLLOW_LINKS)) return false;
        String me = System.getProperty("user.name");
        String owner = Files.getOwner(root, LinkOption.NOFOLLOW_LINKS).getName();
        if (me != null && !me.equals(owner)) return false;
        Set<PosixFilePermission> perms = Files.getPosixFilePermissions(root, LinkOption.NOFOLLOW_LINKS);
        return !perms.contains(PosixFilePermission.GROUP_WRITE) && !perms.contains(PosixFilePermission.OTHERS_WRITE);
    }

    /**
     * Puts one file into {@code dir} unless a complete copy is there already: hard-linked from an
     * identical file (same name, size and CRC) of another cache folder when there is one (a rebuilt
     * libpanatron must not cost another copy of the unchanged ~100 MB oneDNN), else extracted;
     * either way under a unique temporary name, its CRC checked against the jar's, then moved into
     * place atomically. A file under the final name is therefore always complete, whichever JVM
     * wrote it.
     */
    private static Path extractInto(Path dir, Entry e, boolean cached) throws IOException {
        Path target = dir.resolve(e.name());
        if (e.size() >= 0 && Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS) && Files.size(target) == e.size()) {
            return target; // extracted before (by this or another JVM)
        }
        Path tmp = null;
        try {
            if (cached) tmp = linkFromSibling(dir, e);
            if (tmp == null) {
                tmp = Files.createTempFile(dir, e.name() + ".", ".part");
                CRC32 crc = new CRC32();
                try (InputStream in = new CheckedInputStream(e.url().openStream(), crc);
                     OutputStream out = Files.newOutputStream(tmp)) {
                    in.transferTo(out);
                }
                if (e.crc() >= 0 && crc.getValue() != e.crc()) {
                    throw new IOException("CRC mismatch extracting " + e.url());
                }
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException ex) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            } catch (FileSystemException ex) {
                // Windows: another JVM has the file loaded (locked); it is complete if the size fits
                if (!(Files.isRegularFile(target) && Files.size(target) == e.size())) throw ex;
            }
        } finally {
            if (tmp != null) Files.deleteIfExists(tmp);
        }
        return target;
    }

    /** A temporary hard link in {@code dir} to an identical file of a sibling cache folder, or null. */
    private static Path linkFromSibling(Path dir, Entry e) {
        if (e.size() < 0 || e.crc() < 0) return null;
        try (Stream<Path> siblings = Files.list(dir.getParent())) {
            for (Path sib : (Iterable<Path>) siblings::iterator) {
                Path cand = sib.resolve(e.name());
                if (sib.equals(dir) || !Files.isRegularFile(cand, LinkOption.NOFOLLOW_LINKS)
                        || Files.size(cand) != e.size() || crc32(cand) != e.crc()) {
                    continue;
                }
                Path tmp = dir.resolve(e.name() + "." + ProcessHandle.current().pid() + "." + System.nanoTime() + ".part");
                try {
                    Files.createLink(tmp, cand);
                    return tmp;
                } catch (IOException | UnsupportedOperationException ex) {
                    return null; // no hard links here (FAT, some network file systems): copy
                }
            }
        } catch (IOException | SecurityException ex) {
            // fall through: extract
        }
        return null;
    }

    private static long crc32(Path p) throws IOException {
        CRC32 crc = new CRC32();
        try (InputStream in = new CheckedInputStream(Files.newInputStream(p), crc)) {
            in.transferTo(OutputStream.nullOutputStream());
        }
        return crc.getValue();
    }

    /**
     * Keeps the cache from growing without bound: removes all but the {@value #CACHE_KEEP} most
     * recently created folders beside {@code current}. Best effort; a folder still in use stays
     * usable on Linux and macOS (loaded files stay mapped), and cannot be deleted on Windows.
     */
    private static void pruneCache(Path current) {
        try (Stream<Path> s = Files.list(current.getParent())) {
            List<Path> old = s.filter(p -> !p.equals(current) && Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS))
                    .sorted(Comparator.comparing(Native::modified).reversed())
                    .skip(CACHE_KEEP - 1)
                    .toList();
            for (Path dir : old) {
                try (Stream<Path> files = Files.list(dir)) {
                    for (Path f : (Iterable<Path>) files::iterator) Files.deleteIfExists(f);
                }
                Files.deleteIfExists(dir);
            }
        } catch (IOException | SecurityException | java.io.UncheckedIOException e) {
            // best effort
        }
    }

    private static final int CACHE_KEEP = 8;

    private static FileTime modified(Path p) {
        try {
            return Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            return FileTime.fromMillis(0);
        }
    }

    /**
     * Internal (for {@code dev.panatron.cuda}): an optional library file shipped in this jar's
     * native folder for this platform ({@code /dev/panatron/native/<platform>/<fileName>}),
     * extracted into the same kind of versioned, hashed cache folder as the main library when
     * running from a jar, used in place from a classes folder. Null when the jar does not ship it.
     *
     * @throws UnsatisfiedLinkError when the file is shipped but cannot be extracted
     */
    public static Path bundledFile(String fileName) {
        String folder = "/dev/panatron/native/" + platform() + "/";
        URL url = Native.class.getResource(folder + fileName);
        if (url == null) return null;
        try {
            if ("file".equals(url.getProtocol())) return Path.of(url.toURI());
            return extract(folder, List.of(fileName)).resolve(fileName);
        } catch (IOException | URISyntaxException e) {
            throw new UnsatisfiedLinkError("cannot extract " + url + ": " + e);
        }
    }

    /** True once {@link #load()} has succeeded in this process (does not load anything). */
    public static boolean isLoaded() { return loaded; }

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
