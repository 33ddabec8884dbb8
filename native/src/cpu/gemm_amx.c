/* AMX-BF16 GEMM backend (placeholder until the tile kernel lands). */
#include "cpu/gemm.h"

const pt_gemm_kernel* pt_gemm_kernel_amx_bf16(void) { return NULL; }
