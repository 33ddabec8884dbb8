package dev.panatron;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

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
 *   <li>every function in {@code panatron_h.FUNCTIONS} is exported by the loaded library file, and
 *       its downcall handle links with the generated descriptor;</li>
 *   <li>the bound functions are exactly the {@code PT_API} declarations of panatron.h;</li>
 *   <li>struct sizes, field offsets and constants of the Java classes equal the numbers that
 *       native/tests/test_bindings_layout.c (generated together with the bindings) asserts
 *       against the C compiler under ctest — so Java, the generator and the compiler agree.</li>
 * </ul>
 * Regenerate after changing panatron.h: {@code ./mvnw -pl bindings -Pregenerate generate-sources}.
 */
class BindingsTest {
    private static final Path ROOT = Path.of(System.getProperty("panatron.test.root", "..")).toAbsolutePath().normalize();

    @BeforeAll
    static void load() {
        Native.load();
    }

    @Test
    void everyBoundFunctionIsExportedByTheLoadedLibraryFile() {
        String from = Native.loadedFrom();
        List<String> missing = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            // look up in that one file, not through the class loader (which sees all it loaded)
            SymbolLookup lookup = "system".equals(from) ? SymbolLookup.loaderLookup()
                    : SymbolLookup.libraryLookup(Path.of(from), arena);
            for (String name : panatron_h.FUNCTIONS) {
                if (lookup.find(name).isEmpty()) missing.add(name);
            }
        }
        assertTrue(missing.isEmpty(), () -> "declared in panatron.h and bound in panatron_h, but not exported by "
                + from + ": " + missing + " (not implemented yet, or missing PT_API?)");
        assertFalse(panatron_h.FUNCTIONS.isEmpty(), "panatron_h.FUNCTIONS is empty");
    }

    @Test
    void everyDowncallHandleLinksWithItsGeneratedDescriptor() throws ReflectiveOperationException {
        Linker linker = Linker.nativeLinker();
        List<String> problems = new ArrayList<>();
        for (String name : panatron_h.FUNCTIONS) {
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

    private static Object call(String method) throws ReflectiveOperationException {
        Method m = panatron_h.class.getMethod(method);
        if (!Modifier.isStatic(m.getModifiers())) throw new NoSuchMethodException(method + " is not static");
        return m.invoke(null);
    }
}
