/* CPU capability probe: CPUID + XGETBV on x86 (and the Linux AMX permission request),
 * HWCAP on ARM. Probed once; the answer never changes during a process. */
#include "internal.h"

#if PT_X86
#  if defined(_MSC_VER)
#    include <intrin.h>
#    include <immintrin.h>
static void cpuid(int leaf, int sub, unsigned r[4]) { __cpuidex((int*)r, leaf, sub); }
static uint64_t xgetbv0(void) { return _xgetbv(0); }
#  else
#    include <cpuid.h>
static void cpuid(int leaf, int sub, unsigned r[4]) { __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]); }
static uint64_t xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#  endif
/* Whether the OS lets this process use AMX tiles (xcr0: XGETBV(0)). */
#  if defined(__linux__)
#    include <sys/syscall.h>
#    include <unistd.h>
/* Linux keeps AMX tile data off until a process asks (arch_prctl ARCH_REQ_XCOMP_PERM). */
static int os_amx_ok(uint64_t xcr0) {
    const long ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    unsigned long bitmask = 0;
    (void)xcr0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &bitmask) != 0) return 0;
    return (bitmask & (1ul << XFEATURE_XTILEDATA)) != 0;
}
#  elif defined(_WIN32)
#    define WIN32_LEAN_AND_MEAN
#    include <windows.h>
/* Windows (10 21H2+, 11) enables the AMX state (XTILECFG, XTILEDATA: XCR0 bits 17, 18) for every
 * process itself. Wine runs Windows code on Linux, where the state stays off without the
 * per-process permission above, which a Windows binary cannot ask for: no AMX under Wine. */
static int os_amx_ok(uint64_t xcr0) {
    if ((xcr0 & 0x60000) != 0x60000) return 0;
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    if (ntdll && GetProcAddress(ntdll, "wine_get_version")) return 0;
    return 1;
}
#  else
static int os_amx_ok(uint64_t xcr0) { (void)xcr0; return 0; }
#  endif

static uint32_t probe(void) {
    unsigned r[4], r7[4] = {0}, r71[4] = {0};
    uint32_t caps = 0;
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    cpuid(1, 0, r);
    int osxsave = (r[2] >> 27) & 1;
    int fma = (r[2] >> 12) & 1, f16c = (r[2] >> 29) & 1, avx = (r[2] >> 28) & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr0 = xgetbv0();
    int ymm_ok = (xcr0 & 0x6) == 0x6;
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
    if (max_leaf >= 7) {
        cpuid(7, 0, r7);
        cpuid(7, 1, r71);
    }
    if (ymm_ok) {
        if ((r7[1] >> 5) & 1) caps |= PT_CPU_AVX2;
        if (fma) caps |= PT_CPU_FMA;
        if (f16c) caps |= PT_CPU_F16C;
    }
    int avx512f = (r7[1] >> 16) & 1, avx512dq = (r7[1] >> 17) & 1, avx512bw = (r7[1] >> 30) & 1,
        avx512vl = (r7[1] >> 31) & 1;
    if (zmm_ok && avx512f && avx512dq && avx512bw && avx512vl) {
        caps |= PT_CPU_AVX512F;
        if ((r7[2] >> 11) & 1) caps |= PT_CPU_AVX512_VNNI;
        if ((r71[0] >> 5) & 1) caps |= PT_CPU_AVX512_BF16;
        if ((r7[3] >> 23) & 1) caps |= PT_CPU_AVX512_FP16;
    }
    int amx_tile = (r7[3] >> 24) & 1, amx_int8 = (r7[3] >> 25) & 1, amx_bf16 = (r7[3] >> 22) & 1;
    if (amx_tile && (amx_int8 || amx_bf16) && os_amx_ok(xcr0)) {
        if (amx_int8) caps |= PT_CPU_AMX_INT8;
        if (amx_bf16) caps |= PT_CPU_AMX_BF16;
    }
    return caps;
}
#elif defined(__aarch64__) || defined(_M_ARM64)
static uint32_t probe(void) { return PT_CPU_NEON; } /* NEON is mandatory on AArch64 */
#else
static uint32_t probe(void) { return 0; }
#endif

uint32_t pt_cpu_caps(void) {
    static volatile int done = 0;
    static volatile uint32_t caps = 0;
    if (!done) { /* benign race: every thread computes the same value */
        caps = probe();
        done = 1;
    }
    return caps;
}
