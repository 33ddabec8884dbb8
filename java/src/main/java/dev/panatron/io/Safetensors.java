package dev.panatron.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.DType;
import dev.panatron.graph.TensorData;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped safetensors file. Layout: an 8-byte little-endian header length N, N bytes
 * of UTF-8 JSON ({@code {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * "__metadata__": {..}}}), then the data; offsets are relative to the data start.
 *
 * <p>{@link #open} validates everything before any tensor is handed out: the header length
 * (at most 100 MB and inside the file), the JSON (an object, no duplicate keys), each entry's
 * fields (exactly dtype, shape, data_offsets), every dtype, shape and byte count, and that the
 * entries tile the data region exactly (sorted by offset: no gap, no overlap, no trailing
 * bytes) — the rules of the reference implementation.
 *
 * <p>{@link #tensor} is zero-copy (a slice of the mapping) when the data is aligned to its
 * element size, a copy otherwise. Tensors live as long as this object: {@link #close()} unmaps.
 */
public final class Safetensors implements AutoCloseable {
    /** Largest header the reference implementation accepts. */
    public static final long MAX_HEADER = 100L << 20;

    /** One entry of the header. {@code begin}/{@code end} are offsets into the data region. */
    public record Entry(String name, String dtype, long[] shape, long begin, long end) {
        public long numel() {
            long n = 1;
            for (long d : shape) n = Math.multiplyExact(n, d);
            return n;
        }
    }

    private static final Map<String, Integer> DTYPE_BITS = Map.ofEntries(
            Map.entry("BOOL", 8), Map.entry("U8", 8), Map.entry("I8", 8), Map.entry("F8_E5M2", 8), Map.entry("F8_E4M3", 8),
            Map.entry("F8_E8M0", 8), Map.entry("I16", 16), Map.entry("U16", 16), Map.entry("F16", 16), Map.entry("BF16", 16),
            Map.entry("I32", 32), Map.entry("U32", 32), Map.entry("F32", 32), Map.entry("F64", 64), Map.entry("I64", 64),
            Map.entry("U64", 64));

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;   // the data region
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;

    private Safetensors(Path path, Arena arena, MemorySegment data, Map<String, Entry> entries, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.entries = entries;
        this.metadata = metadata;
    }

    /**
     * Maps and validates {@code file}.
     *
     * @throws IOException           when the file cannot be read
     * @throws ModelFormatException  when the header or the offsets are invalid (the message says which)
     */
    public static Safetensors open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new ModelFormatException(file, "not a safetensors file: " + size + " bytes, shorter than the 8-byte header length");
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long n = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (n <= 0 || n > MAX_HEADER) throw new ModelFormatException(file, "header length " + n + " is not in 1.." + MAX_HEADER + " (corrupt or not safetensors)");
            if (n > size - 8) throw new ModelFormatException(file, "header length " + n + " runs past the end of the file (" + size + " bytes): truncated?");
            byte[] hb = all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
            String json;
            try {
                json = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(hb)).toString();
            } catch (CharacterCodingException e) {
                throw new ModelFormatException(file, "header is not valid UTF-8");
            }
            if (!json.startsWith("{")) throw new ModelFormatException(file, "header does not start with '{' (corrupt or not safetensors)");
            MemorySegment dataRegion = all.asSlice(8 + n);
            Map<String, String> meta = new LinkedHashMap<>();
            Map<String, Entry> entries = parseHeader(file, json, dataRegion.byteSize(), meta);
            return new Safetensors(file, arena, dataRegion, entries, Collections.unmodifiableMap(meta));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, Entry> parseHeader(Path file, String json, long dataSize, Map<String, String> meta) {
        JsonNode root;
        try {
            ObjectMapper om = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
            root = om.readTree(json);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(file, "header is not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) throw new ModelFormatException(file, "header is not a JSON object");
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            String name = f.getKey();
            JsonNode v = f.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) throw new ModelFormatException(file, "__metadata__ must be an object of strings");
                for (Iterator<Map.Entry<String, JsonNode>> mi = v.fields(); mi.hasNext(); ) {
                    Map.Entry<String, JsonNode> m = mi.next();
                    if (!m.getValue().isTextual()) throw new ModelFormatException(file, "__metadata__ value of '" + m.getKey() + "' is not a string");
                    meta.put(m.getKey(), m.getValue().asText());
                }
                continue;
            }
            entries.put(name, parseEntry(file, name, v, dataSize));
        }
        // the entries must tile the data region: sorted by offset, no gaps, no overlaps
        List<Entry> sorted = new ArrayList<>(entries.values());
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long pos = 0;
        for (Entry e : sorted) {
            if (e.begin() != pos) {
                throw new ModelFormatException(file, "tensor '" + e.name() + "' starts at " + e.begin() + " but the previous data ends at " + pos
                        + (e.begin() < pos ? " (overlapping tensors)" : " (a gap in the data)"));
            }
            pos = e.end();
        }
        if (pos != dataSize) {
            throw new ModelFormatException(file, "tensors cover " + pos + " bytes but the data region holds " + dataSize
                    + (pos < dataSize ? " (trailing bytes)" : " (truncated file?)"));
        }
        return Collections.unmodifiableMap(entries);
    }

    private static Entry parseEntry(Path file, String name, JsonNode v, long dataSize) {
        String where = "tensor '" + name + "'";
        if (!v.isObject()) throw new ModelFormatException(file, where + ": entry is not an object");
        for (Iterator<String> it = v.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (!k.equals("dtype") && !k.equals("shape") && !k.equals("data_offsets")) {
                throw new ModelFormatException(file, where + ": unexpected field '" + k + "'");
            }
        }
        JsonNode dt = v.get("dtype"), sh = v.get("shape"), off = v.get("data_offsets");
        if (dt == null || !dt.isTextual()) throw new ModelFormatException(file, where + ": missing or non-string dtype");
        Integer bits = DTYPE_BITS.get(dt.asText());
        if (bits == null) throw new ModelFormatException(file, where + ": unknown dtype '" + dt.asText() + "'");
        if (sh == null || !sh.isArray()) throw new ModelFormatException(file, where + ": missing or non-array shape");
        long[] shape = new long[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw new ModelFormatException(file, where + ": shape " + sh + " has an invalid dim at " + i);
            }
            shape[i] = d.asLong();
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException e) {
                throw new ModelFormatException(file, where + ": shape " + sh + " overflows");
            }
        }
        if (off == null || !off.isArray() || off.size() != 2) throw new ModelFormatException(file, where + ": data_offsets must be [begin, end]");
        for (JsonNode o : off) {
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.asLong() < 0) {
                throw new ModelFormatException(file, where + ": data_offsets " + off + " are not non-negative integers");
            }
        }
        long begin = off.get(0).asLong(), end = off.get(1).asLong();
        if (begin > end) throw new ModelFormatException(file, where + ": data_offsets " + off + " end before they begin");
        if (end > dataSize) throw new ModelFormatException(file, where + ": data_offsets " + off + " run past the data region (" + dataSize + " bytes): truncated?");
        long want;
        try {
            want = Math.multiplyExact(numel, (long) bits) / 8;
        } catch (ArithmeticException e) {
            throw new ModelFormatException(file, where + ": shape " + sh + " overflows");
        }
        if (end - begin != want) {
            throw new ModelFormatException(file, where + ": " + dt.asText() + sh + " needs " + want + " bytes but data_offsets " + off + " span " + (end - begin));
        }
        return new Entry(name, dt.asText(), shape, begin, end);
    }

    public Path path() { return path; }

    /** Tensor names, in header order. */
    public List<String> names() { return List.copyOf(entries.keySet()); }

    public boolean contains(String name) { return entries.containsKey(name); }

    /** The header entry of {@code name}. @throws IllegalArgumentException when absent */
    public Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) throw new IllegalArgumentException(path + ": no tensor '" + name + "'");
        return e;
    }

    /** The {@code __metadata__} strings. */
    public Map<String, String> metadata() { return metadata; }

    /** Our dtype for a safetensors dtype string, or null when unsupported. */
    public static DType dtypeOf(String st) {
        return switch (st) {
            case "F32" -> DType.F32;
            case "F16" -> DType.F16;
            case "BF16" -> DType.BF16;
            case "I8" -> DType.I8;
            case "U8", "BOOL" -> DType.U8;
            case "I32" -> DType.I32;
            case "I64" -> DType.I64;
            default -> null;
        };
    }

    /**
     * The tensor {@code name}: a view of the mapping (zero-copy) when aligned, else an aligned
     * copy (in memory freed on {@link #close()}).
     *
     * @throws IllegalArgumentException when there is no such tensor
     * @throws ModelFormatException     for a dtype Panatron does not support (F64, U16, F8, ...)
     * @throws IllegalStateException    after {@link #close()}
     */
    public TensorData tensor(String name) {
        if (!arena.scope().isAlive()) throw new IllegalStateException(path + " is closed");
        Entry e = entry(name);
        DType dt = dtypeOf(e.dtype());
        if (dt == null) throw new ModelFormatException(path, "tensor '" + name + "' has dtype " + e.dtype() + ", which Panatron does not support");
        MemorySegment s = data.asSlice(e.begin(), e.end() - e.begin());
        if (s.address() % dt.byteSize() != 0) {
            MemorySegment c = arena.allocate(Math.max(1, s.byteSize()), 64).asSlice(0, s.byteSize());
            c.copyFrom(s);
            s = c;
        }
        return TensorData.wrap(s, dt, e.shape());
    }

    /** Unmaps the file; tensors handed out become invalid. Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) arena.close();
    }

    @Override
    public String toString() { return "safetensors " + path + " (" + entries.size() + " tensors)"; }
}
