#include "internal.h"

#if defined(_OPENMP)
#  include <omp.h>
#endif

void pt_parallel_range(const pt_ctx* ctx, int64_t n, int64_t grain, pt_range_fn fn, void* arg) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t nt = ctx ? ctx->n_threads : 1;
    int64_t max_chunks = (n + grain - 1) / grain;
    if (nt > max_chunks) nt = max_chunks;
    if (nt <= 1) {
        fn(0, n, arg);
        return;
    }
#if defined(_OPENMP)
#  pragma omp parallel num_threads((int)nt)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t begin = n * t / T, end = n * (t + 1) / T;
        if (begin < end) fn(begin, end, arg);
    }
#else
    fn(0, n, arg);
#endif
}
