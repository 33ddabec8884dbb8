package dev.panatron;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panatron.ffm.panatron_h;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The generated FFM bindings (bindings/, made by bindings/generate.py from panatron.h) against
 * the library actually loaded and against the C compiler:
 * <ul>
 *   <li>every function in {@code panatron_h.FUNCTIONS} is exported by the library it belongs to:
 *       {@code pt_cuda_*} by libpanatron_cuda (the separate CUDA library, checked when the build
 *       folder has one: {@code -DPANATRON_CUDA=ON}), every other one by the loaded libpanatron;
 *       and its downcall handle links with the generated descriptor;</li>
 *   <li>the bound functions are exactly the {@code PT_API} declarations of panatron.h;</li>
 *   <li>struct sizes, field offsets and constants of the Java classes equal the numbers that
 *       native/tests/test_bindings_layout.c (generated together with the bindings) asserts
 *       against the C compiler under ctest — so Java, the generator and the compiler agree.</li>
 * </ul>
 * Regenerate after changing panatron.h: {@code ./mvnw -pl bindings -Pregenerate generate-sources}.
 */
class BindingsTest {
    private static final Path ROOT = Path.of(System.getProperty("panatron.test.root", "..")).toAbsolutePath().normalize();
    /** Functions of the separate CUDA library (panatron.h, "CUDA" section). */
    private static final String CUDA_PREFIX = "pt_cuda_";

    private static boolean isCuda(String function) {
        return function.startsWith(CUDA_PREFIX);
    }

    /** libpanatron_cuda in the CMake build folder, or null when it was not built. */
    private static Path cudaLibrary() {
        Path dir = Path.of(System.getProperty("panatron.test.native.dir", "../build/native")).toAbsolutePath().normalize();
        for (String name : List.of("libpanatron_cuda.so", "libpanatron_cuda.dylib", "panatron_cuda.dll",
                "Release/panatron_cuda.dll")) {
            if (Files.isRegularFile(dir.resolve(name))) return dir.resolve(name);
        }
        return null;
    }

    @BeforeAll
    static void load() {
        Native.load();
    }

