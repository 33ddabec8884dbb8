/* Compiled only when the build finds cusparseLt.h (and the toolkit's cusparse.h): checks our
 * run-time-loaded declarations (cusparselt.cuh) against NVIDIA's header. Nothing here is
 * linked into the library's code. */
#include <cusparseLt.h>

#include "cusparselt.cuh"

static_assert(sizeof(ptsl::handle_t) == sizeof(cusparseLtHandle_t) && alignof(ptsl::handle_t) == alignof(cusparseLtHandle_t), "handle");
static_assert(sizeof(ptsl::mat_t) == sizeof(cusparseLtMatDescriptor_t), "mat descriptor");
static_assert(sizeof(ptsl::mmdesc_t) == sizeof(cusparseLtMatmulDescriptor_t), "matmul descriptor");
static_assert(sizeof(ptsl::algsel_t) == sizeof(cusparseLtMatmulAlgSelection_t), "alg selection");
static_assert(sizeof(ptsl::plan_t) == sizeof(cusparseLtMatmulPlan_t), "plan");
static_assert(ptsl::SUCCESS == CUSPARSE_STATUS_SUCCESS, "status");
static_assert(ptsl::R_16F == CUDA_R_16F && ptsl::R_16BF == CUDA_R_16BF, "dtypes");
static_assert(ptsl::ORDER_COL == CUSPARSE_ORDER_COL && ptsl::ORDER_ROW == CUSPARSE_ORDER_ROW, "orders");
static_assert(ptsl::OP_N == CUSPARSE_OPERATION_NON_TRANSPOSE && ptsl::OP_T == CUSPARSE_OPERATION_TRANSPOSE, "ops");
static_assert(ptsl::SPARSITY_50 == CUSPARSELT_SPARSITY_50_PERCENT, "sparsity");
static_assert(ptsl::COMPUTE_32F == CUSPARSE_COMPUTE_32F, "compute");
static_assert(ptsl::ALG_DEFAULT == CUSPARSELT_MATMUL_ALG_DEFAULT, "alg");
static_assert(ptsl::ALG_CONFIG_ID == CUSPARSELT_MATMUL_ALG_CONFIG_ID && ptsl::ALG_CONFIG_MAX_ID == CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, "alg attrs");

