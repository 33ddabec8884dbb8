#!/usr/bin/env python3
"""Builds tiny random-weight decoder LMs with HF transformers and their expected outputs.

Usage: python3 make_tiny_models.py OUT_DIR
For each architecture writes OUT_DIR/<name>/: config.json, model.safetensors (or shards +
model.safetensors.index.json), expected.safetensors with
  input_ids [T] i64, logits [T, V] f32 (fp32 forward over input_ids, every position),
  prompt_ids [P] i64, greedy_ids [32] i64 (HF generate, do_sample=False, continuation only).
Fixed seeds: re-running gives the same files for a given torch/transformers version.
"""
import json, os, sys
import torch
import transformers
from safetensors.torch import save_file
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

V, H, L, NH, NKV, I, MAXPOS = 512, 64, 2, 4, 2, 128, 128


def common():
    return dict(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=NH,
                num_key_value_heads=NKV, intermediate_size=I, max_position_embeddings=MAXPOS,
                bos_token_id=1, eos_token_id=2, pad_token_id=0)


def models():
    yield "gpt2", GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=H, n_layer=L, n_head=NH, n_positions=MAXPOS,
                                             n_inner=None, activation_function="gelu_new", bos_token_id=1,
                                             eos_token_id=2, pad_token_id=0)), None
    yield "llama", LlamaForCausalLM(LlamaConfig(**common(), rope_theta=500000.0, tie_word_embeddings=False,
                                                rms_norm_eps=1e-5,
                                                rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                              "original_max_position_embeddings": 32})), "150KB"
    yield "llama_linear_tied", LlamaForCausalLM(LlamaConfig(**common(), rope_theta=10000.0, tie_word_embeddings=True,
                                                            rms_norm_eps=1e-6,
                                                            rope_scaling={"rope_type": "linear", "factor": 2.0})), None
    yield "mistral", MistralForCausalLM(MistralConfig(**common(), sliding_window=16, rope_theta=10000.0,
                                                      tie_word_embeddings=False)), None
    yield "qwen2", Qwen2ForCausalLM(Qwen2Config(**common(), rope_theta=1000000.0, tie_word_embeddings=True,
                                                use_sliding_window=False)), None


def main():
    out = sys.argv[1]
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(3, V, (48,), generator=g)  # longer than mistral's window of 16
    prompt = ids[:8]
    for i, (name, model, shard) in enumerate(models()):
        torch.manual_seed(100 + i)
        # re-initialise with a larger std so that logits differ clearly between tokens
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, 0.08)
                elif "norm" in n or n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n.endswith("ln_f.weight"):
                    p.uniform_(0.8, 1.2)
                else:
                    p.normal_(0.0, 0.05)
        model.config._attn_implementation = "eager"
        model.eval()
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        if shard:
            model.save_pretrained(d, safe_serialization=True, max_shard_size=shard)
        else:
            model.save_pretrained(d, safe_serialization=True)
        for f in ("generation_config.json",):
            p = os.path.join(d, f)
            if os.path.exists(p):
                os.remove(p)
        with torch.no_grad():
            logits = model(ids[None, :]).logits[0].float()
            gen = model.generate(prompt[None, :], max_new_tokens=32, do_sample=False, eos_token_id=None,
                                 pad_token_id=0, min_new_tokens=32)
        greedy = gen[0, prompt.numel():]
        save_file({"input_ids": ids.clone(), "logits": logits.contiguous(), "prompt_ids": prompt.clone(),
                   "greedy_ids": greedy.clone()}, os.path.join(d, "expected.safetensors"))
        print(name, sorted(os.listdir(d)), "greedy", greedy.tolist(), flush=True)


if __name__ == "__main__":
    main()
