#!/usr/bin/env python3
"""Writes a GPT-2-124M-shaped model with random f32 weights (numpy only) for `bench generate`.

Usage: python3 make_random_gpt2.py OUT_DIR
OUT_DIR gets config.json + model.safetensors (~500 MB): 12 layers, 768 hidden, 12 heads, vocab
50257, 1024 positions, HF GPT-2 tensor names (Conv1D [in, out] layout), weights N(0, 0.02),
norm weights 1, biases 0, seed 7. The same layout DecodeStepBench.writeGpt2 writes.
"""
import json, os, struct, sys
import numpy as np

if len(sys.argv) != 2:
    sys.exit(__doc__)
d=sys.argv[1]; os.makedirs(d,exist_ok=True)
h,L,heads,V,P=768,12,12,50257,1024
json.dump({"model_type":"gpt2","n_embd":h,"n_layer":L,"n_head":heads,"vocab_size":V,"n_positions":P,"activation_function":"gelu_new","layer_norm_epsilon":1e-5,"eos_token_id":50256},open(d+"/config.json","w"))
t={}
t["wte.weight"]=(V,h); t["wpe.weight"]=(P,h)
for i in range(L):
    p=f"h.{i}."
    t[p+"ln_1.weight"]=(h,);t[p+"ln_1.bias"]=(h,)
    t[p+"attn.c_attn.weight"]=(h,3*h);t[p+"attn.c_attn.bias"]=(3*h,)
    t[p+"attn.c_proj.weight"]=(h,h);t[p+"attn.c_proj.bias"]=(h,)
    t[p+"ln_2.weight"]=(h,);t[p+"ln_2.bias"]=(h,)
    t[p+"mlp.c_fc.weight"]=(h,4*h);t[p+"mlp.c_fc.bias"]=(4*h,)
    t[p+"mlp.c_proj.weight"]=(4*h,h);t[p+"mlp.c_proj.bias"]=(h,)
t["ln_f.weight"]=(h,);t["ln_f.bias"]=(h,)
hdr={};off=0
for k,s in t.items():
    n=int(np.prod(s))*4; hdr[k]={"dtype":"F32","shape":list(s),"data_offsets":[off,off+n]}; off+=n
hb=json.dumps(hdr).encode(); hb+=b" "*((8-len(hb)%8)%8)
rng=np.random.default_rng(7)
with open(d+"/model.safetensors","wb") as f:
    f.write(struct.pack("<Q",len(hb))); f.write(hb)
    for k,s in t.items():
        if k.endswith("ln_1.weight") or k.endswith("ln_2.weight") or k=="ln_f.weight": a=np.ones(s,np.float32)
        elif k.endswith("bias"): a=np.zeros(s,np.float32)
        else: a=(rng.standard_normal(s,dtype=np.float32)*0.02)
        f.write(a.tobytes())
