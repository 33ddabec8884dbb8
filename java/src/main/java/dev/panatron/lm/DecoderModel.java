package dev.panatron.lm;

import dev.panatron.Precision;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.KvCache;
import dev.panatron.Tensor;
import dev.panatron.io.HfConfig;
import dev.panatron.io.ModelFormatException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A decoder-only LM (GPT-2, Llama, Mistral, Qwen2) loaded from a HF directory
 * ({@code config.json} + safetensors, single or sharded). Weights are views of the memory-mapped
 * files where the dtype already matches, otherwise converted once at load. The forward pass
 * itself lives in {@link Session}, which owns the KV cache and the activation buffers.
 */
public final class DecoderModel implements AutoCloseable {
    /** One transformer block's weights. GPT-2 uses qkv/ln*Bias/fc; Llama uses q/k/v and gate/up. */
    static final class Layer {
        Tensor norm1, norm1Bias, norm2, norm2Bias;
        Linear qkv, q, k, v, o, fc, gate, up, down;
    }

    final DecoderConfig cfg;
    final Precision precision;
    final Tensor tokenEmbedding;   // [V, H]
    final Tensor positionEmbedding; // GPT-2 [P, H], else null
    final Layer[] layers;
    final Tensor finalNorm, finalNormBias;
    final Linear lmHead;
    final Context ctx;
    final int maxRows;
    private final Arena arena;
    private final WeightFiles files;
    private Path dir;

    private DecoderModel(DecoderConfig cfg, Precision precision, WeightFiles files, Arena arena, Context ctx, int maxRows) {
        this.cfg = cfg;
        this.precision = precision;
        this.files = files;
        this.arena = arena;
        this.ctx = ctx;
        this.maxRows = maxRows;
        int h = cfg.hidden(), nl = cfg.layers(), hd = cfg.headDim(), qd = cfg.heads() * hd, kvd = cfg.kvHeads() * hd, im = cfg.intermediate();
        layers = new Layer[nl];
        if (cfg.arch() == DecoderConfig.Arch.GPT2) {
            String p = files.contains("transformer.wte.weight") ? "transformer." : "";
            tokenEmbedding = files.take(p + "wte.weight", cfg.vocab(), h);
            positionEmbedding = files.take(p + "wpe.weight", cfg.maxPositions(), h);
            for (int i = 0; i < nl; i++) {
                String n = p + "h." + i + ".";
                Layer l = new Layer();
                l.norm1 = f32(files.take(n + "ln_1.weight", h));
                l.norm1Bias = f32(files.take(n + "ln_1.bias", h));
                l.qkv = lin(files.take(n + "attn.c_attn.weight", h, 3L * h), f32(files.take(n + "attn.c_attn.bias", 3L * h)), true);
                l.o = lin(files.take(n + "attn.c_proj.weight", h, h), f32(files.take(n + "attn.c_proj.bias", h)), true);
                l.norm2 = f32(files.take(n + "ln_2.weight", h));
                l.norm2Bias = f32(files.take(n + "ln_2.bias", h));
                l.fc = lin(files.take(n + "mlp.c_fc.weight", h, im), f32(files.take(n + "mlp.c_fc.bias", im)), true);
                l.down = lin(files.take(n + "mlp.c_proj.weight", im, h), f32(files.take(n + "mlp.c_proj.bias", h)), true);
                layers[i] = l;
            }
            finalNorm = f32(files.take(p + "ln_f.weight", h));
            finalNormBias = f32(files.take(p + "ln_f.bias", h));
            // GPT-2 always ties; a stored lm_head.weight is taken and must equal the shape
            lmHead = lin(files.contains("lm_head.weight") ? files.take("lm_head.weight", cfg.vocab(), h) : tokenEmbedding, null, false);
            files.checkAllTaken(s -> s.endsWith(".attn.bias") || s.endsWith(".attn.masked_bias"));
        } else {
            tokenEmbedding = files.take("model.embed_tokens.weight", cfg.vocab(), h);
            positionEmbedding = null;
            for (int i = 0; i < nl; i++) {
                String n = "model.layers." + i + ".";
                Layer l = new Layer();
                l.norm1 = f32(files.take(n + "input_layernorm.weight", h));
                boolean b = cfg.qkvBias();
                l.q = lin(files.take(n + "self_attn.q_proj.weight", qd, h), b ? f32(files.take(n + "self_attn.q_proj.bias", qd)) : null, false);
                l.k = lin(files.take(n + "self_attn.k_proj.weight", kvd, h), b ? f32(files.take(n + "self_attn.k_proj.bias", kvd)) : null, false);
                l.v = lin(files.take(n + "self_attn.v_proj.weight", kvd, h), b ? f32(files.take(n + "self_attn.v_proj.bias", kvd)) : null, false);
                l.o = lin(files.take(n + "self_attn.o_proj.weight", h, qd), null, false);
                l.norm2 = f32(files.take(n + "post_attention_layernorm.weight", h));
                l.gate = lin(files.take(n + "mlp.gate_proj.weight", im, h), null, false);
                l.up = lin(files.take(n + "mlp.up_proj.weight", im, h), null, false);
                l.down = lin(files.take(n + "mlp.down_proj.weight", h, im), null, false);
                layers[i] = l;
            }
            finalNorm = f32(files.take("model.norm.weight", h));
            finalNormBias = null;
            Tensor head = cfg.tied() && !files.contains("lm_head.weight") ? tokenEmbedding : files.take("lm_head.weight", cfg.vocab(), h);
            lmHead = lin(head, null, false);
            files.checkAllTaken(s -> s.endsWith("rotary_emb.inv_freq"));
        }
    }

