#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(_MSC_VER)
#  define PT_TLS __declspec(thread)
#else
#  define PT_TLS _Thread_local
#endif

static PT_TLS char g_last_error[1024];

pt_status pt_fail(pt_status status, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    return status;
}

void pt_clear_error(void) { g_last_error[0] = '\0'; }

const char* pt_last_error(void) { return g_last_error; }

uint32_t pt_version(void) {
    return ((uint32_t)PT_VERSION_MAJOR << 16) | ((uint32_t)PT_VERSION_MINOR << 8) | PT_VERSION_PATCH;
}
