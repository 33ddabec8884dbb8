package dev.panatron.io;

import com.google.protobuf.ByteString;
import dev.panatron.Context;
import dev.panatron.graph.Graph;
import dev.panatron.graph.MiniLm;
import dev.panatron.graph.Op;
import dev.panatron.graph.Passes;
import dev.panatron.graph.Session;
import dev.panatron.graph.TensorData;
import dev.panatron.io.onnx.Onnx.AttributeProto;
import dev.panatron.io.onnx.Onnx.GraphProto;
import dev.panatron.io.onnx.Onnx.ModelProto;
import dev.panatron.io.onnx.Onnx.NodeProto;
import dev.panatron.io.onnx.Onnx.OperatorSetIdProto;
import dev.panatron.io.onnx.Onnx.StringStringEntryProto;
import dev.panatron.io.onnx.Onnx.TensorProto;
import dev.panatron.io.onnx.Onnx.TensorShapeProto;
import dev.panatron.io.onnx.Onnx.TypeProto;
import dev.panatron.io.onnx.Onnx.ValueInfoProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ONNX importer: the real MiniLM file, tensor encodings, opset variants, and bad input. */
class OnnxImporterTest {
    @TempDir
    Path dir;

    // ================================================================ tiny models, written with the schema classes

    static ValueInfoProto tensorInfo(String name, int elemType, Object... dims) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (Object d : dims) {
            if (d instanceof String p) s.addDim(TensorShapeProto.Dimension.newBuilder().setDimParam(p));
            else s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(((Number) d).longValue()));
        }
        return ValueInfoProto.newBuilder().setName(name)
                .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(elemType).setShape(s))).build();
    }

    static NodeProto node(String op, List<String> in, String out, AttributeProto... attrs) {
        return NodeProto.newBuilder().setOpType(op).setName("n_" + out).addAllInput(in).addOutput(out).addAllAttribute(Arrays.asList(attrs)).build();
    }

    static AttributeProto ints(String name, long... v) {
        AttributeProto.Builder a = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
        for (long x : v) a.addInts(x);
        return a.build();
    }

    static TensorProto rawFloats(String name, float[] v, long... dims) {
        ByteBuffer bb = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) bb.putFloat(f);
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(1).setRawData(ByteString.copyFrom(bb.array()));
        for (long d : dims) t.addDims(d);
        return t.build();
    }

    static ModelProto model(int opset, GraphProto.Builder g) {
        return ModelProto.newBuilder().setIrVersion(8).addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(opset))
                .setProducerName("test").setGraph(g.setName("tiny")).build();
    }

    Path write(ModelProto m) throws IOException {
        Path f = Files.createTempFile(dir, "tiny", ".onnx");
        Files.write(f, m.toByteArray());
        return f;
    }

    /** y = x + w, x [2] f32 input, w an initializer given as `w`. */
    GraphProto.Builder addGraph(TensorProto w) {
        return GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2)).addInitializer(w)
                .addNode(node("Add", List.of("x", w.getName()), "y")).addOutput(tensorInfo("y", 1, 2));
    }

    static float[] runAdd(Path f) throws IOException {
        try (Graph g = OnnxImporter.load(f); Context ctx = Context.create(1); Session s = Session.create(g, ctx)) {
            TensorData y = s.run(Map.of("x", TensorData.ofFloats(new float[] {10, 20}, 2))).get("y");
            return y.toFloatArray();
        }
    }

    void expectBad(ModelProto m, String... fragments) throws IOException {
        expectBad(write(m), fragments);
    }

    static void expectBad(Path f, String... fragments) {
        var e = assertThrows(ModelFormatException.class, () -> OnnxImporter.load(f).close());
        assertTrue(e.getMessage().contains(f.toString()), "names the file: " + e.getMessage());
        for (String s : fragments) assertTrue(e.getMessage().contains(s), "expected '" + s + "' in: " + e.getMessage());
    }

    // ================================================================ the schema

    @Test
    void generatedSchemaUsesOnnxFieldNumbers() {
        // onnx/onnx.proto's numbers: a wrong one would silently drop data from real files
        assertEquals(7, ModelProto.GRAPH_FIELD_NUMBER);
        assertEquals(8, ModelProto.OPSET_IMPORT_FIELD_NUMBER);
        assertEquals(1, GraphProto.NODE_FIELD_NUMBER);
        assertEquals(5, GraphProto.INITIALIZER_FIELD_NUMBER);
        assertEquals(11, GraphProto.INPUT_FIELD_NUMBER);
        assertEquals(12, GraphProto.OUTPUT_FIELD_NUMBER);
        assertEquals(4, NodeProto.OP_TYPE_FIELD_NUMBER);
        assertEquals(7, NodeProto.DOMAIN_FIELD_NUMBER);
        assertEquals(20, AttributeProto.TYPE_FIELD_NUMBER);
        assertEquals(5, AttributeProto.T_FIELD_NUMBER);
        assertEquals(8, AttributeProto.INTS_FIELD_NUMBER);
        assertEquals(9, TensorProto.RAW_DATA_FIELD_NUMBER);
        assertEquals(4, TensorProto.FLOAT_DATA_FIELD_NUMBER);
        assertEquals(7, TensorProto.INT64_DATA_FIELD_NUMBER);
        assertEquals(13, TensorProto.EXTERNAL_DATA_FIELD_NUMBER);
        assertEquals(14, TensorProto.DATA_LOCATION_FIELD_NUMBER);
        assertEquals(2, TensorShapeProto.Dimension.DIM_PARAM_FIELD_NUMBER);
        assertEquals(1, TypeProto.TENSOR_TYPE_FIELD_NUMBER);
        assertEquals(16, TensorProto.DataType.BFLOAT16_VALUE);
    }

    // ================================================================ the real model

    @Test
    void miniLmOpsAreAllMapped() throws IOException {
        Map<String, Integer> ops = OnnxImporter.opHistogram(MiniLm.onnx());
        System.out.println("all-minilm-l6-v2.onnx ops: " + ops + " (" + ops.values().stream().mapToInt(i -> i).sum() + " nodes)");
        assertTrue(OnnxImporter.SUPPORTED_OPS.containsAll(ops.keySet()), ops.keySet().toString());
        try (Graph g = OnnxImporter.load(MiniLm.onnx())) {
            int constants = ops.get("Constant");
            assertEquals(ops.values().stream().mapToInt(i -> i).sum() - constants, g.nodes().size());
            int before = g.nodes().size();
            Passes.Report r = Passes.optimize(g);
            System.out.println("MiniLM fused: " + r + "\n" + g.dump());
            assertEquals(before, r.nodesBefore());
            assertEquals(Map.of(Op.LINEAR, 36, Op.ATTENTION, 6, Op.LAYER_NORM, 13), Map.of(Op.LINEAR, g.opCounts().get(Op.LINEAR),
                    Op.ATTENTION, g.opCounts().get(Op.ATTENTION), Op.LAYER_NORM, g.opCounts().get(Op.LAYER_NORM)));
            for (Op gone : Set.of(Op.MATMUL, Op.SOFTMAX, Op.ERF, Op.REDUCE_MEAN, Op.SHAPE, Op.CONCAT, Op.TRANSPOSE, Op.RESHAPE)) {
                assertTrue(!g.opCounts().containsKey(gone), gone + " left after fusion");
            }
        }
    }

    @Test
    void initializersAreZeroCopyWhenAligned() throws IOException {
        try (Graph g = OnnxImporter.load(MiniLm.onnx())) {
            long views = g.constants().stream().filter(c -> c.constantData().segment().isReadOnly()).count();
            long bytes = g.constants().stream().filter(c -> c.constantData().segment().isReadOnly()).mapToLong(c -> c.constantData().byteSize()).sum();
            System.out.printf("MiniLM initializers: %d of %d are views of the mapped file (%.1f of %.1f MiB)%n", views, g.constants().size(),
                    bytes / 1048576.0, g.constantBytes() / 1048576.0);
            assertTrue(views > 0, "no zero-copy initializer at all");
        }
    }

    @Test
    void truncatedAndCorruptFilesAreRejected() throws IOException {
        byte[] all = Files.readAllBytes(MiniLm.onnx());
        for (int len : new int[] {1, 100, 5000, all.length / 2, all.length - 7}) {
            Path f = dir.resolve("cut" + len + ".onnx");
            Files.write(f, Arrays.copyOf(all, len));
            expectBad(f);
        }
        Path junk = dir.resolve("junk.onnx");
        byte[] r = new byte[4096];
        new Random(1).nextBytes(r);
        Files.write(junk, r);
        expectBad(junk);
        Path empty = dir.resolve("empty.onnx");
        Files.write(empty, new byte[0]);
        expectBad(empty, "empty file");
        Path text = dir.resolve("text.onnx");
        Files.writeString(text, "{\"this\": \"is json, not onnx\"}");
        expectBad(text);
    }

    // ================================================================ encodings of initializers

    @Test
    void rawAndTypedAndExternalDataAgree() throws IOException {
        assertArrayEquals(new float[] {11, 18}, runAdd(write(model(13, addGraph(rawFloats("w", new float[] {1, -2}, 2))))));
        TensorProto typed = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).addFloatData(1).addFloatData(-2).build();
        assertArrayEquals(new float[] {11, 18}, runAdd(write(model(13, addGraph(typed)))));
        // float16 as bit patterns in int32_data: 1.0 = 0x3c00, -2.0 = 0xc000; cast to f32 first
        TensorProto half = TensorProto.newBuilder().setName("h").setDataType(10).addDims(2).addInt32Data(0x3c00).addInt32Data(0xc000).build();
        GraphProto.Builder gh = GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2)).addInitializer(half)
                .addNode(node("Cast", List.of("h"), "w", AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT).setI(1).build()))
                .addNode(node("Add", List.of("x", "w"), "y")).addOutput(tensorInfo("y", 1, 2));
        assertArrayEquals(new float[] {11, 18}, runAdd(write(model(13, gh))));
        // external data: 4 bytes of padding, then the two floats
        ByteBuffer bb = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(0).putFloat(1).putFloat(-2);
        Files.write(dir.resolve("weights.bin"), bb.array());
        TensorProto ext = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(kv("location", "weights.bin")).addExternalData(kv("offset", "4")).addExternalData(kv("length", "8")).build();
        assertArrayEquals(new float[] {11, 18}, runAdd(write(model(13, addGraph(ext)))));
    }

    static StringStringEntryProto kv(String k, String v) { return StringStringEntryProto.newBuilder().setKey(k).setValue(v).build(); }

    @Test
    void badInitializersAreRejected() throws IOException {
        expectBad(model(13, addGraph(rawFloats("w", new float[] {1, 2, 3}, 2))), "raw_data holds 12 bytes", "initializer 'w'");
        TensorProto few = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).addFloatData(1).build();
        expectBad(model(13, addGraph(few)), "holds 1 values");
        TensorProto none = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).build();
        expectBad(model(13, addGraph(none)), "no data");
        TensorProto dbl = TensorProto.newBuilder().setName("w").setDataType(11).addDims(2).addDoubleData(1).addDoubleData(2).build();
        expectBad(model(13, addGraph(dbl)), "DOUBLE", "not supported");
        TensorProto escape = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(kv("location", "../outside.bin")).build();
        expectBad(model(13, addGraph(escape)), "inside the model's folder");
        Files.write(dir.resolve("short.bin"), new byte[4]);
        TensorProto shortExt = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(kv("location", "short.bin")).build();
        expectBad(model(13, addGraph(shortExt)), "needs 8");
        TensorProto missing = TensorProto.newBuilder().setName("w").setDataType(1).addDims(2).setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(kv("location", "nope.bin")).build();
        expectBad(model(13, addGraph(missing)), "does not exist");
    }

    // ================================================================ nodes

    @Test
    void unknownOpsDomainsAndDtypesAreNamed() throws IOException {
        GraphProto.Builder g = GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2))
                .addNode(node("FancyNorm", List.of("x"), "y")).addOutput(tensorInfo("y", 1, 2));
        expectBad(model(13, g), "unknown or unsupported op 'FancyNorm'", "node 'n_y'");
        GraphProto.Builder d = GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2))
                .addNode(node("Add", List.of("x", "x"), "y").toBuilder().setDomain("com.microsoft").build()).addOutput(tensorInfo("y", 1, 2));
        expectBad(model(13, d), "domain 'com.microsoft'");
        GraphProto.Builder t = GraphProto.newBuilder().addInput(tensorInfo("x", 11, 2))
                .addNode(node("Add", List.of("x", "x"), "y")).addOutput(tensorInfo("y", 11, 2));
        expectBad(model(13, t), "graph input 'x'", "DOUBLE");
        GraphProto.Builder u = GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2))
                .addNode(node("Add", List.of("x", "ghost"), "y")).addOutput(tensorInfo("y", 1, 2));
        expectBad(model(13, u), "input 'ghost' is not produced");
        GraphProto.Builder o = GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2))
                .addNode(node("Relu", List.of("x"), "y")).addOutput(tensorInfo("z", 1, 2));
        expectBad(model(13, o), "graph output 'z' is not produced");
        GraphProto.Builder s = GraphProto.newBuilder().addInput(tensorInfo("x", 1, 2)).addInput(tensorInfo("w", 1, 3))
                .addNode(node("Add", List.of("x", "w"), "y")).addOutput(tensorInfo("y", 1, 2));
        expectBad(model(13, s), "node 'n_y' (Add)", "do not broadcast");
    }

    @Test
    void opsetVariantsAndConstantsMapTheSame() throws IOException {
        // y = ReduceSum(Unsqueeze(x, axes), axes) * c with axes as attributes (opset 11) or inputs (opset 13)
        for (int opset : new int[] {11, 13}) {
            GraphProto.Builder g = GraphProto.newBuilder().addInput(tensorInfo("x", 1, "n", 3))
                    .addNode(node("Constant", List.of(), "c", AttributeProto.newBuilder().setName("value_float").setType(AttributeProto.AttributeType.FLOAT).setF(2).build()));
            if (opset >= 13) {
                g.addNode(node("Constant", List.of(), "ax", ints("value_ints", 0)));
                g.addNode(node("Unsqueeze", List.of("x", "ax"), "u"));
                g.addNode(node("ReduceSum", List.of("u", "ax"), "r", ints("keepdims", 0)));
            } else {
                g.addNode(node("Unsqueeze", List.of("x"), "u", ints("axes", 0)));
                g.addNode(node("ReduceSum", List.of("u"), "r", ints("axes", 0), ints("keepdims", 0)));
            }
            g.addNode(node("Mul", List.of("r", "c"), "y")).addOutput(tensorInfo("y", 1, "n", 3));
            try (Graph gr = OnnxImporter.load(write(model(opset, g))); Context ctx = Context.create(1); Session s = Session.create(gr, ctx)) {
                float[] y = s.run(Map.of("x", TensorData.ofFloats(new float[] {1, 2, 3, 4, 5, 6}, 2, 3))).get("y").toFloatArray();
                assertArrayEquals(new float[] {2, 4, 6, 8, 10, 12}, y, "opset " + opset);
            }
        }
    }
}
