package dev.panatron.lm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panatron.DType;
import dev.panatron.Tensor;
import dev.panatron.io.ModelFormatException;
import dev.panatron.io.Safetensors;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * The safetensors of a model directory: {@code model.safetensors}, or the shards listed by
 * {@code model.safetensors.index.json}. Tensors are taken by name with the shape the config
 * implies; {@link #checkAllTaken} then reports tensors nobody asked for.
 */
final class WeightFiles implements AutoCloseable {
    private final Path dir;
    private final List<Safetensors> files = new ArrayList<>();
    private final Map<String, Safetensors> byName = new LinkedHashMap<>();
    private final TreeSet<String> taken = new TreeSet<>();

    private WeightFiles(Path dir) { this.dir = dir; }

    static WeightFiles open(Path dir) throws IOException {
        WeightFiles w = new WeightFiles(dir);
        try {
            Path single = dir.resolve("model.safetensors"), index = dir.resolve("model.safetensors.index.json");
            if (Files.isRegularFile(index)) {
                JsonNode map = new ObjectMapper().readTree(index.toFile()).path("weight_map");
                if (!map.isObject()) throw new ModelFormatException(index, "no weight_map object");
                Map<String, Safetensors> opened = new LinkedHashMap<>();
                for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    String file = e.getValue().asText();
                    if (file.contains("/") || file.contains("\\") || file.startsWith(".")) throw new ModelFormatException(index, "shard name '" + file + "' is not a plain file name");
                    Safetensors st = opened.get(file);
                    if (st == null) {
                        st = Safetensors.open(dir.resolve(file));
                        opened.put(file, st);
                        w.files.add(st);
                    }
                    if (!st.contains(e.getKey())) throw new ModelFormatException(dir.resolve(file), "has no tensor '" + e.getKey() + "' although the index names it");
                    w.byName.put(e.getKey(), st);
                }
                for (Safetensors st : w.files) {
                    for (String n : st.names()) {
                        if (!w.byName.containsKey(n)) throw new ModelFormatException(st.path(), "tensor '" + n + "' is not in " + index.getFileName());
                    }
                }
            } else if (Files.isRegularFile(single)) {
                Safetensors st = Safetensors.open(single);
                w.files.add(st);
                for (String n : st.names()) w.byName.put(n, st);
            } else {
                throw new ModelFormatException(dir, "no model.safetensors or model.safetensors.index.json");
            }
            return w;
        } catch (IOException | RuntimeException e) {
            w.close();
            throw e;
        }
    }

    boolean contains(String name) { return byName.containsKey(name); }

    /**
     * The tensor {@code name} (a view of the mapping), checked against {@code shape}; f32, bf16 or f16.
     *
     * @throws ModelFormatException when it is missing, has another shape or a non-float dtype
     */
    Tensor take(String name, long... shape) {
        Safetensors st = byName.get(name);
        if (st == null) throw new ModelFormatException(dir, "missing tensor '" + name + "' (expected shape " + Arrays.toString(shape) + ")");
        Safetensors.Entry e = st.entry(name);
        if (!Arrays.equals(e.shape(), shape)) {
            throw new ModelFormatException(st.path(), "tensor '" + name + "' has shape " + Arrays.toString(e.shape()) + " but the config implies " + Arrays.toString(shape));
        }
        DType dt = Safetensors.dtypeOf(e.dtype());
        if (dt != DType.F32 && dt != DType.BF16 && dt != DType.F16) {
            throw new ModelFormatException(st.path(), "tensor '" + name + "' has dtype " + e.dtype() + "; F32, BF16 or F16 expected");
        }
        taken.add(name);
        return st.tensor(name).asTensor();
    }

    /** @throws ModelFormatException naming tensors that were never taken (apart from {@code ignorable} ones) */
    void checkAllTaken(Predicate<String> ignorable) {
        List<String> extra = new ArrayList<>();
        for (String n : byName.keySet()) if (!taken.contains(n) && !ignorable.test(n)) extra.add(n);
        if (!extra.isEmpty()) {
            throw new ModelFormatException(dir, extra.size() + " unexpected tensor(s) for this config: "
                    + String.join(", ", extra.subList(0, Math.min(8, extra.size()))) + (extra.size() > 8 ? ", ..." : ""));
        }
    }

    @Override
    public void close() {
        for (Safetensors s : files) s.close();
    }
}
