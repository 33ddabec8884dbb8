package dev.panatron.lm;

import dev.panatron.DType;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.Tensor;
import dev.panatron.cuda.CudaContext;
import dev.panatron.cuda.CudaDecoderOps;
import dev.panatron.cuda.CudaDevice;
import dev.panatron.cuda.DeviceTensor;
import dev.panatron.io.HfConfig;
import dev.panatron.io.ModelFormatException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A decoder LM (GPT-2, Llama, Mistral, Qwen2) whose whole forward pass runs on a CUDA device,
 * with the state of {@code batch} sequences. Weights are uploaded once in bf16 (GEMMs through
 * cuBLASLt with f32 accumulation; q/k/v and gate/up fused into one GEMM each), the residual
 * stream stays f32, the KV caches {@code [batch, Hkv, maxSeq, D]} bf16 are preallocated. Prefill
 * attends through flash attention (causal, bottom-right aligned over the cached rows), decode
 * through flash decode. The decode step is captured once as a CUDA graph and replayed: its
 * inputs (token ids, positions, cache lengths) live in device memory, greedy argmax on the
 * device writes the next ids and advances the positions, so consecutive steps need no host
 * round trip. Other samplers copy the logits back.
 *
 * <p>Not thread-safe. Head dims 64, 80, 96, 128 and 256 (the flash kernels'); compute capability
 * 8.0+; a sliding window shorter than maxSeq is not supported.
 */
public final class CudaDecoder implements AutoCloseable {
    private static final int HIST_CHUNK = 16;

    private static final class Layer {
        DeviceTensor n1, n1b, n2, n2b, wqkv, bqkv, wo, bo, wup, bup, wdown, bdown;
    }

    private final CudaContext ctx;
    private final DecoderConfig c;
    private final Path dir;
    private final int batch, maxSeq, maxPrefill, rows;
    private final boolean gpt2;
    private final List<DeviceTensor> owned = new ArrayList<>();
    private final DeviceTensor tokEmb, posEmb, finalG, finalB, lmHead, invFreq;
    private final Layer[] layers;
    private final DeviceTensor[] kCache, vCache;
    private final DeviceTensor ids, pos, seqlens, pids, ppos, hist;
    private final DeviceTensor x, h, qkv, att, o, mlp, act, d, logits;
    private final int[] len;
    private final Map<Integer, Views> views = new HashMap<>();
    private CudaDecoderOps.Graph graph;
    private boolean useGraph = true;
    private boolean useGemv = true;
    private boolean fuseNorms = false;
    private boolean closed;

    private CudaDecoder(CudaContext ctx, DecoderConfig cfg, Path dir, WeightFiles files, int batch, int maxSeq, int maxPrefill) {
        this.ctx = ctx;
        this.c = cfg;
        this.dir = dir;
        this.batch = batch;
        this.maxSeq = maxSeq;
        this.maxPrefill = maxPrefill;
        this.rows = Math.max(batch, maxPrefill);
        this.gpt2 = cfg.arch() == DecoderConfig.Arch.GPT2;
        int hd = cfg.headDim(), hq = cfg.heads(), hkv = cfg.kvHeads(), hs = cfg.hidden(), im = cfg.intermediate(), nl = cfg.layers();
        long qd = (long) hq * hd, kvd = (long) hkv * hd;
        layers = new Layer[nl];
        if (gpt2) {
            String p = files.contains("transformer.wte.weight") ? "transformer." : "";
            float[] wte = files.take(p + "wte.weight", cfg.vocab(), hs).toFloatArray();
            tokEmb = bf16(wte, cfg.vocab(), hs);
            posEmb = bf16(files.take(p + "wpe.weight", cfg.maxPositions(), hs).toFloatArray(), cfg.maxPositions(), hs);
            for (int i = 0; i < nl; i++) {
                String n = p + "h." + i + ".";
                Layer l = new Layer();
                l.n1 = f32(files.take(n + "ln_1.weight", hs).toFloatArray(), hs);
                l.n1b = f32(files.take(n + "ln_1.bias", hs).toFloatArray(), hs);
                // Conv1D weights are [in, out]: transposed once to the Linear layout [out, in]
                l.wqkv = bf16(transpose(files.take(n + "attn.c_attn.weight", hs, 3L * hs).toFloatArray(), hs, 3 * hs), 3L * hs, hs);
                l.bqkv = bf16(files.take(n + "attn.c_attn.bias", 3L * hs).toFloatArray(), 3L * hs);
                l.wo = bf16(transpose(files.take(n + "attn.c_proj.weight", hs, hs).toFloatArray(), hs, hs), hs, hs);
                l.bo = bf16(files.take(n + "attn.c_proj.bias", hs).toFloatArray(), hs);
                l.n2 = f32(files.take(n + "ln_2.weight", hs).toFloatArray(), hs);
                l.n2b = f32(files.take(n + "ln_2.bias", hs).toFloatArray(), hs);
                l.wup = bf16(transpose(files.take(n + "mlp.c_fc.weight", hs, im).toFloatArray(), hs, im), im, hs);
                l.bup = bf16(files.take(n + "mlp.c_fc.bias", im).toFloatArray(), im);
                l.wdown = bf16(transpose(files.take(n + "mlp.c_proj.weight", im, hs).toFloatArray(), im, hs), hs, im);
                l.bdown = bf16(files.take(n + "mlp.c_proj.bias", hs).toFloatArray(), hs);
                layers[i] = l;
            }
            finalG = f32(files.take(p + "ln_f.weight", hs).toFloatArray(), hs);
            finalB = f32(files.take(p + "ln_f.bias", hs).toFloatArray(), hs);
            lmHead = files.contains("lm_head.weight") ? bf16(files.take("lm_head.weight", cfg.vocab(), hs).toFloatArray(), cfg.vocab(), hs) : tokEmb;
            files.checkAllTaken(s -> s.endsWith(".attn.bias") || s.endsWith(".attn.masked_bias"));
            invFreq = null;
        } else {
            tokEmb = bf16(files.take("model.embed_tokens.weight", cfg.vocab(), hs).toFloatArray(), cfg.vocab(), hs);
            posEmb = null;
            boolean b = cfg.qkvBias();
            for (int i = 0; i < nl; i++) {
                String n = "model.layers." + i + ".";
                Layer l = new Layer();
                l.n1 = f32(files.take(n + "input_layernorm.weight", hs).toFloatArray(), hs);
                l.wqkv = bf16(concat(files.take(n + "self_attn.q_proj.weight", qd, hs).toFloatArray(), files.take(n + "self_attn.k_proj.weight", kvd, hs).toFloatArray(),
                        files.take(n + "self_attn.v_proj.weight", kvd, hs).toFloatArray()), qd + 2 * kvd, hs);
                if (b) {
                    l.bqkv = bf16(concat(files.take(n + "self_attn.q_proj.bias", qd).toFloatArray(), files.take(n + "self_attn.k_proj.bias", kvd).toFloatArray(),
                            files.take(n + "self_attn.v_proj.bias", kvd).toFloatArray()), qd + 2 * kvd);
                }
                l.wo = bf16(files.take(n + "self_attn.o_proj.weight", hs, qd).toFloatArray(), hs, qd);
                l.n2 = f32(files.take(n + "post_attention_layernorm.weight", hs).toFloatArray(), hs);
                l.wup = bf16(concat(files.take(n + "mlp.gate_proj.weight", im, hs).toFloatArray(), files.take(n + "mlp.up_proj.weight", im, hs).toFloatArray()),
                        2L * im, hs);
                l.wdown = bf16(files.take(n + "mlp.down_proj.weight", hs, im).toFloatArray(), hs, im);
                layers[i] = l;
            }
            finalG = f32(files.take("model.norm.weight", hs).toFloatArray(), hs);
            finalB = null;
            lmHead = cfg.tied() && !files.contains("lm_head.weight") ? tokEmb
                    : bf16(files.take("lm_head.weight", cfg.vocab(), hs).toFloatArray(), cfg.vocab(), hs);
            files.checkAllTaken(s -> s.endsWith("rotary_emb.inv_freq"));
            invFreq = f32(cfg.ropeInvFreq(), hd / 2);
        }
        kCache = new DeviceTensor[nl];
        vCache = new DeviceTensor[nl];
        for (int i = 0; i < nl; i++) {
            kCache[i] = alloc(DType.BF16, batch, hkv, maxSeq, hd);
            vCache[i] = alloc(DType.BF16, batch, hkv, maxSeq, hd);
            kCache[i].fillBytes(0);
            vCache[i].fillBytes(0);
        }
        ids = alloc(DType.I32, batch);
        pos = alloc(DType.I32, batch);
        seqlens = alloc(DType.I32, batch);
        pids = alloc(DType.I32, maxPrefill);
        ppos = alloc(DType.I32, maxPrefill);
        hist = alloc(DType.I32, HIST_CHUNK, batch);
        x = alloc(DType.F32, rows, hs);
        h = alloc(DType.BF16, rows, hs);
        qkv = alloc(DType.BF16, rows, hq + 2L * hkv, hd);
        att = alloc(DType.BF16, rows, qd);
        o = alloc(DType.BF16, rows, hs);
        mlp = alloc(DType.BF16, rows, gpt2 ? im : 2L * im);
        act = gpt2 ? null : alloc(DType.BF16, rows, im);
        d = alloc(DType.BF16, rows, hs);
        logits = alloc(DType.F32, rows, cfg.vocab());
        len = new int[batch];
        reset();
    }

    /**
     * Loads {@code dir} (config.json + safetensors) onto the context's device for {@code batch}
     * sequences of up to {@code maxSeq} tokens, prefilling at most {@code maxPrefill} tokens per
     * forward call.
     *
     * @throws IOException              when a file cannot be read
     * @throws ModelFormatException     for an unknown architecture, missing tensors or bad shapes
     * @throws IllegalArgumentException for sizes out of range, a head dim the flash kernels do not
     *                                  have, a sliding window shorter than maxSeq, or a device
     *                                  older than compute capability 8.0
     */
    public static CudaDecoder load(Path dir, CudaContext ctx, int batch, int maxSeq, int maxPrefill) throws IOException {
        java.util.Objects.requireNonNull(ctx, "ctx");
        if (!ctx.isOpen()) throw new IllegalStateException("CUDA context is closed");
        CudaDevice dev = ctx.device();
        if (dev.ccMajor() < 8) {
            throw new IllegalArgumentException("the GPU decoder needs compute capability 8.0+ (bf16 tensor cores); " + dev.name() + " is "
                    + dev.ccMajor() + "." + dev.ccMinor());
        }
        Path cfgFile = dir.resolve("config.json");
        if (!Files.isRegularFile(cfgFile)) throw new ModelFormatException(dir, "no config.json");
        DecoderConfig cfg = DecoderConfig.from(HfConfig.read(cfgFile));
        if (batch < 1 || batch > 4096) throw new IllegalArgumentException("batch " + batch + " must be in 1..4096");
        if (maxSeq < 1 || maxSeq > cfg.maxPositions()) {
            throw new IllegalArgumentException("maxSeq " + maxSeq + " must be in 1.." + cfg.maxPositions() + " (max_position_embeddings)");
        }
        if (maxPrefill < 1 || maxPrefill > 65535) throw new IllegalArgumentException("maxPrefill " + maxPrefill + " must be in 1..65535");
        int hd = cfg.headDim();
        if (hd != 64 && hd != 80 && hd != 96 && hd != 128 && hd != 256) {
            throw new IllegalArgumentException("head dim " + hd + " of " + dir + " is not supported on the GPU (flash kernels: 64, 80, 96, 128, 256)");
        }
        if (cfg.slidingWindow() > 0 && cfg.slidingWindow() < maxSeq) {
            throw new IllegalArgumentException("sliding_window " + cfg.slidingWindow() + " shorter than maxSeq " + maxSeq
                    + " is not supported on the GPU (use maxSeq <= the window, or --device cpu)");
        }
        try (WeightFiles files = WeightFiles.open(dir)) {
            CudaDecoder dec = null;
            try {
                dec = new CudaDecoder(ctx, cfg, dir, files, batch, maxSeq, maxPrefill);
                ctx.synchronize();
                return dec;
            } catch (RuntimeException e) {
                if (dec != null) dec.close();
                throw e;
            }
        }
    }

    public DecoderConfig config() { return c; }

    public int batch() { return batch; }

    public int maxSeq() { return maxSeq; }

    /** Tokens held for sequence {@code b}. */
    public int length(int b) { return len[b]; }

    /** The directory the model was loaded from. */
    public Path directory() { return dir; }

    /**
     * The ids that end generation (generation_config.json's eos_token_id, else config.json's), as
     * {@link DecoderModel#stopTokens()}.
     *
     * @throws IOException when generation_config.json exists but cannot be read
     */
    public int[] stopTokens() throws IOException { return DecoderModel.stopTokens(dir, c); }

    /** {@link #stopTokens()} of a model directory before loading it. */
    public static int[] stopTokens(Path dir, DecoderConfig cfg) throws IOException { return DecoderModel.stopTokens(dir, cfg); }

    /** {@link #tokenizer()} of a model directory before loading it. */
    public static dev.panatron.tokenize.BpeTokenizer tokenizer(Path dir) throws IOException { return DecoderModel.tokenizer(dir); }

    /**
     * The directory's tokenizer.json, as {@link DecoderModel#tokenizer()}.
     *
     * @throws IOException when there is none or it cannot be read
     */
    public dev.panatron.tokenize.BpeTokenizer tokenizer() throws IOException { return tokenizer(dir); }

    /** Replay the decode step as a CUDA graph (default) or enqueue its kernels one by one. */
    public void setUseGraph(boolean on) { useGraph = on; }

    /**
     * Linears of up to 8 rows (decode at batch <= 8) through the memory-bound GEMV kernel
     * (default), or through cuBLASLt like larger batches. Changing it drops the captured graph.
     */
    public void setUseGemv(boolean on) {
        if (on != useGemv && graph != null) {
            graph.close();
            graph = null;
        }
        useGemv = on;
    }

    /**
     * With the GEMV path (batch <= 8): fuse each norm into the GEMV after it (row statistics
     * recomputed per block) and each residual add into the GEMV before it. 25 fewer kernels per
     * GPT-2 step: faster when the step is enqueued op by op, 3% slower as a CUDA graph on the H100
     * (the per-block statistics prologue costs more than the launches it saves), so off by
     * default. Changing it drops the captured graph.
     */
    public void setFuseNorms(boolean on) {
        if (on != fuseNorms && graph != null) {
            graph.close();
            graph = null;
        }
        fuseNorms = on;
    }

    private void linear(DeviceTensor a, DeviceTensor w, DeviceTensor bias, DeviceTensor c, Activation act) {
        if (useGemv && a.dim(0) <= 8 && a.dim(1) % 8 == 0) CudaDecoderOps.gemv(ctx, a, w, bias, c, act);
        else ctx.matmul(a, w, bias, c, act == Activation.NONE ? MatmulOptions.LINEAR : MatmulOptions.LINEAR.withActivation(act));
    }

    /** Bytes of weights one decode step reads (every GEMM weight + lm_head), for the bandwidth bound. */
    public long weightBytesPerToken() {
        long s = lmHead.numel() * 2;
        for (Layer l : layers) s += 2 * (l.wqkv.numel() + l.wo.numel() + l.wup.numel() + l.wdown.numel());
        return s;
    }

    /** Forgets every sequence (memory kept; the cache lengths on the device are zeroed). */
    public void reset() {
        checkOpen();
        Arrays.fill(len, 0);
        seqlens.fillBytes(0);
        pos.fillBytes(0);
        ids.fillBytes(0);
    }

    // ---------------------------------------------------------------- views

    private final class Views {
        final DeviceTensor x, h, qkv2, q3, q4, att, att3, att4, o, mlp, act, d, logits, xLast, hLast, dLast, logitsLast;

        Views(int r) {
            x = CudaDecoder.this.x.slice(0, 0, r);
            h = CudaDecoder.this.h.slice(0, 0, r);
            DeviceTensor q = CudaDecoder.this.qkv.slice(0, 0, r);
            qkv2 = q.reshape(r, q.dim(1) * q.dim(2));
            q3 = q.slice(1, 0, c.heads());
            q4 = q.reshape(1, r, q.dim(1), q.dim(2)).slice(2, 0, c.heads());
            att = CudaDecoder.this.att.slice(0, 0, r);
            att3 = att.reshape(r, c.heads(), c.headDim());
            att4 = att.reshape(1, r, c.heads(), c.headDim());
            o = CudaDecoder.this.o.slice(0, 0, r);
            mlp = CudaDecoder.this.mlp.slice(0, 0, r);
            act = CudaDecoder.this.act == null ? null : CudaDecoder.this.act.slice(0, 0, r);
            d = CudaDecoder.this.d.slice(0, 0, r);
            logits = CudaDecoder.this.logits.slice(0, 0, r);
            xLast = x.slice(0, r - 1, 1);
            hLast = h.slice(0, r - 1, 1);
            dLast = d.slice(0, r - 1, 1);
            logitsLast = logits.slice(0, 0, 1);
        }
    }

    private Views views(int r) { return views.computeIfAbsent(r, Views::new); }

    // ---------------------------------------------------------------- forward

    /**
     * The forward pass over w's rows. seq >= 0: prefill of t = rows tokens of one sequence whose
     * cache held {@code start} rows; seq = -1: one decode token per sequence.
     */
    private void forward(Views w, int r, DeviceTensor idsT, DeviceTensor posT, int seq, int start, boolean allLogits) {
        CudaDecoderOps.embedding(ctx, tokEmb, idsT, posEmb, posEmb == null ? null : posT, w.x);
        // up to 8 rows (decode): norms fused into the following GEMV, residual adds into the
        // GEMV before them; more rows: add+norm kernels and cuBLASLt
        boolean fused = fuseNorms && useGemv && r <= 8 && c.hidden() % 8 == 0 && (long) c.heads() * c.headDim() % 8 == 0 && c.intermediate() % 8 == 0;
        DeviceTensor delta = null;
        boolean rms = !gpt2;
        float eps = c.normEps();
        DeviceTensor sl = seq < 0 ? seqlens : seqlens.slice(0, seq, 1);
        for (int li = 0; li < layers.length; li++) {
            Layer l = layers[li];
            if (fused) {
                CudaDecoderOps.normGemv(ctx, w.x, rms, l.n1, l.n1b, eps, l.wqkv, l.bqkv, w.qkv2, Activation.NONE);
            } else {
                CudaDecoderOps.addNorm(ctx, w.x, delta, l.n1, l.n1b, rms, eps, w.h);
                linear(w.h, l.wqkv, l.bqkv, w.qkv2, Activation.NONE);
            }
            DeviceTensor kc = seq < 0 ? kCache[li] : kCache[li].slice(0, seq, 1);
            DeviceTensor vc = seq < 0 ? vCache[li] : vCache[li].slice(0, seq, 1);
            CudaDecoderOps.ropeKvAppend(ctx, w.qkv2, posT, invFreq, c.heads(), kc, vc, sl);
            if (seq < 0) {
                ctx.flashDecode(w.q3, kc, vc, seqlens, w.att3, 0f, 0);
            } else {
                int keys = start + r;
                ctx.flashAttention(w.q4, kc.transpose(1, 2).slice(1, 0, keys), vc.transpose(1, 2).slice(1, 0, keys), w.att4, null, true, 0f);
            }
            DeviceTensor up = gpt2 ? w.mlp : w.act;
            if (fused) {
                CudaDecoderOps.gemvResidual(ctx, w.att, l.wo, l.bo, w.x);
                CudaDecoderOps.normGemv(ctx, w.x, rms, l.n2, l.n2b, eps, l.wup, l.bup, w.mlp, gpt2 ? Activation.GELU_TANH : Activation.NONE);
                if (!gpt2) CudaDecoderOps.swiglu(ctx, w.mlp, w.act);
                CudaDecoderOps.gemvResidual(ctx, up, l.wdown, l.bdown, w.x);
            } else {
                linear(w.att, l.wo, l.bo, w.o, Activation.NONE);
                CudaDecoderOps.addNorm(ctx, w.x, w.o, l.n2, l.n2b, rms, eps, w.h);
                linear(w.h, l.wup, l.bup, w.mlp, gpt2 ? Activation.GELU_TANH : Activation.NONE);
                if (!gpt2) CudaDecoderOps.swiglu(ctx, w.mlp, w.act);
                linear(up, l.wdown, l.bdown, w.d, Activation.NONE);
                delta = w.d;
            }
        }
        boolean all = allLogits || seq < 0;
        if (fused) {
            CudaDecoderOps.normGemv(ctx, all ? w.x : w.xLast, rms, finalG, finalB, eps, lmHead, null, all ? w.logits : w.logitsLast, Activation.NONE);
        } else if (all) {
            CudaDecoderOps.addNorm(ctx, w.x, w.d, finalG, finalB, rms, eps, w.h);
            linear(w.h, lmHead, null, w.logits, Activation.NONE);
        } else {
            CudaDecoderOps.addNorm(ctx, w.xLast, w.dLast, finalG, finalB, rms, eps, w.hLast);
            linear(w.hLast, lmHead, null, w.logitsLast, Activation.NONE);
        }
    }

    /**
     * Appends {@code tokens} to sequence {@code seq} (chunks of up to maxPrefill) and returns the
     * logits after its last token. The device's next id of that sequence is set to their argmax.
     *
     * @throws IllegalArgumentException for a bad sequence, an empty prompt, an id outside the
     *                                  vocabulary, or a sequence that would exceed maxSeq
     */
    public float[] prefill(int seq, int[] tokens) {
        float[][] all = prefill(seq, tokens, false);
        return all[0];
    }

    /** Logits [T][V] at every position of {@code tokens} appended to sequence {@code seq}. */
    public float[][] prefillAll(int seq, int[] tokens) { return prefill(seq, tokens, true); }

    private float[][] prefill(int seq, int[] tokens, boolean all) {
        checkOpen();
        Session.checkPrompt(seq, batch, len, maxSeq, tokens, c.vocab());
        float[][] out = new float[all ? tokens.length : 1][];
        int v = c.vocab();
        for (int off = 0; off < tokens.length; off += maxPrefill) {
            int t = Math.min(maxPrefill, tokens.length - off);
            int[] p = new int[t];
            for (int i = 0; i < t; i++) p[i] = len[seq] + i;
            try (Tensor hi = Tensor.ofInts(Arrays.copyOfRange(tokens, off, off + t), t); Tensor hp = Tensor.ofInts(p, t)) {
                pids.slice(0, 0, t).copyFrom(hi);
                ppos.slice(0, 0, t).copyFrom(hp);
            }
            Views w = views(t);
            forward(w, t, pids.slice(0, 0, t), ppos.slice(0, 0, t), seq, len[seq], all);
            len[seq] += t;
            if (all) {
                float[] f = w.logits.toFloatArray();
                for (int i = 0; i < t; i++) out[off + i] = Arrays.copyOfRange(f, i * v, (i + 1) * v);
            }
            if (off + t == tokens.length) {
                DeviceTensor last = all ? w.logits.slice(0, t - 1, 1) : w.logitsLast;
                CudaDecoderOps.argmax(ctx, last, ids.slice(0, seq, 1), null);
                if (!all) out[0] = last.toFloatArray();
            }
        }
        try (Tensor hp = Tensor.ofInts(len.clone(), batch)) {
            pos.copyFrom(hp);
        }
        return out;
    }

    /**
     * One decode step for every sequence from the device state: each sequence's next id (the
     * argmax of its last logits, or what {@link #setNextIds} wrote) is appended at its position;
     * afterwards the next ids are the new argmaxes and positions have advanced. Asynchronous.
     *
     * @throws IllegalArgumentException when a sequence is full (maxSeq tokens)
     */
    public void step() {
        checkOpen();
        for (int b = 0; b < batch; b++) {
            if (len[b] >= maxSeq) throw new IllegalArgumentException("sequence " + b + " is full: the context window holds " + maxSeq + " tokens");
            if (len[b] == 0) throw new IllegalStateException("sequence " + b + " is empty: prefill it first");
        }
        Views w = views(batch);
        if (useGraph) {
            if (graph == null) graph = CudaDecoderOps.Graph.capture(ctx, () -> decodeBody(w));
            graph.launch();
        } else {
            decodeBody(w);
        }
        for (int b = 0; b < batch; b++) len[b]++;
    }

    private void decodeBody(Views w) {
        forward(w, batch, ids, pos, -1, 0, true);
        CudaDecoderOps.argmax(ctx, w.logits, ids, pos);
    }

    /** The device's next ids [batch] (waits for the stream). */
    public int[] nextIds() {
        checkOpen();
        try (Tensor t = ids.toHost()) {
            return t.segment().toArray(ValueLayout.JAVA_INT);
        }
    }

    /** Overwrites the device's next ids (e.g. with sampled tokens). */
    public void setNextIds(int[] next) {
        checkOpen();
        if (next.length != batch) throw new IllegalArgumentException(next.length + " ids given, batch " + batch);
        checkIds(next);
        try (Tensor t = Tensor.ofInts(next.clone(), batch)) {
            ids.copyFrom(t);
        }
    }

    /** The logits [batch][V] of the last decode step (waits for the stream). */
    public float[][] logits() {
        checkOpen();
        int v = c.vocab();
        float[] f = logits.slice(0, 0, batch).toFloatArray();
        float[][] r = new float[batch][];
        for (int b = 0; b < batch; b++) r[b] = Arrays.copyOfRange(f, b * v, (b + 1) * v);
        return r;
    }

    /** Waits for the device. */
    public void synchronize() { ctx.synchronize(); }

    /**
     * Generates continuations of exactly {@code batch} prompts, as {@link Generator}: greedy
     * without repetition penalty runs entirely on the device (ids read back every 16 steps);
     * other samplers copy each step's logits back and sample on the host.
     *
     * @throws IllegalArgumentException for a prompt count other than batch, an empty prompt, an id
     *                                  outside the vocabulary, or more tokens than maxSeq holds
     */
    public int[][] generate(int[][] prompts, GenerationConfig cfg, TokenListener listener) {
        checkOpen();
        int n = prompts.length;
        if (n != batch) throw new IllegalArgumentException(n + " prompts for a decoder of batch " + batch);
        for (int[] p : prompts) {
            if (p.length == 0) throw new IllegalArgumentException("empty prompt: at least one token id is needed");
            if (p.length + cfg.maxNewTokens() - 1 > maxSeq) {
                throw new IllegalArgumentException("prompt of " + p.length + " tokens + " + cfg.maxNewTokens() + " new tokens exceeds the context window of "
                        + maxSeq + " tokens");
            }
        }
        int v = c.vocab();
        int[] stops = cfg.stopTokens();
        boolean device = cfg.greedy() && cfg.repetitionPenalty() == 1f;
        Sampler sampler = new Sampler(cfg, v, n);
        int[][] out = new int[n][cfg.maxNewTokens()];
        int[] count = new int[n];
        boolean[] done = new boolean[n];
        reset();
        int[] first = new int[n];
        for (int b = 0; b < n; b++) {
            for (int id : prompts[b]) if (id >= 0 && id < v) sampler.observe(b, id);
            float[] l = prefill(b, prompts[b]);
            first[b] = device ? -1 : sampler.next(b, l);
        }
        if (device) first = nextIds();
        else setNextIds(first);
        for (int b = 0; b < n; b++) Generator.emit(b, first[b], out, count, done, stops, cfg, sampler, listener);
        int left = cfg.maxNewTokens() - 1;
        while (left > 0 && !allDone(done)) {
            if (device) {
                int k = Math.min(HIST_CHUNK, left);
                for (int i = 0; i < k; i++) {
                    step();
                    hist.slice(0, i, 1).reshape(batch).copyFrom(ids);
                }
                int[] hs;
                try (Tensor t = hist.slice(0, 0, k).toHost()) {
                    hs = t.segment().toArray(ValueLayout.JAVA_INT);
                }
                for (int i = 0; i < k; i++) {
                    for (int b = 0; b < n; b++) if (!done[b]) Generator.emit(b, hs[i * batch + b], out, count, done, stops, cfg, sampler, listener);
                }
                left -= k;
            } else {
                step();
                float[][] l = logits();
                int[] next = new int[n];
                for (int b = 0; b < n; b++) {
                    next[b] = sampler.next(b, l[b]);
                    if (!done[b]) Generator.emit(b, next[b], out, count, done, stops, cfg, sampler, listener);
                }
                setNextIds(next);
                left--;
            }
        }
        int[][] r = new int[n][];
        for (int b = 0; b < n; b++) r[b] = Arrays.copyOf(out[b], count[b]);
        return r;
    }

    private static boolean allDone(boolean[] done) {
        for (boolean x : done) if (!x) return false;
        return true;
    }


    private void checkIds(int[] tokens) { Session.checkIds(tokens, c.vocab()); }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("CUDA decoder is closed");
        if (!ctx.isOpen()) throw new IllegalStateException("the CUDA context of this decoder is closed");
    }

    // ---------------------------------------------------------------- loading helpers

    private DeviceTensor alloc(DType dt, long... shape) {
        DeviceTensor t = ctx.allocate(dt, shape);
        owned.add(t);
        return t;
    }

    private DeviceTensor f32(float[] v, long... shape) {
        try (Arena a = Arena.ofConfined()) {
            Tensor t = Tensor.allocate(a, DType.F32, shape);
            MemorySegment.copy(v, 0, t.segment(), ValueLayout.JAVA_FLOAT, 0, v.length);
            DeviceTensor dt = ctx.upload(t);
            owned.add(dt);
            return dt;
        }
    }

    /** Rounds to bf16 (nearest even; NaN stays NaN) and uploads. */
    private DeviceTensor bf16(float[] v, long... shape) {
        short[] s = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            int b = Float.floatToRawIntBits(v[i]);
            s[i] = Float.isNaN(v[i]) ? (short) 0x7fc0 : (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
        }
        try (Arena a = Arena.ofConfined()) {
            Tensor t = Tensor.allocate(a, DType.BF16, shape);
            MemorySegment.copy(s, 0, t.segment(), ValueLayout.JAVA_SHORT, 0, s.length);
            DeviceTensor dt = ctx.upload(t);
            owned.add(dt);
            return dt;
        }
    }

    /** [rows, cols] -> [cols, rows]. */
    private static float[] transpose(float[] a, int rows, int cols) {
        float[] t = new float[a.length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
        return t;
    }

    private static float[] concat(float[]... parts) {
        int n = 0;
        for (float[] p : parts) n += p.length;
        float[] r = new float[n];
        int o = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, r, o, p.length);
            o += p.length;
        }
        return r;
    }

    /** Frees the graph and every device buffer (the context stays open). Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (graph != null) graph.close();
        if (ctx.isOpen()) {
            for (DeviceTensor t : owned) t.close();
        }
    }
}
