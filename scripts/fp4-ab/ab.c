/* A/B of two libpanatron builds in one process: each is dlopen'ed with RTLD_LOCAL (its own pool
 * and scratch), and blocks of FP4 GEMV calls (M = 1, E2M1, G = 32, f32 scales) on cold weights
 * (256 MiB of 64-byte-aligned copies, as pt-bench --op fp4) alternate between them, the first
 * of each pair alternating too. Prints each build's median (min, max) us per call and the median
 * (min, max) over repeats of time(A) / time(B): > 1 means B is faster.
 *
 *   gcc -O2 -Inative/include scripts/fp4-ab/ab.c -o /tmp/fp4-ab -ldl
 *   cp <build A>/libpanatron.so /tmp/a.so; cp <build B>/libpanatron.so /tmp/b.so
 *   LD_LIBRARY_PATH=build/dev /tmp/fp4-ab /tmp/a.so /tmp/b.so N K THREADS REPS     (REPS <= 200)
 *
 * (LD_LIBRARY_PATH: where libdnnl is.) Used for the session-7 FP4 figures in BENCHMARKS.md. */
#include "panatron/panatron.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
typedef struct { void* h; pt_status (*ctx_create)(const pt_ctx_params*, pt_ctx**); pt_status (*mm)(pt_ctx*, const pt_tensor*, const pt_tensor*, const pt_tensor*, const pt_tensor*, pt_tensor*, const pt_fp4_matmul_params*);
  pt_status (*q)(pt_ctx*, const pt_tensor*, const pt_fp4_quant_params*, pt_tensor*, pt_tensor*); const char* (*err)(void); pt_ctx* ctx; } L;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  if(argc<7){fprintf(stderr,"usage: %s A.so B.so N K THREADS REPS\n",argv[0]);return 2;}
  const char* pa=argv[1]; const char* pb=argv[2]; int64_t n=atoll(argv[3]),k=atoll(argv[4]); int th=atoi(argv[5]); int reps=atoi(argv[6]); int G=32;
  if(k%G||k<=0||n<=0){fprintf(stderr,"K must be a positive multiple of 32\n");return 2;}
  if(reps<1||reps>200){fprintf(stderr,"REPS must be 1..200\n");return 2;}
  L l[2]; const char* paths[2]={pa,pb};
  for(int i=0;i<2;i++){ l[i].h=dlopen(paths[i],RTLD_NOW|RTLD_LOCAL); if(!l[i].h){fprintf(stderr,"%s\n",dlerror());return 1;}
    l[i].ctx_create=dlsym(l[i].h,"pt_ctx_create"); l[i].mm=dlsym(l[i].h,"pt_fp4_matmul"); l[i].q=dlsym(l[i].h,"pt_fp4_quantize"); l[i].err=dlsym(l[i].h,"pt_last_error");
    pt_ctx_params cp={th,0,0,0}; if(l[i].ctx_create(&cp,&l[i].ctx)){puts(l[i].err());return 1;} }
  int64_t ng=k/G; size_t cb=n*k/2, sb=4*n*ng; int copies=(int)(256.0*1048576.0/(cb+sb))+1;
  float* w=malloc(4*n*k); float* x=aligned_alloc(64,4*k); float*y=aligned_alloc(64,4*n+64);
  uint64_t r=88172645463325252ull; for(int64_t i=0;i<n*k;i++){r^=r<<13;r^=r>>7;r^=r<<17;w[i]=(r>>40)/8388608.0f-1;}
  for(int64_t i=0;i<k;i++){r^=r<<13;r^=r>>7;r^=r<<17;x[i]=(r>>40)/8388608.0f-1;}
  uint8_t**c=malloc(sizeof(void*)*copies); float**s=malloc(sizeof(void*)*copies);
  pt_tensor tw={w,PT_F32,PT_DEVICE_CPU,2,0,{n,k},{4*k,4}};
  pt_fp4_quant_params qp={PT_FP4_E2M1,G,1.0f,0,NULL};
  for(int i=0;i<copies;i++){c[i]=aligned_alloc(64,(cb+63)/64*64);s[i]=aligned_alloc(64,(sb+63)/64*64);
    if(i==0){pt_tensor tc={c[0],PT_U4,PT_DEVICE_CPU,2,0,{n,k},{k/2,1}},ts={s[0],PT_F32,PT_DEVICE_CPU,2,0,{n,ng},{4*ng,4}};
      if(l[0].q(l[0].ctx,&tw,&qp,&tc,&ts)){puts(l[0].err());return 1;}}
    else{memcpy(c[i],c[0],cb);memcpy(s[i],s[0],sb);}}
  pt_tensor tx={x,PT_F32,PT_DEVICE_CPU,2,0,{1,k},{4*k,4}}, ty={y,PT_F32,PT_DEVICE_CPU,2,0,{1,n},{4*n,4}};
  pt_fp4_matmul_params fp={PT_FP4_E2M1,G,0,0,0.0f,0,NULL};
  double t[2][200], ratio[200];
  for(int rep=-2;rep<reps;rep++) for(int j=0;j<2;j++){ int v=(rep+j)&1; /* alternate which goes first */
    double t0=now();
    for(int i=0;i<copies;i++){pt_tensor tc={c[i],PT_U4,PT_DEVICE_CPU,2,0,{n,k},{k/2,1}},ts={s[i],PT_F32,PT_DEVICE_CPU,2,0,{n,ng},{4*ng,4}};
      if(l[v].mm(l[v].ctx,&tx,&tc,&ts,NULL,&ty,&fp)){puts(l[v].err());return 1;}}
    if(rep>=0) t[v][rep]=(now()-t0)/copies; }
  for(int i=0;i<reps;i++) ratio[i]=t[0][i]/t[1][i];
  qsort(ratio,reps,sizeof(double),cmpd);
  for(int v=0;v<2;v++) qsort(t[v],reps,sizeof(double),cmpd);
  printf("N=%lld K=%lld th=%d reps=%d: A %.2f us (min %.2f max %.2f)  B %.2f us (min %.2f max %.2f)  A/B per rep: med %.3f (min %.3f max %.3f)\n",
    (long long)n,(long long)k,th,reps,t[0][reps/2]*1e6,t[0][0]*1e6,t[0][reps-1]*1e6,t[1][reps/2]*1e6,t[1][0]*1e6,t[1][reps-1]*1e6,ratio[reps/2],ratio[0],ratio[reps-1]);
  return 0;}
