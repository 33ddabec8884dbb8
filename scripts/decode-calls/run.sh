#!/bin/bash
# scripts/decode-calls/run.sh LIBDIR_A LIBDIR_B [ROUNDS]   (from the repository root)
#   The native cost of a GPT-2 decode step's small calls (call_cost.c: pt_kv_cache_append of one
#   token, pt_flash_attn_decode at KV 16 and 48; 12 heads, D = 64, warm caches) and of decode
#   attention over 12 layers' caches at KV 16..80 with 0 / 8 MiB streamed between calls
#   (attn_layers.c), for two builds of libpanatron.so alternated (each LIBDIR holds
#   libpanatron.so and the libdnnl.so.3 / libgomp.so.1 of its build directory), at 2 and 1 threads.
#   e.g. mkdir -p /tmp/a && cp build/dev/lib*.so* /tmp/a   (one build), the same into /tmp/b (the other)
#        /tmp/rb/quiet.sh scripts/decode-calls/run.sh /tmp/a /tmp/b 3
set -e
a=$1 b=$2 rounds=${3:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d)
for h in call_cost attn_layers; do
  gcc -O2 -I"$root/native/include" "$root/scripts/decode-calls/$h.c" -o "$out/$h" -L"$a" -lpanatron -Wl,-rpath-link,"$a"
done
for t in 2 1; do for i in $(seq "$rounds"); do for d in "$a" "$b"; do
  echo "$d, $t threads:"; LD_LIBRARY_PATH=$d "$out/call_cost" "$t" 3000
done; done; done
for i in $(seq "$rounds"); do for d in "$a" "$b"; do for e in 0 8; do
  echo -n "$d: "; LD_LIBRARY_PATH=$d "$out/attn_layers" 2 "$e" 5
done; done; done
