package dev.panatron.graph;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The weights of a post-LayerNorm BERT encoder (BERT, MiniLM) read back from an optimized
 * {@link Graph} (ONNX import or {@link dev.panatron.io.BertBuilder}), in PyTorch layout, as f32
 * host arrays: for running the same model elsewhere (the GPU encoder) without a second loader.
 *
 * <p>Found by structure, not by names: the word / token-type / position embedding GATHERs, the
 * first LAYER_NORM (embeddings), then per ATTENTION node its q/k/v LINEARs (its inputs'
 * producers), the next three LINEARs (output projection, FFN up with GELU, FFN down) and the next
 * two LAYER_NORMs.
 *
 * @param hidden       model width
 * @param heads        attention heads
 * @param intermediate FFN width
 * @param eps          LayerNorm epsilon (one for all norms)
 * @param word         [vocab, hidden]
 * @param position     [positions, hidden]
 * @param tokenType    [types, hidden] (a single zero row when the graph has none)
 * @param embGamma     embedding LayerNorm [hidden]
 * @param embBeta      embedding LayerNorm [hidden]
 * @param layers       one per encoder layer
 */
public record BertWeights(int hidden, int heads, int intermediate, float eps, float[] word, float[] position, float[] tokenType,
                          float[] embGamma, float[] embBeta, List<Layer> layers) {

    /** One encoder layer: Linear weights [out, in], biases [out], LayerNorms [hidden]. */
    public record Layer(float[] wq, float[] bq, float[] wk, float[] bk, float[] wv, float[] bv, float[] wo, float[] bo,
                        float[] ln1Gamma, float[] ln1Beta, float[] w1, float[] b1, float[] w2, float[] b2,
                        float[] ln2Gamma, float[] ln2Beta) {}

    /** Rows of the word embedding table. */
    public int vocab() { return word.length / hidden; }

    /** Rows of the position table. */
    public int positions() { return position.length / hidden; }

    /** Rows of the token-type table. */
    public int types() { return tokenType.length / hidden; }

    /**
     * Reads the weights of {@code g}.
     *
     * @throws IllegalArgumentException when the graph is not a plain post-LN BERT encoder (naming
     *         what is missing or unexpected), or holds compressed (QLINEAR) layers
     */
    public static BertWeights of(Graph g) {
        Map<Value, Node> producer = new HashMap<>();
        List<Node> lns = new ArrayList<>(), linears = new ArrayList<>(), attns = new ArrayList<>();
        for (Node n : g.nodes()) {
            for (Value v : n.outputs()) producer.put(v, n);
            switch (n.op()) {
                case QLINEAR -> throw new IllegalArgumentException("BertWeights: the graph has compressed linear layers (" + n.name()
                        + "): only fp32/bf16 models can be read back");
                case LAYER_NORM -> lns.add(n);
                case LINEAR -> linears.add(n);
                case ATTENTION -> attns.add(n);
                default -> { }
            }
        }
        Value ids = null, types = null;
        for (Value v : g.inputs()) {
            if (v.name().equals("input_ids")) ids = v;
            if (v.name().equals("token_type_ids")) types = v;
        }
        if (ids == null) throw new IllegalArgumentException("BertWeights: the graph has no input_ids input");
        Node wordG = null, typeG = null, posG = null;
        for (Node n : g.nodes()) {
            if (n.op() != Op.GATHER || n.input(0) == null || !n.input(0).isConstant() || n.input(0).shape().rank() != 2) continue;
            if (n.input(1) == ids) wordG = n;
            else if (types != null && n.input(1) == types) typeG = n;
            else posG = n;
        }
        if (wordG == null || posG == null) {
            throw new IllegalArgumentException("BertWeights: no word" + (wordG == null ? "" : " ... found; no position") + " embedding GATHER found");
        }
        int l = attns.size();
        if (l == 0 || lns.size() != 2 * l + 1 || linears.size() != 6 * l) {
            throw new IllegalArgumentException("BertWeights: expected a post-LN BERT (L attention, 6L linear and 2L+1 layer-norm nodes), got "
                    + attns.size() + ", " + linears.size() + " and " + lns.size());
        }
        float[] word = wordG.input(0).constantData().toFloatArray();
        int hidden = (int) wordG.input(0).shape().dim(1).value();
        float[] pos = posG.input(0).constantData().toFloatArray();
        float[] type = typeG != null ? typeG.input(0).constantData().toFloatArray() : new float[hidden];
        if (pos.length % hidden != 0 || type.length % hidden != 0) throw new IllegalArgumentException("BertWeights: embedding widths differ from " + hidden);
        Node embLn = lns.getFirst();
        float eps = (float) embLn.attrDouble("epsilon", 1e-12);
        int heads = (int) attns.getFirst().attrLong("num_heads", 0);
        if (heads <= 0 || hidden % heads != 0) throw new IllegalArgumentException("BertWeights: num_heads " + heads + " does not divide hidden " + hidden);
        List<Layer> layers = new ArrayList<>(l);
        int inter = -1, next = 0;
        for (int i = 0; i < l; i++) {
            Node a = attns.get(i);
            Node[] qkv = new Node[3];
            for (int j = 0; j < 3; j++) {
                Node p = producer.get(a.input(j));
                if (p == null || p.op() != Op.LINEAR) throw new IllegalArgumentException("BertWeights: input " + j + " of " + a.name() + " is not made by a LINEAR");
                qkv[j] = p;
            }
            double scale = a.attrDouble("scale", 1 / Math.sqrt((double) hidden / heads));
            if (Math.abs(scale * Math.sqrt((double) hidden / heads) - 1) > 1e-5) {
                throw new IllegalArgumentException("BertWeights: attention scale " + scale + " of " + a.name() + " is not 1/sqrt(head dim)");
            }
            List<Node> rest = new ArrayList<>(3);
            while (rest.size() < 3 && next < linears.size()) {
                Node n = linears.get(next++);
                if (n != qkv[0] && n != qkv[1] && n != qkv[2]) rest.add(n);
            }
            if (rest.size() != 3) throw new IllegalArgumentException("BertWeights: layer " + i + " lacks its output / FFN linears");
            Node o = rest.get(0), f1 = rest.get(1), f2 = rest.get(2);
            for (Node n : List.of(qkv[0], qkv[1], qkv[2], o, f2)) requireAct(n, "none");
            requireAct(f1, "gelu");
            int in = (int) Compression.outFeatures(f1);
            if (inter >= 0 && in != inter) throw new IllegalArgumentException("BertWeights: FFN widths differ between layers");
            inter = in;
            Node ln1 = lns.get(1 + 2 * i), ln2 = lns.get(2 + 2 * i);
            layers.add(new Layer(w(qkv[0]), b(qkv[0]), w(qkv[1]), b(qkv[1]), w(qkv[2]), b(qkv[2]), w(o), b(o),
                    c(ln1, 1, hidden), c(ln1, 2, hidden), w(f1), b(f1), w(f2), b(f2), c(ln2, 1, hidden), c(ln2, 2, hidden)));
        }
        return new BertWeights(hidden, heads, inter, eps, word, pos, type, c(embLn, 1, hidden), c(embLn, 2, hidden), layers);
    }

    private static void requireAct(Node n, String act) {
        String a = n.attrString("activation", "none");
        if (!a.equals(act)) throw new IllegalArgumentException("BertWeights: " + n.name() + " has activation " + a + ", expected " + act);
        if (!n.input(1).isConstant()) throw new IllegalArgumentException("BertWeights: the weight of " + n.name() + " is not a constant");
    }

    private static float[] w(Node n) { return Compression.weightNK(n); }

    private static float[] b(Node n) {
        Value v = n.input(2);
        if (v == null) return new float[(int) Compression.outFeatures(n)];
        if (!v.isConstant()) throw new IllegalArgumentException("BertWeights: the bias of " + n.name() + " is not a constant");
        return v.constantData().toFloatArray();
    }

    /** Constant input i of a LAYER_NORM (zeros for an absent beta). */
    private static float[] c(Node n, int i, int hidden) {
        Value v = n.input(i);
        if (v == null && i == 2) return new float[hidden];
        if (v == null || !v.isConstant() || v.constantData().toFloatArray().length != hidden) {
            throw new IllegalArgumentException("BertWeights: input " + i + " of " + n.name() + " is not a constant [" + hidden + "]");
        }
        return v.constantData().toFloatArray();
    }
}
