package dev.panatron.io;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnsafeByteOperations;
import dev.panatron.DType;
import dev.panatron.graph.Dim;
import dev.panatron.graph.Graph;
import dev.panatron.graph.GraphBuilder;
import dev.panatron.graph.GraphException;
import dev.panatron.graph.Op;
import dev.panatron.graph.TensorData;
import dev.panatron.graph.Value;
import dev.panatron.io.onnx.Onnx.AttributeProto;
import dev.panatron.io.onnx.Onnx.GraphProto;
import dev.panatron.io.onnx.Onnx.ModelProto;
import dev.panatron.io.onnx.Onnx.NodeProto;
import dev.panatron.io.onnx.Onnx.OperatorSetIdProto;
import dev.panatron.io.onnx.Onnx.StringStringEntryProto;
import dev.panatron.io.onnx.Onnx.TensorProto;
import dev.panatron.io.onnx.Onnx.TensorShapeProto;
import dev.panatron.io.onnx.Onnx.ValueInfoProto;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Imports an ONNX model into a {@link Graph}: the protobuf is parsed (protobuf-java, ONNX's own
 * schema) straight from a memory mapping of the file, initializers become constants — views of
 * the mapping when their raw data is aligned (zero copy), copies otherwise, also from typed
 * fields and external data files — and every node is mapped to an {@link Op} with its
 * attributes normalized for the model's opset. The graph is returned as imported; run
 * {@link dev.panatron.graph.Passes#optimize} to fold and fuse it.
 *
 * <p>Truncated or corrupt files, unknown ops, unsupported dtypes and malformed nodes throw a
 * {@link ModelFormatException} naming the file, the node and the op.
 */
public final class OnnxImporter {
    /** The ops this importer maps (ONNX domain ai.onnx). */
    public static final Set<String> SUPPORTED_OPS = Set.of(
            "Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "Where", "Not",
            "Sqrt", "Erf", "Exp", "Tanh", "Sigmoid", "Relu", "Neg", "Reciprocal", "Cast",
            "ReduceMean", "ReduceSum", "Shape", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Concat",
            "Slice", "Gather", "Expand", "ConstantOfShape", "Range", "Identity", "Dropout",
            "MatMul", "Gemm", "Softmax", "LayerNormalization", "Gelu", "Constant");

    private final Path file;
    private final Graph graph;
    private final GraphBuilder b;
    private final MemorySegment fileSeg;
    private final Map<String, MemorySegment> external = new HashMap<>();
    private final Map<String, Value> values = new HashMap<>();
    private long opset;
    private int anon;

    private OnnxImporter(Path file, GraphBuilder b, MemorySegment fileSeg) {
        this.file = file;
        this.b = b;
        this.graph = b.graph();
        this.fileSeg = fileSeg;
    }

    /**
     * Imports {@code file}.
     *
     * @throws IOException          when the file (or an external data file) cannot be read
     * @throws ModelFormatException when the content is not a valid, supported ONNX model
     */
    public static Graph load(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        MemorySegment seg;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size == 0) throw new ModelFormatException(file, "empty file");
            if (size > Integer.MAX_VALUE) {
                throw new ModelFormatException(file, "ONNX protobufs are limited to 2 GiB (" + size + " bytes); larger models keep weights as external data");
            }
            seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
        ModelProto model;
        try {
            // A read-only wrap of the mapping, parsed with aliasing: bytes fields (raw_data) stay
            // slices of the mapping instead of heap copies.
            ByteString bytes = UnsafeByteOperations.unsafeWrap(seg.asByteBuffer());
            CodedInputStream in = bytes.newCodedInput();
            in.enableAliasing(true);
            in.setSizeLimit(Integer.MAX_VALUE);
            model = ModelProto.parseFrom(in);
        } catch (InvalidProtocolBufferException e) {
            arena.close();
            throw new ModelFormatException(file, "not a valid ONNX protobuf (truncated or corrupt?): " + e.getMessage());
        } catch (RuntimeException e) {
            arena.close();
            throw new ModelFormatException(file, "not a valid ONNX protobuf: " + e);
        }
        if (!model.hasGraph() || model.getIrVersion() <= 0) {
            arena.close();
            throw new ModelFormatException(file, "not an ONNX model (no graph or IR version; truncated or another format?)");
        }
        GraphProto gp = model.getGraph();
        GraphBuilder builder = GraphBuilder.create(gp.getName());
        builder.graph().own(arena);
        OnnxImporter imp = new OnnxImporter(file, builder, seg);
        try {
            return imp.convert(model);
        } catch (RuntimeException | IOException e) {
            builder.graph().close();
            throw e;
        }
    }

    private Graph convert(ModelProto model) throws IOException {
        opset = -1;
        for (OperatorSetIdProto o : model.getOpsetImportList()) {
            if (o.getDomain().isEmpty() || o.getDomain().equals("ai.onnx")) opset = o.getVersion();
        }
        if (opset < 0) opset = model.getIrVersion() <= 2 ? 1 : 7; // very old files: the default opset of their IR
        GraphProto gp = model.getGraph();
        for (TensorProto t : gp.getInitializerList()) {
            if (t.getName().isEmpty()) throw new ModelFormatException(file, "an initializer has no name");
            values.put(t.getName(), b.constant(t.getName(), tensor(t, "initializer '" + t.getName() + "'")));
        }
        for (ValueInfoProto vi : gp.getInputList()) {
            if (values.containsKey(vi.getName())) continue; // IR < 4 lists initializers as inputs too
            values.put(vi.getName(), b.input(vi.getName(), elemType(vi), dims(vi)));
        }
        List<NodeProto> nodes = gp.getNodeList();
        for (int i = 0; i < nodes.size(); i++) node(nodes.get(i), i);
        if (gp.getOutputCount() == 0) throw new ModelFormatException(file, "the graph has no outputs");
        for (ValueInfoProto vi : gp.getOutputList()) {
            Value v = values.get(vi.getName());
            if (v == null) throw new ModelFormatException(file, "graph output '" + vi.getName() + "' is not produced by any node (truncated file?)");
            b.output(v);
        }
        try {
            return b.build();
        } catch (GraphException e) {
            throw new ModelFormatException(file, e.getMessage(), e);
        }
    }

    // ================================================================ nodes

    private void node(NodeProto n, int index) throws IOException {
        String op = n.getOpType();
        String name = n.getName().isEmpty() ? op + "_" + index : n.getName();
        String where = "node '" + name + "' (" + op + ")";
        String domain = n.getDomain();
        if (!domain.isEmpty() && !domain.equals("ai.onnx")) {
            throw new ModelFormatException(file, where + ": operator domain '" + domain + "' is not supported (only the default ONNX domain)");
        }
        if (!SUPPORTED_OPS.contains(op)) {
            throw new ModelFormatException(file, where + ": unknown or unsupported op '" + op + "' (supported: " + new java.util.TreeSet<>(SUPPORTED_OPS) + ")");
        }
        List<Value> in = new ArrayList<>();
        for (String s : n.getInputList()) {
            if (s.isEmpty()) {
                in.add(null);
                continue;
            }
            Value v = values.get(s);
            if (v == null) throw new ModelFormatException(file, where + ": input '" + s + "' is not produced by an earlier node, an initializer or a graph input");
            in.add(v);
        }
        Map<String, AttributeProto> at = new LinkedHashMap<>();
        for (AttributeProto a : n.getAttributeList()) at.put(a.getName(), a);
        try {
            if (op.equals("Constant")) {
                if (n.getOutputCount() != 1) throw new ModelFormatException(file, where + ": expected one output");
                values.put(n.getOutput(0), b.constant(n.getOutput(0), constantValue(at, where)));
                return;
            }
            Map<String, Object> attrs = new HashMap<>();
            Op our = map(op, in, at, attrs, where);
            List<String> outs = new ArrayList<>(n.getOutputList());
            if (op.equals("Dropout") || op.equals("LayerNormalization")) {
                // optional extra outputs (mask, mean, inv std) are not produced: they must be unused
                for (int i = 1; i < outs.size(); i++) {
                    if (!outs.get(i).isEmpty()) throw new ModelFormatException(file, where + ": optional output " + i + " ('" + outs.get(i) + "') is not supported");
                }
                outs = List.of(outs.getFirst());
                if (op.equals("Dropout")) in = in.subList(0, 1);
            }
            if (outs.size() != 1 || outs.getFirst().isEmpty()) throw new ModelFormatException(file, where + ": expected one output, got " + outs);
            List<Value> made = b.node(our, name, attrs, trimTrailingNulls(in), outs);
            values.put(outs.getFirst(), made.getFirst());
        } catch (IllegalArgumentException e) {
            if (e instanceof ModelFormatException) throw e;
            throw new ModelFormatException(file, where + ": " + e.getMessage(), e);
        }
    }

    private static List<Value> trimTrailingNulls(List<Value> in) {
        int n = in.size();
        while (n > 0 && in.get(n - 1) == null) n--;
        return new ArrayList<>(in.subList(0, n));
    }

    /** Maps an ONNX op to ours, normalizing attributes; may move constant inputs into attributes. */
    private Op map(String op, List<Value> in, Map<String, AttributeProto> at, Map<String, Object> attrs, String where) throws IOException {
        switch (op) {
            case "Add": return Op.ADD;
            case "Sub": return Op.SUB;
            case "Mul": return Op.MUL;
            case "Div": return Op.DIV;
            case "Pow": return Op.POW;
            case "Equal": return Op.EQUAL;
            case "Less": return Op.LESS;
            case "Greater": return Op.GREATER;
            case "Where": return Op.WHERE;
            case "Not": return Op.NOT;
            case "Sqrt": return Op.SQRT;
            case "Erf": return Op.ERF;
            case "Exp": return Op.EXP;
            case "Tanh": return Op.TANH;
            case "Sigmoid": return Op.SIGMOID;
            case "Relu": return Op.RELU;
            case "Neg": return Op.NEG;
            case "Reciprocal": return Op.RECIPROCAL;
            case "Identity", "Dropout": return Op.IDENTITY;
            case "Cast": {
                attrs.put("to", dtype((int) requireInt(at, "to", where), where));
                return Op.CAST;
            }
            case "ReduceMean", "ReduceSum": {
                long[] axes = ints(at, "axes");
                boolean axesAsInput = op.equals("ReduceSum") ? opset >= 13 : opset >= 18;
                if (axesAsInput && in.size() > 1 && in.get(1) != null) axes = constLongs(in.get(1), "axes", where);
                if (axesAsInput && in.size() > 1) in.subList(1, in.size()).clear();
                if (axes != null) attrs.put("axes", axes);
                attrs.put("keepdims", intOr(at, "keepdims", 1));
                if (at.containsKey("noop_with_empty_axes")) attrs.put("noop_with_empty_axes", intOr(at, "noop_with_empty_axes", 0));
                return op.equals("ReduceMean") ? Op.REDUCE_MEAN : Op.REDUCE_SUM;
            }
            case "Shape": {
                if (at.containsKey("start")) attrs.put("start", intOr(at, "start", 0));
                if (at.containsKey("end")) attrs.put("end", intOr(at, "end", 0));
                return Op.SHAPE;
            }
            case "Reshape": {
                if (opset < 5) throw new ModelFormatException(file, where + ": Reshape of opset " + opset + " (shape as attribute) is not supported");
                if (at.containsKey("allowzero")) attrs.put("allowzero", intOr(at, "allowzero", 0));
                return Op.RESHAPE;
            }
            case "Transpose": {
                long[] perm = ints(at, "perm");
                if (perm != null) attrs.put("perm", perm);
                return Op.TRANSPOSE;
            }
            case "Unsqueeze", "Squeeze": {
                long[] axes = ints(at, "axes");
                if (opset >= 13 && in.size() > 1) {
                    if (in.get(1) != null) axes = constLongs(in.get(1), "axes", where);
                    in.subList(1, in.size()).clear();
                }
                if (axes != null) attrs.put("axes", axes);
                return op.equals("Unsqueeze") ? Op.UNSQUEEZE : Op.SQUEEZE;
            }
            case "Concat": {
                attrs.put("axis", requireInt(at, "axis", where));
                return Op.CONCAT;
            }
            case "Slice": {
                if (opset < 10) { // starts/ends/axes as attributes: make them constant inputs
                    long[] st = ints(at, "starts"), en = ints(at, "ends"), ax = ints(at, "axes");
                    if (st == null || en == null) throw new ModelFormatException(file, where + ": missing starts/ends");
                    in.add(b.constant(graph.name() + "_slice_starts_" + anon++, TensorData.ofLongs(st, st.length).copy(graph.arena())));
                    in.add(b.constant(graph.name() + "_slice_ends_" + anon++, TensorData.ofLongs(en, en.length).copy(graph.arena())));
                    if (ax != null) in.add(b.constant(graph.name() + "_slice_axes_" + anon++, TensorData.ofLongs(ax, ax.length).copy(graph.arena())));
                }
                return Op.SLICE;
            }
            case "Gather": {
                attrs.put("axis", intOr(at, "axis", 0));
                return Op.GATHER;
            }
            case "Expand": return Op.EXPAND;
            case "ConstantOfShape": {
                AttributeProto v = at.get("value");
                if (v != null) attrs.put("value", tensor(v.getT(), where + " attribute 'value'"));
                return Op.CONSTANT_OF_SHAPE;
            }
            case "Range": return Op.RANGE;
            case "MatMul": return Op.MATMUL;
            case "Gemm": {
                attrs.put("alpha", floatOr(at, "alpha", 1));
                attrs.put("beta", floatOr(at, "beta", 1));
                attrs.put("transA", intOr(at, "transA", 0));
                attrs.put("transB", intOr(at, "transB", 0));
                return Op.GEMM;
            }
            case "Softmax": {
                long axis = intOr(at, "axis", opset >= 13 ? -1 : 1);
                int r = in.getFirst().shape().rank();
                long a = axis < 0 ? axis + r : axis;
                if (opset < 13 && a != r - 1) {
                    throw new ModelFormatException(file, where + ": opset-" + opset + " Softmax over axes " + a + ".." + (r - 1) + " (flattened) is not supported; only the last axis");
                }
                attrs.put("axis", axis);
                return Op.SOFTMAX;
            }
            case "LayerNormalization": {
                long axis = intOr(at, "axis", -1);
                int r = in.getFirst().shape().rank();
                if (axis != -1 && axis != r - 1) throw new ModelFormatException(file, where + ": LayerNormalization over axis " + axis + " is not supported (only the last)");
                attrs.put("epsilon", floatOr(at, "epsilon", 1e-5));
                return Op.LAYER_NORM;
            }
            case "Gelu": {
                attrs.put("approximate", at.containsKey("approximate") ? at.get("approximate").getS().toStringUtf8() : "none");
                return Op.GELU;
            }
            default:
                throw new ModelFormatException(file, where + ": unknown op '" + op + "'");
        }
    }

    private long[] constLongs(Value v, String what, String where) {
        TensorData c = v.constantData();
        if (c == null) throw new ModelFormatException(file, where + ": input '" + what + "' must be a constant");
        return c.toLongArray();
    }

    private long requireInt(Map<String, AttributeProto> at, String k, String where) {
        AttributeProto a = at.get(k);
        if (a == null) throw new ModelFormatException(file, where + ": missing attribute '" + k + "'");
        return a.getI();
    }

    private static long intOr(Map<String, AttributeProto> at, String k, long d) {
        AttributeProto a = at.get(k);
        return a == null ? d : a.getI();
    }

    private static double floatOr(Map<String, AttributeProto> at, String k, double d) {
        AttributeProto a = at.get(k);
        return a == null ? d : a.getF();
    }

    private static long[] ints(Map<String, AttributeProto> at, String k) {
        AttributeProto a = at.get(k);
        if (a == null) return null;
        long[] r = new long[a.getIntsCount()];
        for (int i = 0; i < r.length; i++) r[i] = a.getInts(i);
        return r;
    }

    private TensorData constantValue(Map<String, AttributeProto> at, String where) throws IOException {
        if (at.containsKey("value")) return tensor(at.get("value").getT(), where);
        if (at.containsKey("value_float")) return TensorData.scalar(at.get("value_float").getF()).copy(graph.arena());
        if (at.containsKey("value_int")) return TensorData.scalar(at.get("value_int").getI()).copy(graph.arena());
        if (at.containsKey("value_floats")) {
            AttributeProto a = at.get("value_floats");
            float[] f = new float[a.getFloatsCount()];
            for (int i = 0; i < f.length; i++) f[i] = a.getFloats(i);
            return TensorData.ofFloats(f, f.length).copy(graph.arena());
        }
        if (at.containsKey("value_ints")) {
            long[] l = ints(at, "value_ints");
            return TensorData.ofLongs(l, l.length).copy(graph.arena());
        }
        throw new ModelFormatException(file, where + ": Constant without a supported value attribute (have " + at.keySet() + ")");
    }

    // ================================================================ types

    private DType elemType(ValueInfoProto vi) {
        if (!vi.hasType() || !vi.getType().hasTensorType()) {
            throw new ModelFormatException(file, "graph input '" + vi.getName() + "' is not a tensor (sequences, maps and optionals are not supported)");
        }
        return dtype(vi.getType().getTensorType().getElemType(), "graph input '" + vi.getName() + "'");
    }

    private Dim[] dims(ValueInfoProto vi) {
        if (!vi.getType().getTensorType().hasShape()) {
            throw new ModelFormatException(file, "graph input '" + vi.getName() + "' has no shape");
        }
        List<TensorShapeProto.Dimension> ds = vi.getType().getTensorType().getShape().getDimList();
        Dim[] r = new Dim[ds.size()];
        for (int i = 0; i < r.length; i++) {
            TensorShapeProto.Dimension d = ds.get(i);
            if (d.hasDimValue()) {
                if (d.getDimValue() < 0) throw new ModelFormatException(file, "graph input '" + vi.getName() + "' has a negative dim");
                r[i] = Dim.of(d.getDimValue());
            } else if (d.hasDimParam() && !d.getDimParam().isEmpty()) {
                r[i] = Dim.sym(d.getDimParam());
            } else {
                r[i] = Dim.sym(vi.getName() + "_dim" + i);
            }
        }
        return r;
    }

    private static final String[] ONNX_TYPES = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
            "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ",
            "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1"};

    static String onnxTypeName(int t) { return t >= 0 && t < ONNX_TYPES.length ? ONNX_TYPES[t] : "type " + t; }

    /** Our dtype of an ONNX element type; BOOL is stored as U8. */
    private DType dtype(int t, String where) {
        return switch (t) {
            case 1 -> DType.F32;
            case 2, 9 -> DType.U8;
            case 3 -> DType.I8;
            case 6 -> DType.I32;
            case 7 -> DType.I64;
            case 10 -> DType.F16;
            case 16 -> DType.BF16;
            default -> throw new ModelFormatException(file, where + ": element type " + onnxTypeName(t) + " is not supported");
        };
    }

    // ================================================================ tensors

    /** The data of a TensorProto: zero-copy from the mapping when possible. */
    private TensorData tensor(TensorProto t, String where) throws IOException {
        DType dt = dtype(t.getDataType(), where);
        long[] shape = new long[t.getDimsCount()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            shape[i] = t.getDims(i);
            if (shape[i] < 0) throw new ModelFormatException(file, where + ": negative dim in " + t.getDimsList());
            numel = Math.multiplyExact(numel, shape[i]);
        }
        long bytes = Math.multiplyExact(numel, (long) dt.byteSize());
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) return externalTensor(t, dt, shape, bytes, where);
        if (t.hasRawData()) {
            ByteString raw = t.getRawData();
            if (raw.size() != bytes) {
                throw new ModelFormatException(file, where + ": raw_data holds " + raw.size() + " bytes, " + onnxTypeName(t.getDataType()) + t.getDimsList() + " needs " + bytes);
            }
            return fromBuffer(raw.asReadOnlyByteBuffer(), dt, shape);
        }
        TensorData out = TensorData.allocate(graph.arena(), dt, shape);
        int type = t.getDataType();
        long have;
        switch (type) {
            case 1 -> {
                have = t.getFloatDataCount();
                for (int i = 0; i < Math.min(have, numel); i++) out.setFloat(i, t.getFloatData(i));
            }
            case 7 -> {
                have = t.getInt64DataCount();
                for (int i = 0; i < Math.min(have, numel); i++) out.setLong(i, t.getInt64Data(i));
            }
            case 10, 16 -> { // 16-bit floats: their bit patterns in int32_data
                have = t.getInt32DataCount();
                for (int i = 0; i < Math.min(have, numel); i++) out.segment().setAtIndex(ValueLayout.JAVA_SHORT, i, (short) t.getInt32Data(i));
            }
            default -> {
                have = t.getInt32DataCount();
                for (int i = 0; i < Math.min(have, numel); i++) out.setLong(i, t.getInt32Data(i));
            }
        }
        if (have != numel) {
            throw new ModelFormatException(file, where + ": holds " + have + " values, " + onnxTypeName(type) + t.getDimsList() + " needs " + numel
                    + (have == 0 ? " (no data)" : ""));
        }
        return out;
    }

    /** A view of the mapped file when {@code bb} is a direct slice of it and aligned, else an aligned copy. */
    private TensorData fromBuffer(ByteBuffer bb, DType dt, long[] shape) {
        MemorySegment s = MemorySegment.ofBuffer(bb);
        if (s.isNative()) {
            long off = s.address() - fileSeg.address();
            if (off >= 0 && off + s.byteSize() <= fileSeg.byteSize() && s.address() % dt.byteSize() == 0) {
                return TensorData.wrap(fileSeg.asSlice(off, s.byteSize()), dt, shape);
            }
        }
        TensorData c = TensorData.allocate(graph.arena(), dt, shape);
        c.segment().copyFrom(s);
        return c;
    }

    private TensorData externalTensor(TensorProto t, DType dt, long[] shape, long bytes, String where) throws IOException {
        String location = null;
        long offset = 0, length = -1;
        for (StringStringEntryProto e : t.getExternalDataList()) {
            try {
                switch (e.getKey()) {
                    case "location" -> location = e.getValue();
                    case "offset" -> offset = Long.parseLong(e.getValue());
                    case "length" -> length = Long.parseLong(e.getValue());
                    default -> { }
                }
            } catch (NumberFormatException x) {
                throw new ModelFormatException(file, where + ": external_data " + e.getKey() + " '" + e.getValue() + "' is not a number");
            }
        }
        if (location == null || location.isEmpty()) throw new ModelFormatException(file, where + ": external data without a location");
        Path dir = file.toAbsolutePath().getParent();
        Path p = dir.resolve(location).normalize();
        if (Path.of(location).isAbsolute() || !p.startsWith(dir)) {
            throw new ModelFormatException(file, where + ": external data location '" + location + "' must be a relative path inside the model's folder");
        }
        MemorySegment ext = external.get(location);
        if (ext == null) {
            if (!Files.isRegularFile(p)) throw new ModelFormatException(file, where + ": external data file " + p + " does not exist");
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
                ext = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), graph.arena());
            }
            external.put(location, ext);
        }
        if (length < 0) length = ext.byteSize() - offset;
        if (offset < 0 || offset > ext.byteSize() || length > ext.byteSize() - offset) {
            throw new ModelFormatException(file, where + ": external data [" + offset + ", +" + length + ") is outside " + p + " (" + ext.byteSize() + " bytes)");
        }
        if (length != bytes) {
            throw new ModelFormatException(file, where + ": external data holds " + length + " bytes, " + onnxTypeName(t.getDataType()) + t.getDimsList() + " needs " + bytes);
        }
        MemorySegment s = ext.asSlice(offset, length);
        if (s.address() % dt.byteSize() == 0) return TensorData.wrap(s, dt, shape);
        TensorData c = TensorData.allocate(graph.arena(), dt, shape);
        c.segment().copyFrom(s);
        return c;
    }

    /** The ONNX ops a model file uses, with counts (for reports; no import). */
    public static Map<String, Integer> opHistogram(Path file) throws IOException {
        ModelProto m;
        try {
            m = ModelProto.parseFrom(Files.readAllBytes(file));
        } catch (InvalidProtocolBufferException e) {
            throw new ModelFormatException(file, "not a valid ONNX protobuf: " + e.getMessage());
        }
        Map<String, Integer> h = new java.util.TreeMap<>();
        for (NodeProto n : m.getGraph().getNodeList()) h.merge(n.getOpType(), 1, Integer::sum);
        return h;
    }
}
