/* cuSPARSELt (2:4 structured sparsity), loaded at run time (dlopen) like cuBLASLt
 * (cublaslt.cuh): building needs no cuSPARSELt headers or libraries, and libpanatron_cuda
 * loads where cuSPARSELt is absent (pt_cuda_sparse24_* then report PT_ERR_UNSUPPORTED). The
 * declarations below are the subset of cusparseLt.h (0.8) we call; sizes and values are
 * cuSPARSELt's ABI. cusparselt_check.cu static_asserts them against the real header whenever
 * the build finds one (CMake: PANATRON_CUSPARSELT_INCLUDE or the toolkit's include dirs). */
#ifndef PT_CUSPARSELT_CUH
#define PT_CUSPARSELT_CUH

#include <cuda_runtime.h>
#include <stdint.h>

namespace ptsl {

typedef int status_t; /* cusparseStatus_t */
constexpr status_t SUCCESS = 0;
/* The opaque objects are caller-allocated, 512 bytes aligned to 16 in 0.8. */
struct alignas(16) handle_t { uint8_t data[512]; };
struct alignas(16) mat_t { uint8_t data[512]; };     /* cusparseLtMatDescriptor_t */
struct alignas(16) mmdesc_t { uint8_t data[512]; };  /* cusparseLtMatmulDescriptor_t */
struct alignas(16) algsel_t { uint8_t data[512]; };  /* cusparseLtMatmulAlgSelection_t */
struct alignas(16) plan_t { uint8_t data[512]; };    /* cusparseLtMatmulPlan_t */

/* cudaDataType_t */
constexpr int R_16F = 2, R_16BF = 14;
/* cusparseOrder_t, cusparseOperation_t (cusparse.h) */
constexpr int ORDER_COL = 1, ORDER_ROW = 2;
constexpr int OP_N = 0, OP_T = 1;
/* cusparseLtSparsity_t, cusparseComputeType, cusparseLtMatmulAlg_t */
constexpr int SPARSITY_50 = 0;
constexpr int COMPUTE_32F = 2;
constexpr int ALG_DEFAULT = 0;
/* cusparseLtMatmulAlgAttribute_t */
constexpr int ALG_CONFIG_ID = 0, ALG_CONFIG_MAX_ID = 1;

struct api {
    status_t (*Init)(handle_t*);
    status_t (*Destroy)(const handle_t*);
    const char* (*GetErrorString)(status_t);
    status_t (*GetProperty)(int, int*);
    status_t (*DenseDescriptorInit)(const handle_t*, mat_t*, int64_t, int64_t, int64_t, uint32_t, int, int);
    status_t (*StructuredDescriptorInit)(const handle_t*, mat_t*, int64_t, int64_t, int64_t, uint32_t, int, int, int);
    status_t (*MatDescriptorDestroy)(const mat_t*);
    status_t (*MatmulDescriptorInit)(const handle_t*, mmdesc_t*, int, int, const mat_t*, const mat_t*, const mat_t*,
                                     const mat_t*, int);
    status_t (*MatmulAlgSelectionInit)(const handle_t*, algsel_t*, const mmdesc_t*, int);
    status_t (*MatmulAlgSelectionDestroy)(const algsel_t*);
    status_t (*MatmulAlgGetAttribute)(const handle_t*, const algsel_t*, int, void*, size_t);
    status_t (*MatmulGetWorkspace)(const handle_t*, const plan_t*, size_t*);
    status_t (*MatmulPlanInit)(const handle_t*, plan_t*, const mmdesc_t*, const algsel_t*);
    status_t (*MatmulPlanDestroy)(const plan_t*);
    status_t (*Matmul)(const handle_t*, const plan_t*, const void*, const void*, const void*, const void*, const void*,
                       void*, void*, cudaStream_t*, int32_t);
    status_t (*MatmulSearch)(const handle_t*, plan_t*, const void*, const void*, const void*, const void*, const void*,
                             void*, void*, cudaStream_t*, int32_t);
    status_t (*SpMMACompressedSize2)(const handle_t*, const mat_t*, size_t*, size_t*);
    status_t (*SpMMACompress2)(const handle_t*, const mat_t*, int, int, const void*, void*, void*, cudaStream_t);
    status_t (*SpMMAPruneCheck2)(const handle_t*, const mat_t*, int, int, const void*, int*, cudaStream_t);
};

/* The loaded API, or NULL with the last error set (PT_ERR_UNSUPPORTED). Loaded once.
 * Search order: $PANATRON_CUSPARSELT, libcusparseLt.so.0, libcusparseLt.so. */
const api* load();

}  // namespace ptsl

#endif
