#!/bin/bash
# scripts/fd-harness/run.sh MODE N NH REPS VARIANT...   (from the repository root)
#   VARIANT = a copy of native/src/cpu/flash_attn_amx.c or flash_attn_avx512.c (its decode kernel
#   pt_fd_chunk_avx512: bf16 widened, or f32 K/V with FD_F32=1), optionally ":extra cflags"
#   e.g. git show HEAD~1:native/src/cpu/flash_attn_amx.c > /tmp/amx_old.c
#        scripts/fd-harness/run.sh dram 16384 8 9 native/src/cpu/flash_attn_amx.c /tmp/amx_old.c
#        scripts/fd-harness/run.sh cache 1024 1 2000 native/src/cpu/flash_attn_amx.c /tmp/amx_old.c
set -e
mode=$1 n=$2 nh=$3 reps=$4; shift 4
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d)
FL="-O3 -fno-math-errno -ffp-contract=off -std=gnu11 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2 -mamx-tile -mamx-int8 -mamx-bf16 -I$root/native/src -I$root/native/include -DPT_HAVE_X86_KERNELS=1"
i=0; objs=()
for v in "$@"; do
  src=${v%%:*}; extra=""; [[ $v == *:* ]] && extra=${v#*:}
  echo "v$i: $src $extra"
  gcc $FL $extra -w -c "$src" -o "$out/v$i.o" -Dpt_fd_chunk_amx=fd_v$i -Dpt_fa_tile_amx=fa_v$i -Dpt_fd_chunk_avx512=fd_v$i -Dpt_fa_tile_avx512=fa5_v$i
  objs+=("$out/v$i.o"); i=$((i + 1))
done
gcc $FL -DNVAR=$i "$root/scripts/fd-harness/fd_harness.c" "${objs[@]}" -o "$out/h" -lm
"$out/h" $i "$mode" "$n" "$nh" "$reps"
rm -rf "$out"
