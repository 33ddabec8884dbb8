#include "pt_test.h"
#include <string.h>

int pt_test_failures = 0, pt_test_checks = 0;
static uint64_t g_state = 0x9e3779b97f4a7c15ull;

void pt_test_seed(uint64_t seed) { g_state = seed * 0x9e3779b97f4a7c15ull + 1; }
static uint64_t next(void) {
    g_state ^= g_state << 13; g_state ^= g_state >> 7; g_state ^= g_state << 17;
    return g_state;
}
double pt_test_uniform(double lo, double hi) { return lo + (hi - lo) * (double)(next() >> 11) / 9007199254740992.0; }
void pt_test_fill(float* x, size_t n, double lo, double hi) { for (size_t i = 0; i < n; i++) x[i] = (float)pt_test_uniform(lo, hi); }
void pt_test_poison(void* x, size_t bytes) { memset(x, 0xff, bytes); }

pt_tensor pt_test_tensor(void* data, int32_t dtype, int ndim, const int64_t* shape) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data; t.dtype = dtype; t.device = PT_DEVICE_CPU; t.ndim = ndim;
    int64_t s = (int64_t)pt_dtype_size(dtype);
    for (int i = ndim - 1; i >= 0; i--) { t.shape[i] = shape[i]; t.stride[i] = s; s *= shape[i]; }
    return t;
}

double pt_test_err(const float* got, const double* want, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (atol + rtol * fabs(want[i]));
        if (!(e == e)) return INFINITY;
        if (e > worst) worst = e;
    }
    return worst;
}

int pt_test_same_dispatch(const char* name, uint32_t disable_caps, int threads, int use_onednn) {
    static struct { uint32_t caps; int threads, onednn; } seen[64];
    static int nseen = 0;
    pt_build_info bi;
    if (pt_build_info_get(&bi) != PT_OK) return 0;
    const uint32_t caps = bi.used_caps & ~disable_caps;
    const int t = threads > 0 ? threads : bi.default_threads, dnn = use_onednn && bi.onednn_version != 0;
    for (int i = 0; i < nseen; i++)
        if (seen[i].caps == caps && seen[i].threads == t && seen[i].onednn == dnn) {
            printf("skipping config \"%s\": it dispatches like an earlier one on this machine\n", name);
            return 1;
        }
    if (nseen < 64) {
        seen[nseen].caps = caps;
        seen[nseen].threads = t;
        seen[nseen].onednn = dnn;
        nseen++;
    }
    return 0;
}

int pt_test_quick(void) {
    const char* v = getenv("PT_TEST_QUICK");
    return v && *v && strcmp(v, "0") != 0;
}

int pt_test_finish(const char* name) {
    printf("%s: %d checks, %d failed\n", name, pt_test_checks, pt_test_failures);
    return pt_test_failures ? 1 : 0;
}
