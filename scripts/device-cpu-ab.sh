#!/bin/bash
# scripts/device-cpu-ab.sh — an older and the current tree side by side on the device machine's CPU (an
# AMX host), without oneDNN: the C tests of the current tree, then attn-decode, spmm and fp4 of both.
# Prepare here: rm -rf devold && mkdir devold && git archive REV native CMakeLists.txt cmake | tar -x -C devold
# then run on the device: bash scripts/device-cpu-ab.sh (writes $OUT/log.txt). Session 9 used REV = bab980a.
exec > >(tee $OUT/log.txt) 2>&1
lscpu | grep -E "Model name|Flags|^CPU\(s\)|Thread|NUMA node0" | cut -c1-400
grep -o -E "amx[a-z_0-9]*" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
for v in new old; do
  src=.; [ $v = old ] && src=devold
  cmake -S $src -B /tmp/b-$v -DCMAKE_BUILD_TYPE=Release -DPANATRON_CUDA=OFF > /tmp/cm-$v.log 2>&1 || { tail -20 /tmp/cm-$v.log; exit 1; }
  cmake --build /tmp/b-$v -j16 > /tmp/bd-$v.log 2>&1 || { tail -30 /tmp/bd-$v.log; exit 1; }
done
echo "== ctest new"
(cd /tmp/b-new && ctest -j8 --output-on-failure 2>&1 | tail -25)
for t in 2 1; do for d in f32 bf16; do for v in old new; do
  echo "== attn-decode $v $d threads=$t"
  taskset -c 2,3 /tmp/b-$v/pt-bench --op attn-decode --dtype $d --heads 32 --kv-heads 8 --kv 32768,131072 --reps 5 --threads $t | grep -E "KV=|copy bandwidth"
done; done; done
for v in old new; do echo "== spmm $v"; taskset -c 2,3 /tmp/b-$v/pt-bench --op spmm --m 128,512 --kn 768x3072,3072x768 --sparsity 0.9 --block 64x16 --reps 5 --threads 2 2>&1 | tail -6; done
for v in old new; do echo "== fp4 $v"; taskset -c 2,3 /tmp/b-$v/pt-bench --op fp4 --threads 2 --reps 7 2>&1 | grep -E "^fp4 M|speed-up"; done
