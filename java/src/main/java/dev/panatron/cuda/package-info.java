/**
 * The CUDA backend: devices ({@link dev.panatron.cuda.Cuda}), contexts with a stream and a caching
 * allocator ({@link dev.panatron.cuda.CudaContext}), device tensors owned by their context
 * ({@link dev.panatron.cuda.DeviceTensor}), cuBLASLt GEMM and flash attention (prefill, varlen,
 * decode). libpanatron_cuda is loaded only when asked for and an NVIDIA driver is present; the CPU
 * path never needs it.
 */
package dev.panatron.cuda;
