/* Tiny C test harness: random inputs, double-precision references, NaN-poisoned outputs. */
#ifndef PT_TEST_H
#define PT_TEST_H
#include "panatron/panatron.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

extern int pt_test_failures, pt_test_checks;

#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        pt_test_checks++;                                                   \
        if (!(cond)) {                                                      \
            pt_test_failures++;                                             \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
        }                                                                   \
    } while (0)

#define EXPECT_OK(call)                                                     \
    do {                                                                    \
        pt_status s_ = (call);                                              \
        EXPECT(s_ == PT_OK, "%s returned %d: %s", #call, (int)s_, pt_last_error()); \
    } while (0)

/* Deterministic per-test RNG (xorshift), uniform in [lo, hi). */
void pt_test_seed(uint64_t seed);
double pt_test_uniform(double lo, double hi);
void pt_test_fill(float* x, size_t n, double lo, double hi);
void pt_test_poison(void* x, size_t bytes); /* all-ones bytes: NaN in f32/bf16/f16 */
/* Contiguous descriptor for `data`. */
pt_tensor pt_test_tensor(void* data, int32_t dtype, int ndim, const int64_t* shape);
/* Max of |got - want| / (atol + rtol * |want|); > 1 means out of tolerance. NaN -> inf. */
double pt_test_err(const float* got, const double* want, size_t n, double atol, double rtol);
/* 1 when a context made with these parameters would dispatch exactly like one this function was
 * asked about before in this process (the same caps after `disable_caps`, thread count and use of
 * oneDNN): configurations that differ only in features this CPU or build lacks run the same code,
 * so a test runs each distinct one once (under qemu everything is the portable code). Prints a
 * line when it says 1. threads 0 = the default; use_onednn counts only where oneDNN is built in. */
int pt_test_same_dispatch(const char* name, uint32_t disable_caps, int threads, int use_onednn);
/* 1 when PT_TEST_QUICK is set (scripts/cross-build.sh sets it for tests run under qemu, 10-50x
 * slower than native): tests then take every other size of their longest sweeps. */
int pt_test_quick(void);
/* Prints the closing line and returns the process exit code. */
int pt_test_finish(const char* name);
#endif
