package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.Embedder;
import dev.panatron.Tensor;
import dev.panatron.graph.BertWeights;
import dev.panatron.tokenize.Encoding;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Sentence embeddings on the GPU with the model, tokenizer and pooling of a loaded (CPU)
 * {@link Embedder}: the same pipeline ({@code [CLS] text [SEP]} WordPiece tokens, the encoder's
 * last hidden state, mean or [CLS] pooling, L2 normalization), with the encoder in bf16.
 *
 * <p>Per batch, on the device: the word + position (+ token type 0) embedding gather in f32, the
 * embedding LayerNorm to bf16, {@link CudaBertEncoder} over the sequences packed end to end (varlen
 * flash attention, no padding computed), then the pooling as one cuBLASLt GEMM of a [B, T] 0/1
 * selection matrix with the [T, hidden] states (f32 accumulation: the sum over a sequence's
 * tokens, or its first token for CLS; the normalization makes the sum a mean). Only the [B,
 * hidden] pooled rows come back to the host, where they are L2-normalized.
 *
 * <p>Owns the device copies of the weights (about 2 bytes per encoder weight, 4 per embedding
 * value) until {@link #close()}; the {@link Embedder} stays the caller's. Not thread-safe beyond
 * the context's stream serialization: calls are synchronized on this instance.
 */
public final class CudaEmbedder implements AutoCloseable {
    private static final short ONE_BF16 = 0x3f80;
    private final CudaContext ctx;
    private final Embedder cpu;
    private final CudaBertEncoder encoder;
    private final DeviceTensor word, position, embGamma, embBeta;
    private final int hidden, vocab, positions, batchSize;
    private final float eps;
    private volatile boolean closed;

    /**
     * Uploads {@code model}'s weights (encoder in bf16; embedding tables, with the token-type-0 row
     * folded into the position table, and the embedding LayerNorm in f32).
     *
     * @param ctx       the CUDA context that will own the weights
     * @param model     a loaded fp32 or bf16 BERT-family embedder (not int8/fp4 converted)
     * @param batchSize texts per GPU batch in {@link #embed(List)} (>= 1)
     * @throws IllegalArgumentException when the model cannot run here (the message says why)
     */
    public CudaEmbedder(CudaContext ctx, Embedder model, int batchSize) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
        this.cpu = Objects.requireNonNull(model, "model");
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be >= 1, got " + batchSize);
        this.batchSize = batchSize;
        BertWeights w = model.encoderWeights();
        this.hidden = w.hidden();
        this.vocab = w.vocab();
        this.positions = w.positions();
        this.eps = w.eps();
        float[] pos = w.position().clone();
        for (int p = 0; p < positions; p++) for (int j = 0; j < hidden; j++) pos[p * hidden + j] += w.tokenType()[j];
        List<DeviceTensor> made = new ArrayList<>();
        try {
            word = up(made, w.word(), vocab, hidden);
            position = up(made, pos, positions, hidden);
            embGamma = up(made, w.embGamma(), hidden);
            embBeta = up(made, w.embBeta(), hidden);
            encoder = new CudaBertEncoder(ctx, w, DType.BF16);
        } catch (RuntimeException e) {
            for (DeviceTensor d : made) d.close();
            throw e;
        }
    }

    private DeviceTensor up(List<DeviceTensor> made, float[] v, long... shape) {
        try (Tensor t = Tensor.of(DType.F32, v, shape)) {
            DeviceTensor d = ctx.upload(t);
            made.add(d);
            return d;
        }
    }

    /** The CPU embedder whose model, tokenizer and pooling this one uses. */
    public Embedder model() { return cpu; }

    /** The encoder on the device. */
    public CudaBertEncoder encoder() { return encoder; }

    /**
     * The L2-normalized embeddings of {@code texts}, in order, tokenized as {@link Embedder#embed(List)} does.
     *
     * @throws NullPointerException  when the list or a text is null
     * @throws IllegalStateException when this or the context is closed
     */
    public List<float[]> embed(List<String> texts) {
        Objects.requireNonNull(texts, "texts");
        for (int i = 0; i < texts.size(); i++) Objects.requireNonNull(texts.get(i), "texts[" + i + "] is null");
        if (texts.isEmpty()) return List.of();
        List<Encoding> enc = cpu.tokenizer().withoutPadding().encodeAll(texts);
        List<int[]> ids = new ArrayList<>(enc.size());
        for (Encoding e : enc) {
            for (int t : e.typeIds()) if (t != 0) throw new IllegalArgumentException("token type ids other than 0 are not supported on the GPU");
            ids.add(e.ids());
        }
        return run(ids);
    }

    /**
     * The embeddings of already tokenized sequences ({@link Embedder#embedIds}'s contract).
     *
     * @throws IllegalArgumentException when a row is empty or longer than the model's maximum, or
     *         an id is outside the vocabulary
     */
    public List<float[]> embedIds(int[][] ids) {
        Objects.requireNonNull(ids, "ids");
        List<int[]> rows = new ArrayList<>(ids.length);
        int max = Math.min(cpu.maxLength(), positions);
        for (int r = 0; r < ids.length; r++) {
            int[] row = Objects.requireNonNull(ids[r], "ids[" + r + "] is null");
            if (row.length == 0 || row.length > max) throw new IllegalArgumentException("ids[" + r + "] has " + row.length + " ids; give 1 to " + max);
            for (int t = 0; t < row.length; t++) {
                if (row[t] < 0 || row[t] >= vocab) {
                    throw new IllegalArgumentException("ids[" + r + "][" + t + "] = " + row[t] + " is outside the vocabulary [0, " + vocab + ")");
                }
            }
            rows.add(row);
        }
        return run(rows);
    }

    private synchronized List<float[]> run(List<int[]> rows) {
        if (closed) throw new IllegalStateException("CudaEmbedder is closed");
        List<float[]> out = new ArrayList<>(rows.size());
        for (int lo = 0; lo < rows.size(); lo += batchSize) {
            out.addAll(Arrays.asList(batch(rows.subList(lo, Math.min(rows.size(), lo + batchSize)))));
        }
        return out;
    }

    /**
     * One packed batch through embeddings, encoder and pooling. The packed tokens are rounded up
     * to a multiple of 8 by one more sequence of [PAD] tokens (left out of the pooling), so that
     * the selection matrix's rows stay 16-byte aligned for cuBLASLt.
     */
    private float[][] batch(List<int[]> part) {
        int b = part.size(), real = 0, longest = 0;
        for (int[] r : part) {
            real += r.length;
            longest = Math.max(longest, r.length);
        }
        int t = (real + 7) / 8 * 8, fill = t - real;
        longest = Math.max(longest, fill);
        int[] ids = new int[t], pos = new int[t], cu = new int[b + 1 + (fill > 0 ? 1 : 0)];
        for (int j = 0; j < fill; j++) pos[real + j] = j;     // the filler: ids 0 ([PAD]), positions 0..fill-1
        if (fill > 0) cu[b + 1] = t;
        // the [B, T] bf16 0/1 selection matrix, written as bits into zeroed native memory (a float[]
        // converted element by element cost ~8 ms at 128 x 128 tokens)
        Tensor hSel = Tensor.allocate(DType.BF16, b, t);
        MemorySegment selSeg = hSel.segment();
        boolean cls = cpu.pooling() == Embedder.Pooling.CLS;
        int off = 0;
        for (int s = 0; s < b; s++) {
            int[] r = part.get(s);
            for (int j = 0; j < r.length; j++) {
                ids[off + j] = r[j];
                pos[off + j] = j;
                if (!cls || j == 0) selSeg.setAtIndex(ValueLayout.JAVA_SHORT, (long) s * t + off + j, ONE_BF16);
            }
            off += r.length;
            cu[s + 1] = off;
        }
        try (hSel; Tensor hIds = Tensor.ofInts(ids, t); Tensor hPos = Tensor.ofInts(pos, t); Tensor hCu = Tensor.ofInts(cu, cu.length);
             DeviceTensor dIds = ctx.upload(hIds); DeviceTensor dPos = ctx.upload(hPos); DeviceTensor dCu = ctx.upload(hCu);
             DeviceTensor dSel = ctx.upload(hSel);
             DeviceTensor emb = ctx.allocate(DType.F32, t, hidden); DeviceTensor x = ctx.allocate(DType.BF16, t, hidden);
             DeviceTensor pooled = ctx.allocate(DType.F32, b, hidden)) {
            CudaDecoderOps.embedding(ctx, word, dIds, position, dPos, emb);
            CudaDecoderOps.addNorm(ctx, emb, null, embGamma, embBeta, false, eps, x);
            try (DeviceTensor h = encoder.forward(x, dCu, longest)) {
                ctx.matmul(dSel, h, pooled);                     // [B, T] @ [T, hidden]: per-sequence sums (or the [CLS] rows)
            }
            float[] p = pooled.toFloatArray();
            float[][] r = new float[b][];
            for (int s = 0; s < b; s++) {
                double n2 = 0;
                for (int j = 0; j < hidden; j++) n2 += (double) p[s * hidden + j] * p[s * hidden + j];
                double inv = 1 / Math.max(Math.sqrt(n2), 1e-12);
                float[] v = new float[hidden];
                for (int j = 0; j < hidden; j++) v[j] = (float) (p[s * hidden + j] * inv);
                r[s] = v;
            }
            return r;
        }
    }

    /** Returns the device weights to the context (the {@link Embedder} stays open). Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        encoder.close();
        for (DeviceTensor d : new DeviceTensor[] {word, position, embGamma, embBeta}) d.close();
    }
}
