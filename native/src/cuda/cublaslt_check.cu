/* Compiled only when the build finds cublasLt.h: checks our run-time-loaded declarations
 * (cublaslt.cuh) against NVIDIA's header. Nothing here is linked into the library's code. */
#include <cublasLt.h>

#include "cublaslt.cuh"

static_assert(sizeof(ptlt::algo_t) == sizeof(cublasLtMatmulAlgo_t), "algo size");
static_assert(sizeof(ptlt::heuristic_t) == sizeof(cublasLtMatmulHeuristicResult_t), "heuristic size");
static_assert(offsetof(ptlt::heuristic_t, state) == offsetof(cublasLtMatmulHeuristicResult_t, state), "state offset");
static_assert(ptlt::R_32F == CUDA_R_32F && ptlt::R_16F == CUDA_R_16F && ptlt::R_16BF == CUDA_R_16BF, "dtypes");
static_assert(ptlt::COMPUTE_32F == CUBLAS_COMPUTE_32F && ptlt::COMPUTE_32F_FAST_TF32 == CUBLAS_COMPUTE_32F_FAST_TF32, "compute");
static_assert(ptlt::OP_N == CUBLAS_OP_N && ptlt::OP_T == CUBLAS_OP_T, "ops");
static_assert(ptlt::DESC_TRANSA == CUBLASLT_MATMUL_DESC_TRANSA && ptlt::DESC_TRANSB == CUBLASLT_MATMUL_DESC_TRANSB &&
              ptlt::DESC_EPILOGUE == CUBLASLT_MATMUL_DESC_EPILOGUE && ptlt::DESC_BIAS_POINTER == CUBLASLT_MATMUL_DESC_BIAS_POINTER &&
              ptlt::DESC_BIAS_DATA_TYPE == CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, "desc attrs");
static_assert(ptlt::LAYOUT_BATCH_COUNT == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT &&
              ptlt::LAYOUT_STRIDED_BATCH_OFFSET == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, "layout attrs");
static_assert(ptlt::PREF_MAX_WORKSPACE_BYTES == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES &&
              ptlt::PREF_MIN_ALIGNMENT_A == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES &&
              ptlt::PREF_MIN_ALIGNMENT_B == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES &&
              ptlt::PREF_MIN_ALIGNMENT_C == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES &&
              ptlt::PREF_MIN_ALIGNMENT_D == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, "pref attrs");
static_assert(ptlt::EPI_DEFAULT == CUBLASLT_EPILOGUE_DEFAULT && ptlt::EPI_RELU == CUBLASLT_EPILOGUE_RELU &&
              ptlt::EPI_BIAS == CUBLASLT_EPILOGUE_BIAS && ptlt::EPI_RELU_BIAS == CUBLASLT_EPILOGUE_RELU_BIAS &&
              ptlt::EPI_GELU == CUBLASLT_EPILOGUE_GELU && ptlt::EPI_GELU_BIAS == CUBLASLT_EPILOGUE_GELU_BIAS, "epilogues");
/* quant.cu's int8 path */
namespace ptq { constexpr int R_8I = 3, R_32I = 10, COMPUTE_32I = 72; }
static_assert(ptq::R_8I == CUDA_R_8I && ptq::R_32I == CUDA_R_32I && ptq::COMPUTE_32I == CUBLAS_COMPUTE_32I, "int8 types");
