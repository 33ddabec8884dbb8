#include "internal.h"

#include <stdlib.h>

#define PT_SCRATCH_SLOTS 5

#if defined(_WIN32)
#  include <malloc.h>
static void* aligned_alloc64(size_t n) { return _aligned_malloc(n, 64); }
static void aligned_free(void* p) { _aligned_free(p); }
#else
static void* aligned_alloc64(size_t n) {
    void* p = NULL;
    return posix_memalign(&p, 64, n) == 0 ? p : NULL;
}
static void aligned_free(void* p) { free(p); }
#endif

#if !defined(_WIN32) && !defined(__APPLE__) && defined(__GNUC__)
#  include <pthread.h>
/* Freed at thread exit through a pthread key destructor. */
typedef struct { void* p[PT_SCRATCH_SLOTS]; size_t n[PT_SCRATCH_SLOTS]; } scratch_t;
static pthread_key_t g_key;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void destroy(void* v) {
    scratch_t* s = (scratch_t*)v;
    for (int i = 0; i < PT_SCRATCH_SLOTS; i++) aligned_free(s->p[i]);
    free(s);
}
static void make_key(void) { pthread_key_create(&g_key, destroy); }
static scratch_t* get_scratch(void) {
    pthread_once(&g_once, make_key);
    scratch_t* s = (scratch_t*)pthread_getspecific(g_key);
    if (!s) {
        s = (scratch_t*)calloc(1, sizeof *s);
        if (s) pthread_setspecific(g_key, s);
    }
    return s;
}
#else
/* Other platforms: thread-local pointers; freed by the OS at process exit. */
typedef struct { void* p[PT_SCRATCH_SLOTS]; size_t n[PT_SCRATCH_SLOTS]; } scratch_t;
#  if defined(_MSC_VER)
static __declspec(thread) scratch_t g_s;
#  else
static _Thread_local scratch_t g_s;
#  endif
static scratch_t* get_scratch(void) { return &g_s; }
#endif

void* pt_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= PT_SCRATCH_SLOTS) return NULL;
    scratch_t* s = get_scratch();
    if (!s) return NULL;
    if (s->n[slot] < bytes) {
        aligned_free(s->p[slot]);
        size_t want = bytes + bytes / 4 + 64;
        s->p[slot] = aligned_alloc64(want);
        s->n[slot] = s->p[slot] ? want : 0;
        if (!s->p[slot]) return NULL;
    }
    return s->p[slot];
}
