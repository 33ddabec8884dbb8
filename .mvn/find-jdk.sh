# Sourced by ./mvnw and ./panatron: make JAVA_HOME point at a JDK >= 22.
# Order: $PANATRON_JAVA_HOME, $JAVA_HOME, `java` on PATH, then the usual install folders
# (/usr/lib/jvm, /opt, macOS JavaVirtualMachines, SDKMAN). The newest suitable JDK wins.
# Prints a clear message and returns 1 when none is found. Also exports PT_JAVA_MAJOR.
pt_java_major() {
  # $1: a java executable; prints its feature version (17, 22, 25, ...) or nothing. Reads the
  # JDK's `release` file (every JDK >= 9 has one: no JVM start, so discovery stays instant);
  # asks the JVM itself only when that file is missing.
  local home v=""
  home=$(dirname "$(dirname "$1")")
  if [ -r "$home/release" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\([0-9][0-9]*\).*/\1/p' "$home/release" | head -1)
  fi
  if [ -z "$v" ]; then
    v=$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9][0-9]*\).*/\1/p' | head -1)
  fi
  echo "$v"
}
pt_find_jdk() {
  case $- in *f*) set +f; pt_find_jdk_impl; local rc=$?; set -f; return $rc ;; esac
  pt_find_jdk_impl
}
pt_find_jdk_impl() {
  local want=22 c v best="" bestv=0
  for c in "${PANATRON_JAVA_HOME:-}" "${JAVA_HOME:-}"; do
    if [ -n "$c" ] && [ -x "$c/bin/javac" ]; then
      v=$(pt_java_major "$c/bin/java")
      if [ -n "$v" ] && [ "$v" -ge "$want" ]; then export JAVA_HOME="$c" PT_JAVA_MAJOR="$v"; return 0; fi
    fi
  done
  if command -v javac >/dev/null 2>&1; then
    c=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
    v=$(pt_java_major "$c/bin/java")
    if [ -n "$v" ] && [ "$v" -ge "$want" ]; then export JAVA_HOME="$c" PT_JAVA_MAJOR="$v"; return 0; fi
  fi
  for c in /usr/lib/jvm/* /opt/java/* /opt/*jdk* /Library/Java/JavaVirtualMachines/*/Contents/Home \
           "${HOME:-/}"/.sdkman/candidates/java/* "${HOME:-/}"/.jdks/*; do
    [ -x "$c/bin/javac" ] || continue
    v=$(pt_java_major "$c/bin/java")
    if [ -n "$v" ] && [ "$v" -ge "$want" ] && [ "$v" -gt "$bestv" ]; then best="$c"; bestv="$v"; fi
  done
  if [ -n "$best" ]; then export JAVA_HOME="$best" PT_JAVA_MAJOR="$bestv"; return 0; fi
  echo "panatron: a JDK >= $want is required (the FFM API is final from Java 22)." >&2
  echo "  Found none in \$JAVA_HOME, on PATH, or under /usr/lib/jvm, /opt, ~/.sdkman." >&2
  echo "  Install one (e.g. Temurin 25) or set PANATRON_JAVA_HOME to its folder." >&2
  return 1
}
