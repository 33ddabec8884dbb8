package dev.panatron.lm;

import dev.panatron.AttentionOptions;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.KvCache;
import dev.panatron.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * The decoder forward pass over the kernels, with the state of {@code batch} sequences: a KV
 * cache per layer ({@code [batch, Hkv, maxSeq, D]} f32, preallocated) and activation buffers
 * for {@code model.maxRows} tokens. Written top to bottom like llama3.java rather than through
 * the graph executor: a decoder step is a fixed sequence of kernels over buffers that stay put,
 * with the KV cache as the only state, and reads best as plain code.
 *
 * <p>Prefill ({@link #prefill}) feeds one sequence's tokens in chunks of up to maxRows: the first
 * chunk of an empty sequence attends through {@link Kernels#flashAttention} (keys read in place
 * from the cache), later chunks and decode steps through {@link Kernels#flashAttentionDecode}.
 * {@link #decode} advances every sequence by one token; it allocates no tensor memory (buffer
 * views are made once per shape and reused).
 */
public final class Session implements AutoCloseable {
    private final DecoderModel m;
    private final DecoderConfig c;
    private final Context ctx;
    private final int batch, maxSeq, rows;
    private final Arena arena = Arena.ofShared();
    private final Tensor[] kCache, vCache;
    private final Tensor starts, lens;   // i32 [batch]: rows before / after the current append
    private final int[] len;
    private final Tensor ids, pos;       // i32 [rows]
    private final Tensor x, h, att, o, q, k, v, qkv, mlpA, mlpB, logits;
    private final KvCache.Rope kRope;
    private final Kernels.RopeOptions qRope;
    private final AttentionOptions attn;
    private final Map<Long, Views> views = new HashMap<>();
    private boolean closed;

    Session(DecoderModel m, int batch, int maxSeq) {
        this.m = m;
        this.c = m.cfg;
        this.ctx = m.ctx;
        if (batch < 1 || batch > m.maxRows) throw new IllegalArgumentException("batch " + batch + " must be in 1.." + m.maxRows + " (the model's maxRows)");
        if (maxSeq < 1 || maxSeq > c.maxPositions()) throw new IllegalArgumentException("maxSeq " + maxSeq + " must be in 1.." + c.maxPositions() + " (max_position_embeddings)");
        this.batch = batch;
        this.maxSeq = maxSeq;
        this.rows = m.maxRows;
        int hd = c.headDim(), nh = c.heads(), kv = c.kvHeads();
        kCache = new Tensor[c.layers()];
        vCache = new Tensor[c.layers()];
        for (int i = 0; i < c.layers(); i++) {
            kCache[i] = Tensor.allocate(arena, DType.F32, batch, kv, maxSeq, hd);
            vCache[i] = Tensor.allocate(arena, DType.F32, batch, kv, maxSeq, hd);
        }
        starts = Tensor.allocate(arena, DType.I32, batch);
        lens = Tensor.allocate(arena, DType.I32, batch);
        len = new int[batch];
        ids = Tensor.allocate(arena, DType.I32, rows);
        pos = Tensor.allocate(arena, DType.I32, rows);
        x = buf(c.hidden());
        h = buf(c.hidden());
        o = buf(c.hidden());
        att = buf((long) nh * hd);
        boolean gpt2 = c.arch() == DecoderConfig.Arch.GPT2;
        qkv = gpt2 ? buf(3L * c.hidden()) : null;
        q = gpt2 ? null : buf((long) nh * hd);
        k = gpt2 ? null : buf((long) kv * hd);
        v = gpt2 ? null : buf((long) kv * hd);
        mlpA = buf(c.intermediate());
        mlpB = gpt2 ? null : buf(c.intermediate());
        logits = buf(c.vocab());
        kRope = m.kRope();
        qRope = c.ropeInvFreq() == null ? null : Kernels.RopeOptions.neox(1f).withInvFreq(c.ropeInvFreq());
        AttentionOptions a = AttentionOptions.CAUSAL;
        if (c.slidingWindow() > 0) a = a.withSlidingWindow(c.slidingWindow());
        attn = a;
    }

    private Tensor buf(long cols) { return Tensor.allocate(arena, DType.F32, rows, cols); }

    public int batch() { return batch; }

    public int maxSeq() { return maxSeq; }

    /** Tokens held for sequence {@code b}. */
    public int length(int b) { return len[b]; }

    /** Forgets every sequence (the memory is kept). */
    public void reset() {
        java.util.Arrays.fill(len, 0);
    }

    /** Views of the buffers for B sequences x T tokens, made once per shape. */
    private final class Views {
        final int b, t, r;
        final Tensor ids, pos, pos2, x, h, att, att4, o, q4, k4, v4, qkv2, q2, k2, v2, mlpA, mlpB, lastH, logitsLast, logitsAll;
        /** GPT-2: the fused residual add + LayerNorm calls of a forward pass, checked once
         *  (index 0: x + position embedding -> norm1 of layer 0; 1 + 2i: norm2 of layer i;
         *  2 + 2i: norm1 of layer i + 1, or the final norm); null for RMSNorm models. */
        final Kernels.Call[] norms;
        /** The embedding lookups (position: GPT-2 only, else null), prepared as the norms are. */
        final Kernels.Call tokEmb, posEmb;
        /** The decode step's (B = batch, T = 1) KV-cache appends and attention calls per layer,
         *  prepared (the start and length values are checked natively on each run); null for
         *  other shapes. */
        final Kernels.Call[] appends, attends;
        /** The decode step's FP4 and f32 linear layers, each prepared on its first run with the
         *  activation apply would run (FP4: after it; f32: in the GEMV's epilogue; x and out fixed
         *  per layer in a step); null for other shapes and precisions (int8, bf16). */
        final java.util.IdentityHashMap<Linear, PreparedLinear> lins;

        Views(int b, int t) {
            this.b = b;
            this.t = t;
            this.r = b * t;
            int hd = c.headDim();
            ids = Session.this.ids.slice(0, 0, r);
            pos = Session.this.pos.slice(0, 0, r);
            pos2 = pos.reshape(b, t);
            x = Session.this.x.slice(0, 0, r);
            h = Session.this.h.slice(0, 0, r);
            att = Session.this.att.slice(0, 0, r);
            att4 = att.reshape(b, t, c.heads(), hd);
            o = Session.this.o.slice(0, 0, r);
            qkv2 = qkv == null ? null : qkv.slice(0, 0, r);
            q2 = q == null ? null : q.slice(0, 0, r);
            k2 = k == null ? null : k.slice(0, 0, r);
            v2 = v == null ? null : v.slice(0, 0, r);
            if (qkv != null) {
                long f = 4, rs = 3L * c.hidden() * f;
                MemorySegment s = qkv.slice(0, 0, r).segment();
                long[] shape = {b, t, c.heads(), hd}, st = {t * rs, rs, hd * f, f};
                q4 = Tensor.wrap(s, DType.F32, shape, st);
                k4 = Tensor.wrap(s.asSlice(c.hidden() * f), DType.F32, shape, st);
                v4 = Tensor.wrap(s.asSlice(2L * c.hidden() * f), DType.F32, shape, st);
            } else {
                q4 = q.slice(0, 0, r).reshape(b, t, c.heads(), hd);
                k4 = k.slice(0, 0, r).reshape(b, t, c.kvHeads(), hd);
                v4 = v.slice(0, 0, r).reshape(b, t, c.kvHeads(), hd);
            }
            mlpA = Session.this.mlpA.slice(0, 0, r);
            mlpB = Session.this.mlpB == null ? null : Session.this.mlpB.slice(0, 0, r);
            lastH = t == 1 ? h : h.slice(0, r - 1, 1);
            logitsLast = logits.slice(0, 0, t == 1 ? r : 1);
            logitsAll = logits.slice(0, 0, r);
            if (b == batch && t == 1) {
                appends = new Kernels.Call[m.layers.length];
                attends = new Kernels.Call[m.layers.length];
                for (int li = 0; li < m.layers.length; li++) {
                    appends[li] = Kernels.prepareKvCacheAppend(ctx, k4, v4, starts, kCache[li], vCache[li], kRope);
                    attends[li] = Kernels.prepareFlashAttentionDecode(ctx, q4, kCache[li], vCache[li], lens, att4, attn);
                }
            } else {
                appends = attends = null;
            }
            lins = b == batch && t == 1 && (m.layers[0].o instanceof Linear.Fp4Weight || m.layers[0].o instanceof Linear.Dense d && d.preparable())
                    ? new java.util.IdentityHashMap<>() : null;
            tokEmb = Kernels.prepareEmbedding(ctx, m.tokenEmbedding, ids, x);
            posEmb = m.positionEmbedding == null ? null : Kernels.prepareEmbedding(ctx, m.positionEmbedding, pos, o);
            if (c.arch() == DecoderConfig.Arch.GPT2) {
                int nl = m.layers.length;
                norms = new Kernels.Call[2 * nl + 1];
                for (int i = 0; i <= 2 * nl; i++) {
                    boolean last = i == 2 * nl;
                    DecoderModel.Layer l = m.layers[last ? nl - 1 : i / 2];
                    Tensor g = last ? m.finalNorm : i % 2 == 0 ? l.norm1 : l.norm2, bt = last ? m.finalNormBias : i % 2 == 0 ? l.norm1Bias : l.norm2Bias;
                    norms[i] = Kernels.prepareAddLayerNorm(ctx, x, o, g, bt, c.normEps(), h, last ? null : x);
                }
            } else {
                norms = null;
            }
        }
    }

    /** A linear layer's calls prepared for the tensors and activation they were made on (act: null for none). */
    private record PreparedLinear(Tensor x, Tensor out, Kernels.Activation activation, Kernels.Call call, Kernels.Call act) {}

    private void linear(Views w, Linear l, Tensor x, Tensor out) {
        linear(w, l, x, out, Kernels.Activation.NONE);
    }

    /** {@code out = act(l(x))}: in an FP4 or f32 decode step the calls prepared once per Views (the Java
     *  checks of Fp4.matmul / Kernels.matmul and of the activation cost ~3-5 us a call inside the step), else apply. */
    private void linear(Views w, Linear l, Tensor x, Tensor out, Kernels.Activation act) {
        if (w.lins != null && (l instanceof Linear.Fp4Weight || l instanceof Linear.Dense dl && dl.preparable())) {
            PreparedLinear p = w.lins.get(l);
            if (p == null) {
                if (l instanceof Linear.Fp4Weight f) {
                    Kernels.Call post = act == Kernels.Activation.NONE ? null : Kernels.prepareUnary(ctx, Kernels.Unary.valueOf(act.name()), out, out);
                    p = new PreparedLinear(x, out, act, f.prepare(ctx, x, out), post);
                } else {
                    p = new PreparedLinear(x, out, act, ((Linear.Dense) l).prepare(ctx, x, out, act), null);   // the activation in the GEMV's epilogue
                }
                w.lins.put(l, p);
            }
            if (p.x() == x && p.out() == out && p.activation() == act) {
                p.call().run();
                if (p.act() != null) p.act().run();
                return;
            }
        }
        l.apply(ctx, x, out, act);
    }

    private Views views(int b, int t) {
        return views.computeIfAbsent(((long) b << 32) | t, key -> new Views(b, t));
    }

    /**
     * Appends {@code tokens} to sequence {@code seq} (in chunks of up to maxRows) and returns
     * the logits [1, V] after its last token (a view, valid until the next call).
     *
     * @throws IllegalArgumentException for an empty prompt, an id outside the vocabulary, or a
     *                                  sequence that would exceed maxSeq
     */
    public Tensor prefill(int seq, int[] tokens) {
        return prefill(seq, tokens, null);
    }

    /** Logits [T][V] at every position of {@code tokens} appended to sequence {@code seq}. */
    public float[][] prefillAll(int seq, int[] tokens) {
        float[][] out = new float[tokens.length][];
        prefill(seq, tokens, out);
        return out;
    }

    private Tensor prefill(int seq, int[] tokens, float[][] all) {
        checkOpen();
        checkPrompt(seq, batch, len, maxSeq, tokens, c.vocab());
        Tensor out = null;
        for (int off = 0; off < tokens.length; off += rows) {
            int t = Math.min(rows, tokens.length - off);
            Views w = views(1, t);
            for (int i = 0; i < t; i++) {
                w.ids.segment().setAtIndex(ValueLayout.JAVA_INT, i, tokens[off + i]);
                w.pos.segment().setAtIndex(ValueLayout.JAVA_INT, i, len[seq] + i);
            }
            forward(w, seq, all != null);
            if (all != null) {
                for (int i = 0; i < t; i++) all[off + i] = w.logitsAll.slice(0, i, 1).toFloatArray();
            }
            out = w.logitsLast;
        }
        return out;
    }

    /**
     * One token for every sequence: {@code tokens[b]} is appended to sequence b. Returns the
     * logits [batch, V] (a view, valid until the next call).
     *
     * @throws IllegalArgumentException for a wrong count, an id outside the vocabulary, or a full sequence
     */
    public Tensor decode(int[] tokens) {
        checkOpen();
        if (tokens.length != batch) throw new IllegalArgumentException("decode takes one token per sequence: " + tokens.length + " given, batch " + batch);
        checkIds(tokens);
        Views w = views(batch, 1);
        for (int b = 0; b < batch; b++) {
            if (len[b] >= maxSeq) throw new IllegalArgumentException("sequence " + b + " is full: the context window holds " + maxSeq + " tokens");
            w.ids.segment().setAtIndex(ValueLayout.JAVA_INT, b, tokens[b]);
            w.pos.segment().setAtIndex(ValueLayout.JAVA_INT, b, len[b]);
        }
        forward(w, -1, false);
        return w.logitsLast;
    }

    private void checkIds(int[] tokens) { checkIds(tokens, c.vocab()); }

    /** Ids inside the vocabulary [0, vocab) (shared with {@link CudaDecoder}). */
    static void checkIds(int[] tokens, int vocab) {
        for (int id : tokens) {
            if (id < 0 || id >= vocab) throw new IllegalArgumentException("token id " + id + " is outside the vocabulary 0.." + (vocab - 1));
        }
    }

    /** A prompt appended to sequence {@code seq} of {@code batch}, {@code held[seq]} tokens already cached (shared with {@link CudaDecoder}). */
    static void checkPrompt(int seq, int batch, int[] held, int maxSeq, int[] tokens, int vocab) {
        if (seq < 0 || seq >= batch) throw new IllegalArgumentException("sequence " + seq + " out of range 0.." + (batch - 1));
        if (tokens.length == 0) throw new IllegalArgumentException("empty prompt: at least one token id is needed");
        if (held[seq] + tokens.length > maxSeq) {
            throw new IllegalArgumentException("prompt of " + tokens.length + " tokens (after " + held[seq] + " held) exceeds the context window of "
                    + maxSeq + " tokens");
        }
        checkIds(tokens, vocab);
    }

    /** The forward pass over w.r rows: one sequence {@code seq} (prefill), or all (seq = -1, T = 1). */
    private void forward(Views w, int seq, boolean allLogits) {
        // per-sequence cache rows before / after this append
        MemorySegment st = starts.segment(), ln = lens.segment();
        int b0 = seq < 0 ? 0 : seq, nb = seq < 0 ? batch : 1;
        boolean fresh = seq >= 0 && len[seq] == 0;
        for (int b = b0; b < b0 + nb; b++) {
            st.setAtIndex(ValueLayout.JAVA_INT, b, len[b]);
            ln.setAtIndex(ValueLayout.JAVA_INT, b, len[b] + w.t);
        }
        Tensor startsV = seq < 0 ? starts : starts.slice(0, seq, 1);
        Tensor lensV = seq < 0 ? lens : lens.slice(0, seq, 1);

        // embeddings; each residual add is fused with the norm after it (addLayerNorm /
        // addRmsNorm: the sum is stored to x, then normalized as stored: the values of a
        // separate add and norm, one kernel call and one pass over x fewer)
        boolean gpt2 = c.arch() == DecoderConfig.Arch.GPT2;
        w.tokEmb.run();
        if (w.posEmb != null) {
            w.posEmb.run();
            addNorm(w, 0, m.layers[0].norm1, m.layers[0].norm1Bias, w.x);
        } else if (gpt2) {
            Kernels.layerNorm(ctx, w.x, m.layers[0].norm1, m.layers[0].norm1Bias, c.normEps(), w.h);
        } else {
            Kernels.rmsNorm(ctx, w.x, m.layers[0].norm1, c.normEps(), w.h);
        }
        for (int li = 0; li < m.layers.length; li++) {
            DecoderModel.Layer l = m.layers[li];
            // attention block (w.h = norm1(x) on entry)
            if (gpt2) {
                linear(w, l.qkv, w.h, w.qkv2);
            } else {
                linear(w, l.q, w.h, w.q2);
                linear(w, l.k, w.h, w.k2);
                linear(w, l.v, w.h, w.v2);
                Kernels.rope(ctx, w.q4, w.pos2, qRope, w.q4);
            }
            Tensor kc = seq < 0 ? kCache[li] : kCache[li].slice(0, seq, 1);
            Tensor vc = seq < 0 ? vCache[li] : vCache[li].slice(0, seq, 1);
            if (seq < 0 && w.appends != null) { // a decode step: the prepared calls on the same tensors
                w.appends[li].run();
                w.attends[li].run();
            } else {
                Kernels.kvCacheAppend(ctx, w.k4, w.v4, startsV, kc, vc, kRope);
                if (fresh) {
                    // first chunk of a sequence: plain causal flash attention over the cached rows
                    Kernels.flashAttention(ctx, w.q4, cacheRows(kc, w.t), cacheRows(vc, w.t), w.att4, attn);
                } else {
                    Kernels.flashAttentionDecode(ctx, w.q4, kc, vc, lensV, w.att4, attn);
                }
            }
            linear(w, l.o, w.att, w.o);
            addNorm(w, 1 + 2 * li, l.norm2, l.norm2Bias, w.x);   // x += o; h = norm2(x)
            // MLP block
            if (gpt2) {
                linear(w, l.fc, w.h, w.mlpA, Kernels.Activation.GELU_TANH);
                linear(w, l.down, w.mlpA, w.o);
            } else {
                linear(w, l.gate, w.h, w.mlpA);
                linear(w, l.up, w.h, w.mlpB);
                Kernels.swiglu(ctx, w.mlpA, w.mlpB, w.mlpA);
                linear(w, l.down, w.mlpA, w.o);
            }
            // x += o; h = the next layer's norm1(x), or the final norm (x is not read after it)
            if (li + 1 < m.layers.length) addNorm(w, 2 + 2 * li, m.layers[li + 1].norm1, m.layers[li + 1].norm1Bias, w.x);
            else addNorm(w, 2 + 2 * li, m.finalNorm, m.finalNormBias, null);
        }
        if (allLogits) linear(w, m.lmHead, w.h, w.logitsAll);
        else linear(w, m.lmHead, w.lastH, w.logitsLast);
        for (int b = b0; b < b0 + nb; b++) len[b] += w.t;
    }

    /**
     * {@code s = x + o; h = norm(s)} (LayerNorm with beta, or RMSNorm), s stored to sumOut when
     * not null: GPT-2 runs the prepared call {@code w.norms[i]} (the same arguments, checked once
     * per view shape: after a GEMV has streamed megabytes through the caches, the checks' walk
     * over cold tensor objects costs more than the kernel).
     */
    private void addNorm(Views w, int i, Tensor gamma, Tensor beta, Tensor sumOut) {
        if (w.norms != null) w.norms[i].run();
        else Kernels.addRmsNorm(ctx, w.x, w.o, gamma, c.normEps(), w.h, sumOut);
    }

    /** The first t rows of a one-sequence cache [1, Hkv, S, D] seen as [1, t, Hkv, D]. */
    private static Tensor cacheRows(Tensor cache, int t) {
        long hkv = cache.dim(1), s = cache.dim(2), d = cache.dim(3), f = 4;
        return Tensor.wrap(cache.segment(), DType.F32, new long[] {1, t, hkv, d}, new long[] {hkv * s * d * f, d * f, s * d * f, f});
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("session is closed");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        arena.close();
    }
}
