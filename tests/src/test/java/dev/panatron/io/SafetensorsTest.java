package dev.panatron.io;

import dev.panatron.DType;
import dev.panatron.graph.TensorData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The safetensors reader: round trips, zero-copy views, and every header check. */
class SafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void roundTripIsZeroCopyWhenAligned() throws IOException {
        Map<String, TensorData> ts = new LinkedHashMap<>();
        ts.put("w", TensorData.ofFloats(new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
        ts.put("ids", TensorData.ofLongs(new long[] {7, -8, 9, 10}, 4));
        ts.put("empty", TensorData.ofFloats(new float[0], 0, 3));
        Path f = dir.resolve("m.safetensors");
        SafetensorsWriter.write(f, ts, Map.of("format", "pt"));
        try (Safetensors st = Safetensors.open(f)) {
            assertEquals(List.of("w", "ids", "empty"), st.names());
            assertEquals(Map.of("format", "pt"), st.metadata());
            TensorData w = st.tensor("w");
            assertEquals(DType.F32, w.dtype());
            assertArrayEquals(new long[] {2, 3}, w.shape());
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, w.toFloatArray());
            assertTrue(w.segment().isReadOnly(), "a view of the read-only mapping, not a copy");
            assertArrayEquals(new long[] {7, -8, 9, 10}, st.tensor("ids").toLongArray());
            assertEquals(0, st.tensor("empty").numel());
            assertThrows(IllegalArgumentException.class, () -> st.tensor("nope"));
        }
    }

    @Test
    void unalignedTensorsAreCopied() throws IOException {
        Map<String, TensorData> ts = new LinkedHashMap<>();
        TensorData b = TensorData.allocate(java.lang.foreign.Arena.ofAuto(), DType.U8, 1);
        b.setLong(0, 3);
        ts.put("flag", b);                                          // 1 byte: what follows is misaligned
        ts.put("w", TensorData.ofFloats(new float[] {1.5f, -2.5f}, 2));
        Path f = dir.resolve("u.safetensors");
        SafetensorsWriter.write(f, ts, Map.of());
        try (Safetensors st = Safetensors.open(f)) {
            TensorData w = st.tensor("w");
            assertArrayEquals(new float[] {1.5f, -2.5f}, w.toFloatArray());
            assertFalse(w.segment().isReadOnly(), "copied to aligned memory");
            assertEquals(0, w.segment().address() % 4);
        }
    }

    @Test
    void unsupportedDtypeIsReportedOnAccess() throws IOException {
        Path f = dir.resolve("d.safetensors");
        SafetensorsWriter.writeRaw(f, "{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", new byte[16]);
        try (Safetensors st = Safetensors.open(f)) {
            var e = assertThrows(ModelFormatException.class, () -> st.tensor("x"));
            assertTrue(e.getMessage().contains("F64"), e.getMessage());
        }
    }

    static String entry(String name, String dtype, String shape, long b, long e) {
        return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + b + "," + e + "]}";
    }

    void expectBad(String header, int dataBytes, String message) throws IOException {
        Path f = dir.resolve("bad.safetensors");
        SafetensorsWriter.writeRaw(f, header, new byte[dataBytes]);
        expectBad(f, message);
    }

    static void expectBad(Path f, String message) {
        var e = assertThrows(ModelFormatException.class, () -> Safetensors.open(f).close());
        assertTrue(e.getMessage().contains(message), "expected '" + message + "' in: " + e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), "names the file: " + e.getMessage());
    }

    @Test
    void corruptHeadersAreRejectedWithClearMessages() throws IOException {
        expectBad("{" + entry("a", "F12", "[2]", 0, 8) + "}", 8, "unknown dtype 'F12'");
        expectBad("{" + entry("a", "F32", "[-2]", 0, 8) + "}", 8, "invalid dim");
        expectBad("{" + entry("a", "F32", "[2.5]", 0, 8) + "}", 8, "invalid dim");
        expectBad("{" + entry("a", "F32", "[2]", 8, 0) + "}", 8, "end before they begin");
        expectBad("{" + entry("a", "F32", "[2]", 0, 8) + "}", 4, "run past the data region");
        expectBad("{" + entry("a", "F32", "[3]", 0, 8) + "}", 8, "needs 12 bytes");
        expectBad("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}", 12, "overlapping");
        expectBad("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 12, 20) + "}", 20, "gap");
        expectBad("{" + entry("a", "F32", "[2]", 0, 8) + "}", 12, "trailing bytes");
        expectBad("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("a", "F32", "[2]", 8, 16) + "}", 16, "Duplicate field");
        expectBad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8, "unexpected field 'extra'");
        expectBad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets must be");
        expectBad("{\"a\": [1, 2", 8, "not valid JSON");
        expectBad("[1, 2]", 0, "does not start with '{'");
        expectBad("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
        expectBad("{" + entry("a", "F32", "[4611686018427387904, 4]", 0, 8) + "}", 8, "overflows");
    }

    @Test
    void brokenFramingIsRejected() throws IOException {
        Path f = dir.resolve("short.safetensors");
        Files.write(f, new byte[] {1, 2, 3});
        expectBad(f, "shorter than the 8-byte header length");
        Files.write(f, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array());
        expectBad(f, "header length");
        Files.write(f, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(100).array());
        expectBad(f, "runs past the end of the file");
        byte[] bad = ByteBuffer.allocate(10).order(ByteOrder.LITTLE_ENDIAN).putLong(2).put((byte) 0xc3).put((byte) 0x28).array();
        Files.write(f, bad);
        expectBad(f, "UTF-8");
    }

    @Test
    void truncatedFileIsRejected() throws IOException {
        Map<String, TensorData> ts = new LinkedHashMap<>();
        ts.put("w", TensorData.ofFloats(new float[64], 8, 8));
        Path f = dir.resolve("t.safetensors");
        SafetensorsWriter.write(f, ts, Map.of());
        byte[] all = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(all, all.length - 10));
        expectBad(f, "truncated");
    }

    @Test
    void configFieldsAreTypedAndChecked() {
        Path p = Path.of("config.json");
        HfConfig c = HfConfig.parse(p, "{\"model_type\":\"bert\",\"hidden_size\":384,\"layer_norm_eps\":1e-12,\"hidden_act\":\"gelu\"}");
        assertEquals("bert", c.modelType());
        assertEquals(384, c.hiddenSize());
        assertEquals(1e-12, c.layerNormEps());
        assertEquals(2, c.typeVocabSize());
        var e = assertThrows(ModelFormatException.class, c::numHiddenLayers);
        assertTrue(e.getMessage().contains("missing field 'num_hidden_layers'"), e.getMessage());
        var e2 = assertThrows(ModelFormatException.class, () -> HfConfig.parse(p, "{\"hidden_size\":\"big\"}").hiddenSize());
        assertTrue(e2.getMessage().contains("must be an integer"), e2.getMessage());
        assertThrows(ModelFormatException.class, () -> HfConfig.parse(p, "[1]"));
        assertThrows(ModelFormatException.class, () -> HfConfig.parse(p, "{bad json"));
    }
}
