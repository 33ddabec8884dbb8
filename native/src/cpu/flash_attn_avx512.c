/* temporary stub */
#include "cpu/flash_attn.h"
bool pt_fa_tile_avx512(const pt_fa_problem* p, const pt_fa_tile* t) { return pt_fa_tile_portable(p, t); }
bool pt_fd_chunk_avx512(const pt_fd_problem* p, const pt_fd_item* it, float* part) { return pt_fd_chunk_portable(p, it, part); }
