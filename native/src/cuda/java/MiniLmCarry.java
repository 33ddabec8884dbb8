import dev.panatron.Embedder;
import dev.panatron.graph.BertWeights;

import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Here (no GPU): writes a small copy of all-MiniLM-L6-v2 for the device call, whose carried
 * files must fit in 64 MiB with the JRE: an HF folder (config.json, tokenizer.json,
 * model.safetensors) with every weight rounded to bf16 (what the GPU encoder runs anyway) and the
 * word-embedding rows zeroed except those of the special tokens and of the texts given (so the
 * file gzips to about 20 MB). Results on those texts are the model's (bf16-rounded weights);
 * other token ids embed as zero vectors (fine for timing, not for quality).
 *
 * <pre>java -cp CLASSES MiniLmCarry MODEL_DIR_OR_NAME OUT_DIR [TEXT ...]</pre>
 * Without TEXTs, the texts of dev.panatron.cuda.CudaEmbedderTest (when on the class path).
 */
public final class MiniLmCarry {
    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[1]);
        Files.createDirectories(out);
        List<String> texts = new ArrayList<>(List.of(args).subList(2, args.length));
        if (texts.isEmpty()) {
            var f = Class.forName("dev.panatron.cuda.CudaEmbedderTest").getDeclaredField("TEXTS");
            f.setAccessible(true);
            @SuppressWarnings("unchecked") List<String> t = (List<String>) f.get(null);
            texts.addAll(t);
        }
        try (Embedder e = Embedder.builder(args[0]).threads(1).build()) {
            BertWeights w = e.encoderWeights();
            TreeSet<Integer> keep = new TreeSet<>(List.of(0, 100, 101, 102, 103));
            for (String t : texts) for (int id : e.tokenizer().withoutPadding().encode(t).ids()) keep.add(id);
            int h = w.hidden();
            float[] word = new float[w.word().length];
            for (int id : keep) System.arraycopy(w.word(), id * h, word, id * h, h);
            Map<String, float[]> m = new LinkedHashMap<>();
            Map<String, long[]> shapes = new LinkedHashMap<>();
            put(m, shapes, "embeddings.word_embeddings.weight", word, w.vocab(), h);
            put(m, shapes, "embeddings.position_embeddings.weight", w.position(), w.positions(), h);
            put(m, shapes, "embeddings.token_type_embeddings.weight", w.tokenType(), w.types(), h);
            put(m, shapes, "embeddings.LayerNorm.weight", w.embGamma(), h);
            put(m, shapes, "embeddings.LayerNorm.bias", w.embBeta(), h);
            int f = w.intermediate();
            for (int l = 0; l < w.layers().size(); l++) {
                var x = w.layers().get(l);
                String p = "encoder.layer." + l + ".";
                put(m, shapes, p + "attention.self.query.weight", x.wq(), h, h);
                put(m, shapes, p + "attention.self.query.bias", x.bq(), h);
                put(m, shapes, p + "attention.self.key.weight", x.wk(), h, h);
                put(m, shapes, p + "attention.self.key.bias", x.bk(), h);
                put(m, shapes, p + "attention.self.value.weight", x.wv(), h, h);
                put(m, shapes, p + "attention.self.value.bias", x.bv(), h);
                put(m, shapes, p + "attention.output.dense.weight", x.wo(), h, h);
                put(m, shapes, p + "attention.output.dense.bias", x.bo(), h);
                put(m, shapes, p + "attention.output.LayerNorm.weight", x.ln1Gamma(), h);
                put(m, shapes, p + "attention.output.LayerNorm.bias", x.ln1Beta(), h);
                put(m, shapes, p + "intermediate.dense.weight", x.w1(), f, h);
                put(m, shapes, p + "intermediate.dense.bias", x.b1(), f);
                put(m, shapes, p + "output.dense.weight", x.w2(), h, f);
                put(m, shapes, p + "output.dense.bias", x.b2(), h);
                put(m, shapes, p + "output.LayerNorm.weight", x.ln2Gamma(), h);
                put(m, shapes, p + "output.LayerNorm.bias", x.ln2Beta(), h);
            }
            StringBuilder hdr = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\",\"note\":\"all-MiniLM-L6-v2, bf16, word rows kept: "
                    + keep.size() + "\"}");
            long off = 0;
            for (var en : m.entrySet()) {
                long n = en.getValue().length * 2L;
                StringBuilder sh = new StringBuilder();
                for (long d : shapes.get(en.getKey())) sh.append(sh.isEmpty() ? "" : ",").append(d);
                hdr.append(",\"").append(en.getKey()).append("\":{\"dtype\":\"BF16\",\"shape\":[").append(sh).append("],\"data_offsets\":[")
                        .append(off).append(',').append(off + n).append("]}");
                off += n;
            }
            hdr.append('}');
            while ((hdr.length() + 8) % 8 != 0) hdr.append(' ');
            byte[] hb = hdr.toString().getBytes(StandardCharsets.UTF_8);
            try (OutputStream os = new java.io.BufferedOutputStream(Files.newOutputStream(out.resolve("model.safetensors")), 1 << 20)) {
                os.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(hb.length).array());
                os.write(hb);
                for (float[] v : m.values()) {
                    ByteBuffer bb = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
                    for (float x : v) bb.putShort(bf16(x));
                    os.write(bb.array());
                }
            }
            Files.writeString(out.resolve("config.json"), String.format(java.util.Locale.ROOT, """
                    {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": %d, "num_hidden_layers": %d,
                     "num_attention_heads": %d, "intermediate_size": %d, "hidden_act": "gelu", "layer_norm_eps": %s,
                     "max_position_embeddings": %d, "type_vocab_size": %d, "vocab_size": %d, "pad_token_id": 0}
                    """, h, w.layers().size(), w.heads(), f, Float.toString(w.eps()), w.positions(), w.types(), w.vocab()));
            Path tok = e.modelPath().resolveSibling("tokenizer.json");
            System.err.println("kept " + keep.size() + " word rows; header " + hb.length + " bytes; weights " + off + " bytes; tokenizer " + tok);
        }
    }

    private static void put(Map<String, float[]> m, Map<String, long[]> s, String name, float[] v, long... shape) {
        m.put(name, v);
        s.put(name, shape);
    }

    /** Round to nearest even. */
    private static short bf16(float x) {
        int b = Float.floatToRawIntBits(x);
        if (Float.isNaN(x)) return (short) 0x7fc0;
        b += 0x7fff + ((b >>> 16) & 1);
        return (short) (b >>> 16);
    }
}