    /**
     * Loads {@code dir} (config.json + safetensors) for up to {@code maxRows} tokens per forward
     * call (prefill chunk and decode batch).
     *
     * @throws IOException          when a file cannot be read
     * @throws ModelFormatException for an unknown architecture, missing or extra tensors, shapes that
     *                              contradict the config, unsupported options
     */
    public static DecoderModel load(Path dir, Precision precision, Context ctx, int maxRows) throws IOException {
        if (maxRows < 1) throw new IllegalArgumentException("maxRows " + maxRows + " must be >= 1");
        Path cfgFile = dir.resolve("config.json");
        if (!Files.isRegularFile(cfgFile)) throw new ModelFormatException(dir, "no config.json");
        DecoderConfig cfg = DecoderConfig.from(HfConfig.read(cfgFile));
        WeightFiles files = WeightFiles.open(dir);
        Arena arena = Arena.ofShared();
        try {
            DecoderModel m = new DecoderModel(cfg, precision, files, arena, ctx, maxRows);
            m.dir = dir;
            return m;
        } catch (RuntimeException e) {
            arena.close();
            files.close();
            throw e;
        }
    }

    /** {@link #load(Path, Precision, Context, int)} on the shared context with 64 rows. */
    public static DecoderModel load(Path dir, Precision precision) throws IOException {
        return load(dir, precision, Context.shared(), 64);
    }

    public DecoderConfig config() { return cfg; }

    public Precision precision() { return precision; }

    /** The directory the model was loaded from. */
    public Path directory() { return dir; }

    /**
     * The ids that end generation: {@code eos_token_id} (a number or a list) of the directory's
     * {@code generation_config.json} when it has one, else config.json's; empty when neither says.
     *
     * @throws IOException          when generation_config.json exists but cannot be read
     * @throws ModelFormatException when it is not valid JSON or names an id outside the vocabulary
     */
    public int[] stopTokens() throws IOException { return stopTokens(dir, cfg); }

