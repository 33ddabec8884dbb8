#!/usr/bin/env python3
"""HF transformers' generate in bf16 on the GPU: the baseline of `panatron bench generate --device cuda`.

Usage: bench_decode_hf.py MODEL_DIR --batch B --prompt-len P --new-tokens N --repeats R
Loads MODEL_DIR (config.json + safetensors, e.g. from tests/models/make_random_gpt2.py) with
AutoModelForCausalLM in bf16 on cuda:0, random prompt ids (seed 42), greedy generate with
min_new_tokens = max_new_tokens = N (no early stop), KV cache on (HF's default dynamic cache).
Decode tokens/s = B * (N - 1) / (t(N new tokens) - t(1 new token)): prefill and the first token
cancel. Each time is one generate call after torch.cuda.synchronize(); median (min..max) of R
repeats after one warm-up. Prints one JSON line.
"""
import argparse, json, statistics, time

import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--prompt-len", type=int, default=64)
ap.add_argument("--new-tokens", type=int, default=128)
ap.add_argument("--repeats", type=int, default=5)
a = ap.parse_args()

try:
    m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16)
except TypeError:
    m = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16)
m = m.to("cuda").eval()
g = torch.Generator().manual_seed(42)
ids = torch.randint(0, m.config.vocab_size, (a.batch, a.prompt_len), generator=g).to("cuda")
mask = torch.ones_like(ids)


def gen(n):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = m.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                         pad_token_id=0, use_cache=True)
    torch.cuda.synchronize()
    assert out.shape == (a.batch, a.prompt_len + n), out.shape
    return time.perf_counter() - t0


gen(a.new_tokens)  # warm-up
gen(1)
dec, e2e = [], []
for _ in range(a.repeats):
    t1 = gen(1)
    tn = gen(a.new_tokens)
    dec.append(a.batch * (a.new_tokens - 1) / (tn - t1))
    e2e.append(a.batch * a.new_tokens / tn)
dec.sort()
e2e.sort()
print(json.dumps({"impl": "hf_generate_bf16", "torch": torch.__version__, "transformers": __import__("transformers").__version__,
                  "device": torch.cuda.get_device_name(0), "batch": a.batch, "prompt_len": a.prompt_len, "new_tokens": a.new_tokens,
                  "repeats": a.repeats, "decode_tokens_per_s": statistics.median(dec), "decode_tokens_per_s_min": dec[0],
                  "decode_tokens_per_s_max": dec[-1], "end_to_end_tokens_per_s": statistics.median(e2e),
                  "decode_ms_per_step": 1000.0 * a.batch / statistics.median(dec)}))
