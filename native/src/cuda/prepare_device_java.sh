#!/usr/bin/env bash
# Here (no GPU): prepares .devcarry/ for run_device_java.sh on the device machine, which has no
# Java: a jlink runtime of the Temurin 25 JDK, the compiled classes (main without the bundled
# native libraries: the device builds its own), test classes, dependency jars, and RunJUnit.
# java.net.http: the Embedder's model registry links it (embed / bench embed / CudaEmbedderTest).
# Run after `./mvnw -B -q install -DskipTests` (or verify). Then call the device with
#   carry: [".devcarry"], command: bash native/src/cuda/run_device_java.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
. .mvn/find-jdk.sh 2>/dev/null || true
JDK=${JAVA_HOME:-$(ls -d /usr/lib/jvm/temurin-25* | head -1)}
M2=${M2:-$HOME/.m2/repository}
C=.devcarry
EX=$(git rev-parse --git-path info/exclude)
grep -qx '/.devcarry/' "$EX" 2>/dev/null || { mkdir -p "$(dirname "$EX")"; echo '/.devcarry/' >> "$EX"; }
rm -rf "$C" && mkdir -p "$C/lib" "$C/classes" "$C/runner"
"$JDK/bin/jlink" --add-modules java.base,jdk.unsupported,java.logging,jdk.management,java.net.http \
  --compress=zip-9 --no-header-files --no-man-pages --strip-debug --output "$C/jre"
cp -r java/target/classes/. "$C/classes/" && rm -rf "$C/classes/dev/panatron/native"
cp -r bindings/target/classes/. "$C/classes/"
cp -r tests/target/test-classes "$C/test-classes" && rm -rf "$C/test-classes/tiny-models"
jar() { local f; f=$(ls "$M2/$1" 2>/dev/null | head -1); [ -n "$f" ] || { echo "missing $1" >&2; exit 1; }; cp "$f" "$C/lib/"; }
jar "com/fasterxml/jackson/core/jackson-databind/2.18.2/jackson-databind-2.18.2.jar"
jar "com/fasterxml/jackson/core/jackson-core/2.18.2/jackson-core-2.18.2.jar"
jar "com/fasterxml/jackson/core/jackson-annotations/2.18.2/jackson-annotations-2.18.2.jar"
jar "info/picocli/picocli/4.7.6/picocli-4.7.6.jar"
jar "com/google/protobuf/protobuf-java/4.32.1/protobuf-java-4.32.1.jar"
for a in platform/junit-platform-launcher/1.11.4 platform/junit-platform-engine/1.11.4 platform/junit-platform-commons/1.11.4 \
         jupiter/junit-jupiter-api/5.11.4 jupiter/junit-jupiter-engine/5.11.4 jupiter/junit-jupiter-params/5.11.4; do
  jar "org/junit/$a/$(basename "$(dirname "$a")")-$(basename "$a").jar"
done
jar "org/opentest4j/opentest4j/1.3.0/opentest4j-1.3.0.jar"
jar "org/apiguardian/apiguardian-api/1.1.2/apiguardian-api-1.1.2.jar"
"$JDK/bin/javac" -d "$C/runner" -cp "$C/lib/*" native/src/cuda/java/RunJUnit.java
du -sh "$C" "$C"/*
