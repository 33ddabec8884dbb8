#!/bin/bash
# scripts/fd-harness/ab_build.sh OUT OLD_AMX OLD_AVX512 [NEW_AMX NEW_AVX512]   (absolute paths; needs build/dev built)
#   A pt-bench (in OUT) whose library runs the OLD copies of flash_attn_amx.c / flash_attn_avx512.c
#   wherever the context lacks PT_CPU_AVX512_BF16, the new ones (default: the tree's) otherwise, so
#   that `OUT/pt-bench --op attn-decode ... --vs bf16` alternates old and new decode kernels per
#   repeat, each after its own copy + read (BENCHMARKS.md, issue 3, session 7). A/B only: the
#   dispatch edit is made on a copy of flash_attn.c in OUT, never in the tree.
#   e.g. git show HEAD~1:native/src/cpu/flash_attn_amx.c > /tmp/amx_old.c (same for _avx512.c), then
#        scripts/fd-harness/ab_build.sh /tmp/ab /tmp/amx_old.c /tmp/avx_old.c
set -e
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$1 oamx=$2 oavx=$3 namx=${4:-$root/native/src/cpu/flash_attn_amx.c} navx=${5:-$root/native/src/cpu/flash_attn_avx512.c}
B=$root/build/dev
mkdir -p $out; cd $B
DEF="-DPANATRON_BUILD -DPT_HAVE_ONEDNN=1 -DPT_HAVE_X86_KERNELS=1 -Dpanatron_EXPORTS"
INC="-I$root/native/include -I$root/native/src/common -I$root/native/src -I$root/native/src/cpu"
CF="-O3 -DNDEBUG -fPIC -fvisibility=hidden -w -fno-math-errno -ffp-contract=off -fopenmp -std=gnu11 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mavx512bf16 -mfma -mf16c -mavx2 -mamx-tile -mamx-int8 -mamx-bf16"
cc $DEF $INC $CF -c $namx -o $out/amx.o
cc $DEF $INC $CF -c $navx -o $out/avx.o
cc $DEF $INC $CF -Dpt_fd_chunk_amx=pt_fd_chunk_amx_old -Dpt_fa_tile_amx=pt_fa_tile_amx_old -c $oamx -o $out/amx_old.o
cc $DEF $INC $CF -Dpt_fd_chunk_avx512=pt_fd_chunk_avx512_old -Dpt_fa_tile_avx512=pt_fa_tile_avx512_old -c $oavx -o $out/avx_old.o
sed 's|    run.item_prefix = prefix; run.nsplit = nsplit;|    { extern bool pt_fd_chunk_amx_old(const pt_fd_problem*, const pt_fd_item*, float*); extern bool pt_fd_chunk_avx512_old(const pt_fd_problem*, const pt_fd_item*, float*);\n      if (!(ctx->caps \& PT_CPU_AVX512_BF16)) { if (run.fn == pt_fd_chunk_amx) run.fn = pt_fd_chunk_amx_old; if (run.fn == pt_fd_chunk_avx512) run.fn = pt_fd_chunk_avx512_old; } }\n    run.item_prefix = prefix; run.nsplit = nsplit;|' $root/native/src/cpu/flash_attn.c > $out/flash_attn_ab.c
grep -q pt_fd_chunk_amx_old $out/flash_attn_ab.c
cc $DEF $INC $CF -c $out/flash_attn_ab.c -o $out/fa.o
objs=$(sed 's/.*-o libpanatron.so //' CMakeFiles/panatron.dir/link.txt)
objs=${objs//CMakeFiles\/panatron.dir\/native\/src\/cpu\/flash_attn_amx.c.o/$out\/amx.o $out\/amx_old.o}
objs=${objs//CMakeFiles\/panatron.dir\/native\/src\/cpu\/flash_attn_avx512.c.o/$out\/avx.o $out\/avx_old.o}
objs=${objs//CMakeFiles\/panatron.dir\/native\/src\/cpu\/flash_attn.c.o/$out\/fa.o}
cc -fPIC -O3 -shared -Wl,--disable-new-dtags -Wl,-rpath,'$ORIGIN' -Wl,-soname,libpanatron.so -o $out/libpanatron.so $objs
ln -sf $B/libdnnl.so.3 $B/libgomp.so.1 $out/
cc -O3 CMakeFiles/pt-bench.dir/native/bench/*.o -o $out/pt-bench -Wl,--disable-new-dtags -Wl,-rpath,$out $out/libpanatron.so -lm
echo built $out