    @Test
    void everyBoundCpuFunctionIsExportedByTheLoadedLibraryFile() {
        String from = Native.loadedFrom();
        List<String> missing = new ArrayList<>();
        List<String> cudaInCpu = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            // look up in that one file, not through the class loader (which sees all it loaded)
            SymbolLookup lookup = "system".equals(from) ? SymbolLookup.loaderLookup()
                    : SymbolLookup.libraryLookup(Path.of(from), arena);
            for (String name : panatron_h.FUNCTIONS) {
                boolean found = lookup.find(name).isPresent();
                if (!isCuda(name) && !found) missing.add(name);
                if (isCuda(name) && found && !"system".equals(from)) cudaInCpu.add(name);
            }
        }
        assertTrue(missing.isEmpty(), () -> "declared in panatron.h and bound in panatron_h, but not exported by "
                + from + ": " + missing + " (not implemented yet, or missing PT_API?)");
        assertTrue(cudaInCpu.isEmpty(), () -> "the CPU library " + from + " exports CUDA functions " + cudaInCpu
                + " (they belong to libpanatron_cuda)");
        assertFalse(panatron_h.FUNCTIONS.stream().filter(n -> !isCuda(n)).toList().isEmpty(), "no CPU functions bound");
    }

    @Test
    void everyBoundCudaFunctionIsExportedByLibpanatronCuda() {
        List<String> cuda = panatron_h.FUNCTIONS.stream().filter(BindingsTest::isCuda).toList();
        assumeFalse(cuda.isEmpty(), "no CUDA functions bound");
        Path lib = cudaLibrary();
        assumeTrue(lib != null, "libpanatron_cuda was not built (cmake -DPANATRON_CUDA=ON): "
                + cuda.size() + " pt_cuda_* functions not checked against a library");
        assumeTrue(cudaLoaded(), "cannot load " + lib + " here");
        List<String> missing = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup lookup = SymbolLookup.libraryLookup(lib, arena);
            for (String name : cuda) if (lookup.find(name).isEmpty()) missing.add(name);
        }
        assertTrue(missing.isEmpty(), () -> lib + " does not export " + missing);
    }

    @Test
    void everyDowncallHandleLinksWithItsGeneratedDescriptor() throws ReflectiveOperationException {
        Linker linker = Linker.nativeLinker();
        List<String> problems = new ArrayList<>();
        for (String name : panatron_h.FUNCTIONS) {
            // pt_cuda_* resolve only once libpanatron_cuda is loaded (never on the CPU path)
            if (isCuda(name) && !cudaLoaded()) continue;
            try {
                FunctionDescriptor desc = (FunctionDescriptor) call(name + "$descriptor");
                MemorySegment addr = (MemorySegment) call(name + "$address");
                if (addr.equals(MemorySegment.NULL)) {
                    problems.add(name + ": NULL address");
                    continue;
                }
                MethodHandle fresh = linker.downcallHandle(addr, desc);
                MethodHandle generated = (MethodHandle) call(name + "$handle");
                MethodType want = desc.toMethodType();
                if (!fresh.type().equals(want)) problems.add(name + ": handle type " + fresh.type() + " != " + want);
                if (!generated.type().equals(want)) problems.add(name + ": generated handle type " + generated.type() + " != " + want);
                // the plain Java method takes and returns what the descriptor says
                Method plain = panatron_h.class.getMethod(name, want.parameterArray());
                if (!plain.getReturnType().equals(want.returnType())) {
                    problems.add(name + ": method returns " + plain.getReturnType() + ", descriptor " + want.returnType());
                }
            } catch (InvocationTargetException e) {
                // the holder class failed to initialize: symbol not found or descriptor rejected
                Throwable cause = e.getCause() instanceof ExceptionInInitializerError eie && eie.getCause() != null
                        ? eie.getCause() : e.getCause();
                problems.add(name + ": " + cause);
            } catch (NoClassDefFoundError | IllegalArgumentException e) {
                problems.add(name + ": " + e);
            }
        }
        assertTrue(problems.isEmpty(), () -> "downcalls that do not link against " + Native.loadedFrom() + ":\n  "
                + String.join("\n  ", problems));
    }

    @Test
    void noArgumentDowncallsAnswer() {
        assertEquals(Native.ABI_MAJOR, panatron_h.pt_version() >>> 16, "pt_version major");
        MemorySegment err = panatron_h.pt_last_error();
        assertFalse(err.equals(MemorySegment.NULL), "pt_last_error returned NULL");
        assertEquals(4, panatron_h.pt_dtype_size(panatron_h.PT_F32()), "pt_dtype_size(PT_F32)");
        assertEquals(2, panatron_h.pt_dtype_size(panatron_h.PT_BF16()), "pt_dtype_size(PT_BF16)");
    }

    @Test
    void boundFunctionsAreExactlyThePublicDeclarationsOfTheHeader() throws IOException {
        String header = Files.readString(ROOT.resolve("native/include/panatron/panatron.h"));
        header = header.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\n]*", " ");
        Matcher m = Pattern.compile("PT_API\\s+[^;{(]*?\\b(pt_\\w+)\\s*\\(").matcher(header);
        TreeSet<String> declared = new TreeSet<>();
        while (m.find()) declared.add(m.group(1));
        assertFalse(declared.isEmpty(), "found no PT_API declarations in panatron.h");
        assertEquals(declared, new TreeSet<>(panatron_h.FUNCTIONS),
                "panatron.h and the bindings disagree: run ./mvnw -pl bindings -Pregenerate generate-sources");
    }

    @Test
    void structLayoutsAndConstantsEqualWhatTheCCompilerTestAsserts() throws Exception {
        String c = Files.readString(ROOT.resolve("native/tests/test_bindings_layout.c"));
        Map<String, Long> sizes = new LinkedHashMap<>();
        Map<String, Long> offsets = new LinkedHashMap<>();
        Map<String, Long> constants = new LinkedHashMap<>();
        Matcher m = Pattern.compile("EXPECT\\(sizeof\\((\\w+)\\) == (\\d+),").matcher(c);
        while (m.find()) sizes.put(m.group(1), Long.parseLong(m.group(2)));
        m = Pattern.compile("EXPECT\\(offsetof\\((\\w+), (\\w+)\\) == (\\d+),").matcher(c);
        while (m.find()) offsets.put(m.group(1) + "." + m.group(2), Long.parseLong(m.group(3)));
        m = Pattern.compile("EXPECT\\(\\(long long\\)\\((\\w+)\\) == (-?\\d+)LL,").matcher(c);
        while (m.find()) constants.put(m.group(1), Long.parseLong(m.group(2)));
        assertFalse(sizes.isEmpty() || offsets.isEmpty() || constants.isEmpty(),
                "test_bindings_layout.c asserts nothing recognizable (sizes " + sizes.size() + ", offsets "
                        + offsets.size() + ", constants " + constants.size() + ")");

        // every struct the bindings generate is checked by the C test
        String args = Files.readString(ROOT.resolve("bindings/jextract.args"));
        TreeSet<String> bound = new TreeSet<>();
        m = Pattern.compile("--include-struct\\s+(\\w+)").matcher(args);
        while (m.find()) bound.add(m.group(1));
        assertEquals(bound, new TreeSet<>(sizes.keySet()), "structs bound vs structs the C test checks");

        List<String> problems = new ArrayList<>();
        for (var e : sizes.entrySet()) {
            Class<?> cls = Class.forName("dev.panatron.ffm." + e.getKey());
            long sizeof = (long) cls.getMethod("sizeof").invoke(null);
            GroupLayout layout = (GroupLayout) cls.getMethod("layout").invoke(null);
            if (sizeof != e.getValue()) problems.add(e.getKey() + ".sizeof() = " + sizeof + ", C: " + e.getValue());
            if (layout.byteSize() != e.getValue()) problems.add(e.getKey() + " layout size " + layout.byteSize() + ", C: " + e.getValue());
        }
        for (var e : offsets.entrySet()) {
            String[] sf = e.getKey().split("\\.");
            Class<?> cls = Class.forName("dev.panatron.ffm." + sf[0]);
            long off = (long) cls.getMethod(sf[1] + "$offset").invoke(null);
            GroupLayout layout = (GroupLayout) cls.getMethod("layout").invoke(null);
            long layoutOff = layout.byteOffset(MemoryLayout.PathElement.groupElement(sf[1]));
            if (off != e.getValue()) problems.add(e.getKey() + "$offset() = " + off + ", C: " + e.getValue());
            if (layoutOff != e.getValue()) problems.add(e.getKey() + " layout offset " + layoutOff + ", C: " + e.getValue());
        }
        for (var e : constants.entrySet()) {
            Method getter = panatron_h.class.getMethod(e.getKey());
            long v = ((Number) getter.invoke(null)).longValue();
            if (v != e.getValue()) problems.add(e.getKey() + " = " + v + ", C: " + e.getValue());
        }
        if (!problems.isEmpty()) fail("bindings disagree with test_bindings_layout.c:\n  " + String.join("\n  ", problems));
    }

    private static Boolean cudaLoaded;

    /** Loads libpanatron_cuda of the build folder into this JVM, when it was built and loads. */
    private static synchronized boolean cudaLoaded() {
        if (cudaLoaded == null) {
            Path lib = cudaLibrary();
            try {
                if (lib != null) System.load(lib.toString());
                cudaLoaded = lib != null;
            } catch (UnsatisfiedLinkError e) {
                cudaLoaded = false;
            }
        }
        return cudaLoaded;
    }

    private static Object call(String method) throws ReflectiveOperationException {
        Method m = panatron_h.class.getMethod(method);
        if (!Modifier.isStatic(m.getModifiers())) throw new NoSuchMethodException(method + " is not static");
        return m.invoke(null);
    }
}
