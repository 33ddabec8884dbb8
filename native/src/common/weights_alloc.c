/* pt_weight_alloc / pt_weight_free: see internal.h.
 *
 * Linux: slabs of at least SLAB bytes, 2 MiB-aligned, madvise(MADV_HUGEPAGE); blocks are
 * bump-allocated from the newest slab that has room; a slab is returned to the system when its
 * last block is freed. A small header before each block names its slab. Blocks smaller than
 * SMALL use plain aligned allocations (not worth a slab's space). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <pthread.h>
#include <sys/mman.h>

#define HUGE (2u << 20)
#define SLAB (32u << 20)
#define SMALL (64u << 10)
#define HDR 64

typedef struct slab {
    char* base;
    size_t size, used;
    int64_t live;
    struct slab* next;
} slab;

typedef struct {
    slab* owner;     /* NULL: a plain allocation */
    void* raw;       /* what free() takes for a plain allocation */
} hdr;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static slab* g_slabs;

static slab* slab_new(size_t need) {
    size_t size = need + HDR > SLAB ? (need + HDR + HUGE - 1) / HUGE * HUGE : SLAB;
    void* mem = mmap(NULL, size + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return NULL;
    /* keep the 2 MiB-aligned part, unmap the rest */
    uintptr_t a = (uintptr_t)mem, al = (a + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
    if (al > a) munmap(mem, al - a);
    if (a + size + HUGE > al + size) munmap((void*)(al + size), a + size + HUGE - (al + size));
#if defined(MADV_HUGEPAGE)
    madvise((void*)al, size, MADV_HUGEPAGE);
#endif
    slab* s = (slab*)calloc(1, sizeof *s);
    if (!s) {
        munmap((void*)al, size);
        return NULL;
    }
    s->base = (char*)al;
    s->size = size;
    return s;
}

void* pt_weight_alloc(size_t bytes) {
    if (bytes < SMALL) {
        void* raw = NULL;
        if (posix_memalign(&raw, 64, bytes + HDR) != 0) return NULL;
        hdr* h = (hdr*)raw;
        h->owner = NULL;
        h->raw = raw;
        return (char*)raw + HDR;
    }
    size_t need = (bytes + HDR + 63) / 64 * 64;
    pthread_mutex_lock(&g_mu);
    slab* s = g_slabs;
    if (!s || s->size - s->used < need) {
        slab* n = slab_new(need);
        if (!n) {
            pthread_mutex_unlock(&g_mu);
            return NULL;
        }
        n->next = g_slabs;
        g_slabs = n;
        s = n;
    }
    char* blk = s->base + s->used;
    s->used += need;
    s->live++;
    pthread_mutex_unlock(&g_mu);
    hdr* h = (hdr*)blk;
    h->owner = s;
    h->raw = NULL;
    return blk + HDR;
}

void pt_weight_free(void* p) {
    if (!p) return;
    hdr* h = (hdr*)((char*)p - HDR);
    if (!h->owner) {
        free(h->raw);
        return;
    }
    slab* s = h->owner;
    pthread_mutex_lock(&g_mu);
    if (--s->live == 0) {
        slab** pp = &g_slabs;
        while (*pp && *pp != s) pp = &(*pp)->next;
        if (*pp) *pp = s->next;
        munmap(s->base, s->size);
        free(s);
    }
    pthread_mutex_unlock(&g_mu);
}

#else /* other systems: plain 64-byte-aligned allocations */

#if defined(_WIN32)
#include <malloc.h>
void* pt_weight_alloc(size_t bytes) { return _aligned_malloc(bytes ? bytes : 1, 64); }
void pt_weight_free(void* p) { _aligned_free(p); }
#else
void* pt_weight_alloc(size_t bytes) {
    void* p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
}
void pt_weight_free(void* p) { free(p); }
#endif

#endif
