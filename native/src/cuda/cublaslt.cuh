/* cuBLASLt, loaded at run time (dlopen) so that building needs no cuBLAS headers or
 * libraries and libpanatron_cuda loads where cuBLAS is absent (matmul then reports
 * PT_ERR_UNSUPPORTED). The declarations below are the subset of cublasLt.h we call; their
 * values are part of cuBLASLt's ABI. cublaslt_check.cu static_asserts them against the
 * real header whenever the build finds one. */
#ifndef PT_CUBLASLT_CUH
#define PT_CUBLASLT_CUH

#include <cuda_runtime.h>
#include <stdint.h>

namespace ptlt {

typedef int status_t;      /* cublasStatus_t */
constexpr status_t SUCCESS = 0;
typedef void* handle_t;    /* cublasLtHandle_t */
typedef void* desc_t;      /* cublasLtMatmulDesc_t */
typedef void* layout_t;    /* cublasLtMatrixLayout_t */
typedef void* pref_t;      /* cublasLtMatmulPreference_t */

struct algo_t { uint64_t data[8]; };
struct heuristic_t {
    algo_t algo;
    size_t workspaceSize;
    status_t state;
    float wavesCount;
    int reserved[4];
};

/* cudaDataType_t (library_types.h) */
constexpr int R_32F = 0, R_16F = 2, R_16BF = 14;
/* cublasComputeType_t */
constexpr int COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77;
/* cublasOperation_t */
constexpr int OP_N = 0, OP_T = 1;
/* cublasLtMatmulDescAttributes_t */
constexpr int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8,
              DESC_BIAS_DATA_TYPE = 26;
/* cublasLtMatrixLayoutAttribute_t */
constexpr int LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6;
/* cublasLtMatmulPreferenceAttributes_t */
constexpr int PREF_MAX_WORKSPACE_BYTES = 1, PREF_MIN_ALIGNMENT_A = 5, PREF_MIN_ALIGNMENT_B = 6, PREF_MIN_ALIGNMENT_C = 7,
              PREF_MIN_ALIGNMENT_D = 8;
/* cublasLtEpilogue_t */
constexpr int EPI_DEFAULT = 1, EPI_RELU = 2, EPI_BIAS = 4, EPI_RELU_BIAS = 6, EPI_GELU = 32, EPI_GELU_BIAS = 36;

struct api {
    status_t (*Create)(handle_t*);
    status_t (*Destroy)(handle_t);
    const char* (*GetStatusString)(status_t);
    size_t (*GetVersion)(void);
    status_t (*MatmulDescCreate)(desc_t*, int, int);
    status_t (*MatmulDescDestroy)(desc_t);
    status_t (*MatmulDescSetAttribute)(desc_t, int, const void*, size_t);
    status_t (*MatrixLayoutCreate)(layout_t*, int, uint64_t, uint64_t, int64_t);
    status_t (*MatrixLayoutDestroy)(layout_t);
    status_t (*MatrixLayoutSetAttribute)(layout_t, int, const void*, size_t);
    status_t (*MatmulPreferenceCreate)(pref_t*);
    status_t (*MatmulPreferenceDestroy)(pref_t);
    status_t (*MatmulPreferenceSetAttribute)(pref_t, int, const void*, size_t);
    status_t (*MatmulAlgoGetHeuristic)(handle_t, desc_t, layout_t, layout_t, layout_t, layout_t, pref_t, int,
                                       heuristic_t*, int*);
    status_t (*Matmul)(handle_t, desc_t, const void*, const void*, layout_t, const void*, layout_t, const void*,
                       const void*, layout_t, void*, layout_t, const algo_t*, void*, size_t, cudaStream_t);
};

/* The loaded API, or NULL with the last error set (PT_ERR_UNSUPPORTED). Loaded once. */
const api* load();

}  // namespace ptlt

#endif
