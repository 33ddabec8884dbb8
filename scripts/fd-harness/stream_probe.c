/* A probe of the access pattern alone (issue 3, session 7), not part of the build: T threads, each
 * over its own 256/T MiB in S streams (equal segments). Demand loads walk the streams in turn, CB
 * lines per visit (128 = a 32-row block of bf16 K or V); a separate prefetcht1 cursor walks the
 * same lines LEAD lines ahead (one prefetch per demand line), in turn every Cp lines per stream
 * (0: no prefetch), or, with GS > 0, streams in pairs (K, V of one half) switching pair every GS
 * lines per stream. Each figure is the pattern's rate over an 8-stream read of 512 MiB timed right
 * before it (T threads), median (min..max) of REPS.
 * Build: gcc -O2 -fopenmp -mavx512f scripts/fd-harness/stream_probe.c -o /tmp/sp && /tmp/sp REPS T */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include <omp.h>
#include "probe_common.h"
static inline const char* at(const char*b,size_t seg,int S,int C,size_t i){ /* i-th line in order (S, C) */
 size_t round=i/((size_t)S*C), r=i%((size_t)S*C); int s=(int)(r/C); size_t c=r%C; return b+s*seg+(round*C+c)*64; }
typedef struct { const char* b; size_t seg, base; int S, C, s, c; } cur;
static inline const char* nx(cur* u){ const char* q=u->b+u->s*u->seg+u->base+64*(size_t)u->c;
 if(++u->c==u->C){ u->c=0; if(++u->s==u->S){ u->s=0; u->base+=64*(size_t)u->C; } } return q; }
typedef struct { const char* b; size_t seg; int S, C, CG; size_t base[16]; int g, s, c, cg; } gcur;
static inline const char* gnx(gcur* u){ int st=2*u->g+u->s; const char* q=u->b+st*u->seg+u->base[st]+64*(size_t)u->c;
 if(++u->c==u->C){ u->c=0; u->base[st]+=64*(size_t)u->C; if(++u->s==2){ u->s=0; u->cg+=u->C; if(u->cg==u->CG){ u->cg=0; if(++u->g==u->S/2) u->g=0; } } } return q; }
static double patg(const char*b,size_t bytes,int S,int CB,int Cp,int CG,size_t lead){
 size_t seg=bytes/S, L=bytes/64; __m512i acc=_mm512_setzero_si512(); double t0=now();
 cur d={b,seg,0,S,CB,0,0}; gcur p; memset(&p,0,sizeof p); p.b=b; p.seg=seg; p.S=S; p.C=Cp; p.CG=CG;
 for(size_t i=0;i<lead;i++) gnx(&p);
 for(size_t i=0;i<L;i++){ const char* q=gnx(&p); if(i+lead<L) __asm__ volatile("prefetcht1 %0"::"m"(*q));
   acc=_mm512_add_epi64(acc,_mm512_load_si512(nx(&d))); }
 double t=now()-t0; sink+=_mm512_reduce_add_epi64(acc); return bytes/t*1e-9;}
static double pat(const char*b,size_t bytes,int S,int CB,int Cp,size_t lead){
 size_t seg=bytes/S, L=bytes/64; __m512i acc=_mm512_setzero_si512(); double t0=now();
 cur d={b,seg,0,S,CB,0,0}, p={b,seg,0,S,Cp?Cp:1,0,0};
 for(size_t i=0;i<lead;i++) nx(&p);
 for(size_t i=0;i<L;i++){ const char* q=nx(&p); if(Cp && i+lead<L) __asm__ volatile("prefetcht1 %0"::"m"(*q));
   acc=_mm512_add_epi64(acc,_mm512_load_si512(nx(&d))); }
 double t=now()-t0; sink+=_mm512_reduce_add_epi64(acc); return bytes/t*1e-9;}
static int T=1;
static double read8(const char*b,size_t bytes){ double t0=now();
 _Pragma("omp parallel num_threads(T)") { int i=omp_get_thread_num(); read8_1(b+i*(bytes/T),bytes/T); } return bytes/(now()-t0)*1e-9; }
static double run(const char*b,size_t bytes,int*c){ double t0=now();
 _Pragma("omp parallel num_threads(T)") { int i=omp_get_thread_num(); const char* bb=b+i*(bytes/T); size_t n=bytes/T;
   if(c[4]) patg(bb,n,c[0],c[1],c[2],c[4],(size_t)c[3]); else pat(bb,n,c[0],c[1],c[2],(size_t)c[3]); }
 return bytes/(now()-t0)*1e-9; }
int main(int argc,char**argv){ size_t n=(size_t)256<<20, fb=(size_t)512<<20;
 char*b=aligned_alloc(4096,n+(1<<22)),*F=aligned_alloc(4096,fb); memset(b,1,n+(1<<22)); memset(F,2,fb);
 int cfg[][5]={{2,128,4,512,0},{2,128,128,512,0},{4,128,4,512,0},{4,128,4,512,128},{4,128,128,512,0},{8,128,4,512,0},{2,128,0,0,0},{8,128,0,0,0}};
 int nc=sizeof cfg/sizeof cfg[0], reps=argc>1?atoi(argv[1]):5; T=argc>2?atoi(argv[2]):1; double r[32][16], rd[16];
 for(int k=0;k<reps;k++) for(int c=0;c<nc;c++){ rd[k]=read8(F,fb); r[c][k]=run(b,n,cfg[c])/rd[k]; }
 for(int c=0;c<nc;c++){ double a[16]; memcpy(a,r[c],sizeof a); for(int i=0;i<reps;i++)for(int j=i+1;j<reps;j++)if(a[j]<a[i]){double x=a[i];a[i]=a[j];a[j]=x;}
   printf("S=%d CB=%3d Cp=%3d GS=%3d LEAD=%4d: median %.0f%% of read8 (%.0f..%.0f)\n",cfg[c][0],cfg[c][1],cfg[c][2],cfg[c][4],cfg[c][3],100*a[reps/2],100*a[0],100*a[reps-1]); }
 printf("read8 last %.2f GB/s\n", rd[reps-1]); }