    /** {@link #stopTokens()} of a model directory with config {@code cfg} (also used by {@link CudaDecoder}). */
    static int[] stopTokens(Path dir, DecoderConfig cfg) throws IOException {
        Path gen = dir.resolve("generation_config.json");
        if (Files.isRegularFile(gen)) {
            com.fasterxml.jackson.databind.JsonNode e = HfConfig.read(gen).raw().path("eos_token_id");
            int[] ids = null;
            if (e.isIntegralNumber()) ids = new int[] {e.asInt()};
            else if (e.isArray()) {
                ids = new int[e.size()];
                for (int i = 0; i < ids.length; i++) {
                    if (!e.get(i).isIntegralNumber()) throw new ModelFormatException(gen, "eos_token_id entry " + e.get(i) + " is not a token id");
                    ids[i] = e.get(i).asInt();
                }
            }
            if (ids != null) {
                for (int id : ids) {
                    if (id < 0 || id >= cfg.vocab()) throw new ModelFormatException(gen, "eos_token_id " + id + " is outside the vocabulary 0.." + (cfg.vocab() - 1));
                }
                return ids;
            }
        }
        return cfg.eosId() >= 0 && cfg.eosId() < cfg.vocab() ? new int[] {cfg.eosId()} : new int[0];
    }

    /**
     * The directory's {@code tokenizer.json} as a byte-level (or SentencePiece-style) BPE tokenizer.
     *
     * @throws java.nio.file.NoSuchFileException               when the directory has no tokenizer.json
     * @throws dev.panatron.tokenize.TokenizerFormatException when it is not a BPE tokenizer.json we read
     * @throws IOException                                     when it cannot be read
     */
    public dev.panatron.tokenize.BpeTokenizer tokenizer() throws IOException { return tokenizer(dir); }

    /** {@link #tokenizer()} of a model directory (also used by {@link CudaDecoder}). */
    static dev.panatron.tokenize.BpeTokenizer tokenizer(Path dir) throws IOException {
        Path f = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(f)) throw new java.nio.file.NoSuchFileException(f.toString(), null, "the model directory has no tokenizer.json (give token ids instead)");
        dev.panatron.tokenize.Tokenizer t = dev.panatron.tokenize.Tokenizer.fromFile(f);
        if (!(t instanceof dev.panatron.tokenize.BpeTokenizer b)) {
            throw new dev.panatron.tokenize.TokenizerFormatException(f + ": a decoder LM needs a BPE tokenizer, this file has another model type");
        }
        return b;
    }

    /** Bytes of weights one decode step reads (all linears + lm_head), for the bandwidth bound. */
    public long weightBytesPerToken() {
        long s = lmHead.weightBytes();
        for (Layer l : layers) {
            for (Linear x : new Linear[] {l.qkv, l.q, l.k, l.v, l.o, l.fc, l.gate, l.up, l.down}) if (x != null) s += x.weightBytes();
        }
        return s;
    }

    /**
     * A new session with its own KV cache for {@code batch} sequences of up to {@code maxSeq}
     * tokens each (at most the model's max positions).
     */
    public Session newSession(int batch, int maxSeq) {
        return new Session(this, batch, maxSeq);
    }

    /** Logits [T][V] at every position of {@code ids} (fp32 reference path, a fresh session). */
    public float[][] forwardAll(int[] ids) {
        try (Session s = newSession(1, Math.min(cfg.maxPositions(), Math.max(1, ids.length)))) {
            return s.prefillAll(0, ids);
        }
    }

    KvCache.Rope kRope() {
        return cfg.ropeInvFreq() == null ? null : new KvCache.Rope(KvCache.Rope.Mode.NEOX, 0, 1f, 0f, cfg.ropeInvFreq());
    }

    private Tensor f32(Tensor t) {
        if (t.dtype() == DType.F32) return t;
        Tensor c = Tensor.allocate(arena, DType.F32, t.shape());
        Kernels.convert(ctx, t, c);
        return c;
    }

    private Linear lin(Tensor w, Tensor bias, boolean conv1d) {
        return Linear.create(w, bias, conv1d, precision, arena, ctx, maxRows);
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) arena.close();
        files.close();
    }
}
