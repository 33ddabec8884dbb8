package dev.panatron.io;

import dev.panatron.graph.TensorData;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/** A tiny safetensors writer for tests (the format's layout, header padded to 8 bytes). */
public final class SafetensorsWriter {
    private SafetensorsWriter() {}

    static String dtypeName(TensorData t) {
        return switch (t.dtype()) {
            case F32 -> "F32";
            case F16 -> "F16";
            case BF16 -> "BF16";
            case I8 -> "I8";
            case U8 -> "U8";
            case I32 -> "I32";
            case I64 -> "I64";
            default -> throw new IllegalArgumentException(t.toString());
        };
    }

    /** Writes {@code tensors} in map order. */
    public static void write(Path file, Map<String, TensorData> tensors, Map<String, String> metadata) throws IOException {
        StringBuilder h = new StringBuilder("{");
        if (!metadata.isEmpty()) {
            h.append("\"__metadata__\":{");
            boolean first = true;
            for (var e : metadata.entrySet()) {
                h.append(first ? "" : ",").append('"').append(e.getKey()).append("\":\"").append(e.getValue()).append('"');
                first = false;
            }
            h.append("},");
        }
        long off = 0;
        boolean first = true;
        for (var e : tensors.entrySet()) {
            TensorData t = e.getValue();
            h.append(first ? "" : ",").append('"').append(e.getKey()).append("\":{\"dtype\":\"").append(dtypeName(t))
                    .append("\",\"shape\":").append(Arrays.toString(t.shape()).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(off).append(',').append(off + t.byteSize()).append("]}");
            off += t.byteSize();
            first = false;
        }
        h.append('}');
        while (h.length() % 8 != 0) h.append(' ');
        try (OutputStream out = Files.newOutputStream(file)) {
            writeHeader(out, h.toString());
            for (TensorData t : tensors.values()) out.write(t.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        }
    }

    /** Writes a header (as given) and raw data: for corrupt-file tests. */
    static void writeRaw(Path file, String header, byte[] data) throws IOException {
        try (OutputStream out = Files.newOutputStream(file)) {
            writeHeader(out, header);
            out.write(data);
        }
    }

    private static void writeHeader(OutputStream out, String header) throws IOException {
        byte[] hb = header.getBytes(StandardCharsets.UTF_8);
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(hb.length).array());
        out.write(hb);
    }
}
