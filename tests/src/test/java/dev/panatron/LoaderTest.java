package dev.panatron;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.JarURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The native loader ({@link Native}): from the jar (extracted once into a versioned, hashed cache
 * that concurrent JVMs share safely), from a {@code -Dpanatron.library.path} /
 * {@code PANATRON_LIBRARY_PATH} override, and the error a bad override gives. Each case runs in a
 * fresh JVM (the running JDK's {@code java}, i.e. the JDK >= 22 that ./mvnw found) started with
 * {@link ProcessBuilder}, since a JVM loads the library once.
 */
class LoaderTest {
    private static final String PLATFORM = Native.platform();
    private static final String LIB = Native.libraryFiles(PLATFORM).getLast();
    private static final String RESOURCE = "/dev/panatron/native/" + PLATFORM + "/" + LIB;
    /** The folder of the built library: build/native (build/native-plain without oneDNN), or its
     *  Release/ subfolder with a multi-config generator (Visual Studio). */
    private static final Path NATIVE_DIR = nativeDir();

    private static Path nativeDir() {
        Path dir = Path.of(System.getProperty("panatron.test.native.dir", "../build/native")).toAbsolutePath().normalize();
        Path release = dir.resolve("Release");
        return !Files.isRegularFile(dir.resolve(LIB)) && Files.isRegularFile(release.resolve(LIB)) ? release : dir;
    }

    /** Runs in the forked JVMs: loads the library, prints where from, makes two downcalls. */
    public static final class Probe {
        public static void main(String[] args) {
            try {
                Native.load();
                System.out.println("library=" + Native.loadedFrom());
                System.out.println("source=" + Native.source());
                System.out.println("version=" + Panatron.version());
                System.out.println("onednn=" + Panatron.oneDnnVersion());
            } catch (Throwable t) {
                System.err.println(t);
                System.exit(3);
            }
        }
    }

    record Run(int exit, String out, String err) {
        String get(String key) {
            return out.lines().filter(l -> l.startsWith(key + "=")).map(l -> l.substring(key.length() + 1))
                    .findFirst().orElse(null);
        }

        @Override
        public String toString() {
            return "exit " + exit + "\n--- stdout\n" + out + "--- stderr\n" + err;
        }
    }

    @Test
    void loadsFromTheJarOrTheClassesFolderOfThisBuild() throws IOException {
        assumeTrue(System.getProperty("panatron.library.path") == null && System.getenv("PANATRON_LIBRARY_PATH") == null,
                "an override is set for this JVM");
        URL res = Native.class.getResource(RESOURCE);
        assertNotNull(res, "the panatron artifact carries no " + RESOURCE);
        Path lib = Path.of(Native.loadedFrom());
        assertTrue(Files.isRegularFile(lib), "loadedFrom() is not a file: " + lib);
        assertEquals(LIB, lib.getFileName().toString());
        if ("jar".equals(res.getProtocol())) {
            assertEquals(Native.Source.JAR, Native.source());
            assertEquals(((JarURLConnection) res.openConnection()).getJarEntry().getSize(), Files.size(lib),
                    "extracted size of " + lib);
        } else {
            assertEquals(Native.Source.CLASSES_FOLDER, Native.source());
        }
    }

    @Test
    void loadIsIdempotentAcrossThreads() throws Exception {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        CountDownLatch go = new CountDownLatch(1);
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            all.add(CompletableFuture.runAsync(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    throw new RuntimeException(e);
                }
                Native.load();
                seen.add(Native.loadedFrom());
            }));
        }
        go.countDown();
        CompletableFuture.allOf(all.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
        assertEquals(1, seen.size(), "loadedFrom differs between threads: " + seen);
    }

    @Test
    void forkedJvmExtractsFromTheJarOnceAndReusesTheCache(@TempDir Path cache) throws Exception {
        Path jar = panatronJar();
        Run first = fork(jar, cache, List.of(), Map.of());
        assertEquals(0, first.exit(), first::toString);
        assertEquals("JAR", first.get("source"), first::toString);
        Path lib = Path.of(first.get("library"));
        assertTrue(lib.startsWith(cache.toRealPath()) || lib.startsWith(cache), "not extracted into the cache: " + lib);
        assertEquals(LIB, lib.getFileName().toString());
        Path dir = lib.getParent();
        assertTrue(dir.getFileName().toString().matches(".+-[0-9a-f]{16}"), "cache folder is not <version>-<hash>: " + dir);
        assertEquals(jarEntrySizes(jar), folderSizes(dir), "extracted files vs the jar's");
        FileTime mtime = Files.getLastModifiedTime(lib);

        Run second = fork(jar, cache, List.of(), Map.of());
        assertEquals(0, second.exit(), second::toString);
        assertEquals(lib.toString(), second.get("library"), "second JVM used another folder");
        assertEquals(mtime, Files.getLastModifiedTime(lib), "second JVM extracted " + lib + " again");
        assertEquals(first.get("version"), second.get("version"));
    }

    @Test
    void concurrentJvmsShareOneExtraction(@TempDir Path cache) throws Exception {
        Path jar = panatronJar();
        List<CompletableFuture<Run>> runs = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            runs.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return fork(jar, cache, List.of(), Map.of());
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }));
        }
        Set<String> libs = new HashSet<>();
        for (CompletableFuture<Run> f : runs) {
            Run r = f.get(300, TimeUnit.SECONDS);
            assertEquals(0, r.exit(), r::toString);
            libs.add(r.get("library"));
        }
        assertEquals(1, libs.size(), "the JVMs used different folders: " + libs);
        Path dir = Path.of(libs.iterator().next()).getParent();
        assertEquals(jarEntrySizes(jar), folderSizes(dir), "files in " + dir + " (no partial or temporary file may stay)");
    }

    @Test
    void unchangedFilesAreHardLinkedFromOlderCacheFoldersAndOldFoldersPruned(@TempDir Path cache) throws Exception {
        Path jar = panatronJar();
        Map<String, Long> sizes = jarEntrySizes(jar);
        String biggest = sizes.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
        // an older cache folder with an identical copy of the biggest file (oneDNN, when built in)
        Path old = Files.createDirectories(cache.resolve("0.0.0-older-0000000000000000"));
        try (var zf = new java.util.zip.ZipFile(jar.toFile());
             InputStream in = zf.getInputStream(zf.getEntry("dev/panatron/native/" + PLATFORM + "/" + biggest))) {
            Files.copy(in, old.resolve(biggest));
        }
        // and more stale folders than the cache keeps
        for (int i = 0; i < 12; i++) {
            Path d = Files.createDirectories(cache.resolve("0.0.0-stale-" + i));
            Files.writeString(d.resolve("junk"), "x");
            Files.setLastModifiedTime(d, FileTime.fromMillis(1_000_000L * (i + 1)));
        }
        Files.setLastModifiedTime(old, FileTime.fromMillis(System.currentTimeMillis()));
        Run r = fork(jar, cache, List.of(), Map.of());
        assertEquals(0, r.exit(), r::toString);
        Path dir = Path.of(r.get("library")).getParent();
        Object linked = Files.readAttributes(dir.resolve(biggest), java.nio.file.attribute.BasicFileAttributes.class).fileKey();
        Object original = Files.readAttributes(old.resolve(biggest), java.nio.file.attribute.BasicFileAttributes.class).fileKey();
        if (linked != null) assertEquals(original, linked, biggest + " was copied, not hard-linked from " + old);
        try (Stream<Path> s = Files.list(cache)) {
            List<String> left = s.map(p -> p.getFileName().toString()).sorted().toList();
            assertEquals(8, left.size(), "cache folders left: " + left);
            assertTrue(left.contains(dir.getFileName().toString()) && left.contains(old.getFileName().toString()),
                    "pruned a recent folder: " + left);
        }
    }

    @Test
    void cacheCanBeTurnedOff(@TempDir Path cache) throws Exception {
        Run r = fork(panatronJar(), cache, List.of("-Dpanatron.native.cache=false"), Map.of());
        assertEquals(0, r.exit(), r::toString);
        assertEquals("JAR", r.get("source"));
        assertFalse(Path.of(r.get("library")).startsWith(cache), "extracted into the cache although it is off");
    }

    @Test
    void overrideWithTheBuildFolder(@TempDir Path cache) throws Exception {
        assumeBuildFolder();
        Run r = fork(null, cache, List.of("-Dpanatron.library.path=" + NATIVE_DIR), Map.of());
        assertEquals(0, r.exit(), r::toString);
        assertEquals("OVERRIDE", r.get("source"));
        assertEquals(NATIVE_DIR.resolve(LIB).toString(), r.get("library"));
        assertEmpty(cache);
    }

    @Test
    void overrideWithTheLibraryFile(@TempDir Path cache) throws Exception {
        assumeBuildFolder();
        Run r = fork(null, cache, List.of("-Dpanatron.library.path=" + NATIVE_DIR.resolve(LIB)), Map.of());
        assertEquals(0, r.exit(), r::toString);
        assertEquals(NATIVE_DIR.resolve(LIB).toString(), r.get("library"));
    }

    @Test
    void overrideThroughTheEnvironment(@TempDir Path cache) throws Exception {
        assumeBuildFolder();
        Run r = fork(null, cache, List.of(), Map.of("PANATRON_LIBRARY_PATH", NATIVE_DIR.toString()));
        assertEquals(0, r.exit(), r::toString);
        assertEquals("OVERRIDE", r.get("source"));
        assertEquals(NATIVE_DIR.resolve(LIB).toString(), r.get("library"));
    }

    @Test
    void badOverrideGivesAClearErrorNamingIt(@TempDir Path cache) throws Exception {
        Path bad = cache.resolve("no-such-folder").resolve("libnothing");
        Run r = fork(null, cache, List.of("-Dpanatron.library.path=" + bad), Map.of());
        assertNotEquals(0, r.exit(), r::toString);
        assertTrue(r.err().contains("UnsatisfiedLinkError"), r::toString);
        assertTrue(r.err().contains("-Dpanatron.library.path=" + bad), "error does not name the override: " + r);
        assertTrue(r.err().contains("does not exist"), r::toString);
    }

    @Test
    void overrideFolderWithoutTheLibraryIsAnError(@TempDir Path empty) throws Exception {
        Run r = fork(null, empty.resolve("cache"), List.of(), Map.of("PANATRON_LIBRARY_PATH", empty.toString()));
        assertNotEquals(0, r.exit(), r::toString);
        assertTrue(r.err().contains("UnsatisfiedLinkError") && r.err().contains("PANATRON_LIBRARY_PATH=" + empty)
                && r.err().contains(LIB), "error does not name the folder and " + LIB + ": " + r);
    }

    // ---- helpers ----

    private static void assumeBuildFolder() {
        assumeTrue(Files.isRegularFile(NATIVE_DIR.resolve(LIB)), "no native build folder at " + NATIVE_DIR);
    }

    /** The panatron jar of this build (the tests run against it in `verify`). */
    private static Path panatronJar() throws Exception {
        Path where = Path.of(Native.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        if (Files.isRegularFile(where) && where.toString().endsWith(".jar")) return where;
        String p = System.getProperty("panatron.test.jar");
        assumeTrue(p != null && Files.isRegularFile(Path.of(p)),
                "no panatron jar (run `./mvnw verify`, not `test`): " + where);
        return Path.of(p);
    }

    /** The test class path, with the panatron classes replaced by {@code jar} when given. */
    private static String classPath(Path jar) throws Exception {
        String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        if (jar == null) return cp;
        Path classes = Path.of(Native.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        List<String> out = new ArrayList<>();
        for (String e : cp.split(File.pathSeparator)) {
            if (!e.isEmpty() && Path.of(e).toAbsolutePath().normalize().equals(classes.toAbsolutePath().normalize())) {
                out.add(jar.toString());
            } else {
                out.add(e);
            }
        }
        if (!out.contains(jar.toString())) out.addFirst(jar.toString());
        return String.join(File.pathSeparator, out);
    }

    private static Run fork(Path jar, Path cache, List<String> jvmArgs, Map<String, String> env) throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin",
                PLATFORM.startsWith("windows") ? "java.exe" : "java");
        List<String> cmd = new ArrayList<>(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-Dpanatron.native.cache.dir=" + cache));
        cmd.addAll(jvmArgs);
        cmd.addAll(List.of("-cp", classPath(jar), Probe.class.getName()));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        Map<String, String> e = pb.environment();
        e.remove("PANATRON_LIBRARY_PATH");
        e.remove("JAVA_TOOL_OPTIONS");
        e.putAll(env);
        Path out = Files.createTempFile("panatron-fork", ".out");
        Path err = Files.createTempFile("panatron-fork", ".err");
        try {
            pb.redirectOutput(out.toFile()).redirectError(err.toFile());
            Process p = pb.start();
            if (!p.waitFor(180, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("forked JVM did not finish in 180 s: " + cmd);
            }
            return new Run(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8), Files.readString(err, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    /** name -> size of the jar's files under the platform folder. */
    private static Map<String, Long> jarEntrySizes(Path jar) throws IOException {
        Map<String, Long> sizes = new HashMap<>();
        String prefix = "dev/panatron/native/" + PLATFORM + "/";
        try (var zf = new java.util.zip.ZipFile(jar.toFile())) {
            zf.stream().filter(z -> !z.isDirectory() && z.getName().startsWith(prefix))
                    .forEach(z -> sizes.put(z.getName().substring(prefix.length()), z.getSize()));
        }
        assertFalse(sizes.isEmpty(), "the jar " + jar + " has nothing under " + prefix);
        return sizes;
    }

    private static Map<String, Long> folderSizes(Path dir) throws IOException {
        Map<String, Long> sizes = new HashMap<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : (Iterable<Path>) s::iterator) sizes.put(p.getFileName().toString(), Files.size(p));
        }
        return sizes;
    }

    private static void assertEmpty(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(), s.toList(), "expected nothing in " + dir);
        }
    }

}
