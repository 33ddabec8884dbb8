# Sourced by the run_device*.sh scripts on the GPU machine, from the repository root:
#   pt_device_libs     sets and exports PANATRON_CUBLASLT and PANATRON_CUSPARSELT (the libraries of
#                      torch's nvidia pip wheels, cuBLASLt else /usr/local/cuda's), LT, SL and SLINC
#                      (cusparseLt.h's folder, for the build's declaration check), and prints them
#   pt_device_cmake    configures build/dev: Ninja, Release, libpanatron_cuda for sm_90a, no
#                      pt-bench, the cuSPARSELt header check where SLINC is set; extra args appended
pt_device_libs() {
  eval "$(python3 - <<'PY'
import glob, os, torch
d = os.path.join(os.path.dirname(torch.__file__), "..", "nvidia")
lt = glob.glob(os.path.join(d, "*", "lib", "libcublasLt.so*")) + glob.glob("/usr/local/cuda/lib64/libcublasLt.so*")
sl = glob.glob(os.path.join(d, "*", "lib", "libcusparseLt.so*"))
inc = glob.glob(os.path.join(d, "*", "include", "cusparseLt.h"))
print("LT=%s" % (os.path.realpath(lt[0]) if lt else ""))
print("SL=%s" % (os.path.realpath(sl[0]) if sl else ""))
print("SLINC=%s" % (os.path.dirname(os.path.realpath(inc[0])) if inc else ""))
PY
)"
  export PANATRON_CUBLASLT="$LT" PANATRON_CUSPARSELT="$SL"
  echo "cuBLASLt: $LT"; echo "cuSPARSELt: $SL (header: ${SLINC:-none})"
}

pt_device_cmake() {
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DPANATRON_CUDA=ON -DPANATRON_BENCH=OFF \
    -DCMAKE_CUDA_ARCHITECTURES=90a ${SLINC:+-DPANATRON_CUSPARSELT_INCLUDE="$SLINC"} "$@"
}
