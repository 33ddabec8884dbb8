#!/usr/bin/env python3
"""Writes a small byte-level BPE tokenizer.json (GPT-2 layout) for the tiny decoder models.

Usage: python3 make_tiny_tokenizer.py MODEL_DIR...   (writes MODEL_DIR/tokenizer.json and
generation_config.json into each). Pure Python, deterministic: vocabulary of 512 ids = 3 special
tokens (<pad>=0, <s>=1, </s>=2, matching the tiny configs' pad/bos/eos ids), the 256 byte tokens
(3..258) and 253 merges learned greedily on the English text below. The tiny models' weights are
random, so any tokenizer with their vocabulary size serves to test text in / text out.
"""
import json, os, re, sys

TEXT = """The quick brown fox jumps over the lazy dog. Panatron runs transformer models on the CPU
with kernels written in C and a Java library over them. A decoder language model reads a prompt,
keeps the keys and values of every token in a cache, and then generates one token at a time: the
model predicts the next token, the sampler picks it, and the text is streamed to the reader as soon
as it is complete. There are many ways to store the weights of the linear layers: as float numbers
of thirty two bits, as brain floats of sixteen bits, as integers of eight bits with a scale for
each channel, or as four bit codes with a scale for each group of weights. The smaller the weights,
the faster the model reads them from memory, and the faster it writes the story of the fox and the dog.
"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def main(dirs):
    b2u = bytes_to_unicode()
    specials = ["<pad>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    # GPT-2-like pre-tokenization (ASCII approximation is enough for learning merges)
    words = {}
    for w in re.findall(r"'s|'t| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+", TEXT):
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    while len(vocab) < 512:
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best[0] + " " + best[1])
        vocab[best[0] + best[1]] = len(vocab)
        nw = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            nw[tuple(out)] = nw.get(tuple(out), 0) + c
        words = nw
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in enumerate(specials)],
        "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    for d in dirs:
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tok, f, ensure_ascii=False, indent=None)
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": [2], "pad_token_id": 0}, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
