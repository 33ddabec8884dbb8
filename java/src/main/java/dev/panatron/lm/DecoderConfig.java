package dev.panatron.lm;

import com.fasterxml.jackson.databind.JsonNode;
import dev.panatron.io.HfConfig;
import dev.panatron.io.ModelFormatException;

/**
 * The hyper-parameters of a decoder LM, read from a HF {@code config.json}.
 *
 * @param arch          which forward pass: GPT-2 (LayerNorm, learned positions, GELU-tanh, fused
 *                      Conv1D qkv) or Llama (RMSNorm, RoPE, SwiGLU; Mistral and Qwen2 too)
 * @param headDim       per-head size
 * @param ropeInvFreq   the RoPE inverse frequencies [headDim/2] with any scaling applied (Llama), or null
 * @param slidingWindow tokens a query sees (itself included), or 0 for none
 * @param qkvBias       q/k/v projections carry a bias (Qwen2)
 * @param tied          lm_head shares the token embedding
 */
public record DecoderConfig(Arch arch, String modelType, int vocab, int hidden, int layers, int heads, int kvHeads,
                            int headDim, int intermediate, int maxPositions, float normEps, float[] ropeInvFreq,
                            int slidingWindow, boolean qkvBias, boolean tied, int eosId) {

    /** The forward-pass family. */
    public enum Arch { GPT2, LLAMA }

    /**
     * Reads the decoder hyper-parameters.
     *
     * @throws ModelFormatException for an unknown {@code model_type} or values that do not fit
     *                              (heads not dividing hidden, kv heads not dividing heads, ...)
     */
    public static DecoderConfig from(HfConfig c) {
        String type = c.modelType();
        try {
            return switch (type) {
                case "gpt2" -> gpt2(c);
                case "llama", "mistral", "qwen2" -> llama(c, type);
                default -> throw new ModelFormatException(c.file(), "unknown decoder architecture model_type '" + type
                        + "' (supported: gpt2, llama, mistral, qwen2)");
            };
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(c.file(), e.getMessage());
        }
    }

    private static DecoderConfig gpt2(HfConfig c) {
        int h = c.getInt("n_embd"), heads = c.getInt("n_head");
        String act = c.getString("activation_function", "gelu_new");
        if (!act.equals("gelu_new") && !act.equals("gelu_pytorch_tanh")) {
            throw new IllegalArgumentException("gpt2 activation_function '" + act + "' is not supported (gelu_new only)");
        }
        if (c.raw().path("scale_attn_by_inverse_layer_idx").asBoolean(false) || c.raw().path("reorder_and_upcast_attn").asBoolean(false)) {
            throw new IllegalArgumentException("gpt2 scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported");
        }
        checkHeads(h, heads, heads);
        return new DecoderConfig(Arch.GPT2, "gpt2", c.vocabSize(), h, c.getInt("n_layer"), heads, heads, h / heads,
                c.getInt("n_inner", 4 * h), c.getInt("n_positions"), (float) c.getDouble("layer_norm_epsilon", 1e-5), null,
                0, true, true, c.getInt("eos_token_id", -1));
    }

    private static DecoderConfig llama(HfConfig c, String type) {
        int h = c.hiddenSize(), heads = c.numAttentionHeads(), kv = c.getInt("num_key_value_heads", heads);
        checkHeads(h, heads, kv);
        int hd = c.getInt("head_dim", h / heads);
        String act = c.hiddenAct();
        if (!act.equals("silu")) throw new IllegalArgumentException(type + " hidden_act '" + act + "' is not supported (silu only)");
        int window = 0;
        if (type.equals("mistral") && c.has("sliding_window")) window = c.getInt("sliding_window");
        if (type.equals("qwen2") && c.raw().path("use_sliding_window").asBoolean(false)) {
            throw new IllegalArgumentException("qwen2 use_sliding_window=true is not supported");
        }
        boolean bias = type.equals("qwen2") || c.raw().path("attention_bias").asBoolean(false);
        if (c.raw().path("mlp_bias").asBoolean(false)) throw new IllegalArgumentException("mlp_bias=true is not supported");
        return new DecoderConfig(Arch.LLAMA, type, c.vocabSize(), h, c.numHiddenLayers(), heads, kv, hd, c.intermediateSize(),
                c.maxPositionEmbeddings(), (float) c.getDouble("rms_norm_eps", 1e-6), ropeInvFreq(c, hd), window, bias,
                c.raw().path("tie_word_embeddings").asBoolean(false), eos(c));
    }

    private static int eos(HfConfig c) {
        JsonNode e = c.raw().path("eos_token_id");
        if (e.isInt()) return e.asInt();
        if (e.isArray() && !e.isEmpty()) return e.get(0).asInt();
        return -1;
    }

    private static void checkHeads(int h, int heads, int kv) {
        if (h < 1 || heads < 1 || kv < 1) throw new IllegalArgumentException("hidden " + h + ", heads " + heads + ", kv heads " + kv + " must be >= 1");
        if (heads % kv != 0) throw new IllegalArgumentException("num_attention_heads " + heads + " is not a multiple of num_key_value_heads " + kv);
    }

    /**
     * RoPE inverse frequencies as HF computes them: {@code theta^(-2i/d)}, then the
     * {@code rope_scaling} (or transformers 5's {@code rope_parameters}) of type default,
     * linear or llama3.
     */
    static float[] ropeInvFreq(HfConfig c, int hd) {
        JsonNode rp = c.raw().path("rope_parameters");
        if (rp.isMissingNode() || rp.isNull()) rp = c.raw().path("rope_scaling");
        double theta = rp.path("rope_theta").asDouble(c.getDouble("rope_theta", 10000.0));
        String type = rp.path("rope_type").asText(rp.path("type").asText("default"));
        float[] inv = new float[hd / 2];
        for (int i = 0; i < inv.length; i++) {
            float expo = (float) (2 * i) / hd;  // float32 like torch
            inv[i] = (float) (1.0 / Math.pow(theta, expo));
        }
        switch (type) {
            case "default" -> { }
            case "linear" -> {
                float f = (float) rp.path("factor").asDouble(1.0);
                for (int i = 0; i < inv.length; i++) inv[i] /= f;
            }
            case "llama3" -> {
                double factor = rp.path("factor").asDouble(), low = rp.path("low_freq_factor").asDouble(1.0),
                        high = rp.path("high_freq_factor").asDouble(4.0), old = rp.path("original_max_position_embeddings").asDouble(8192);
                double lowWl = old / low, highWl = old / high;
                for (int i = 0; i < inv.length; i++) {
                    float f = inv[i];
                    double wl = 2 * Math.PI / f;
                    float scaled = wl > lowWl ? (float) (f / factor) : f;
                    if (!(wl < highWl) && !(wl > lowWl)) {
                        double smooth = (old / wl - low) / (high - low);
                        scaled = (float) ((1 - smooth) * scaled / factor + smooth * scaled);
                    }
                    inv[i] = scaled;
                }
            }
            default -> throw new IllegalArgumentException("rope type '" + type + "' is not supported (default, linear, llama3)");
        }
        return inv;
    }
}
