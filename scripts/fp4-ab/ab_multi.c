/* A/B/C... of up to 6 libpanatron builds in one process (ab.c generalized): each variant is a copy
 * of a library dlopen'ed with RTLD_LOCAL (its own pool and scratch); blocks of FP4 GEMV calls (M = 1,
 * E2M1, group G (0: per channel), f32 scales) on cold weights (COLD MiB of 64-byte-aligned copies,
 * default 256; COLD=0.2 keeps 768x768 in L2) rotate over the variants, the first of each round
 * rotating too. Prints each variant's median (min, max) us per call and the median (min, max) over
 * rounds of t(variant) / t(first variant).
 *   gcc -O2 -Inative/include scripts/fp4-ab/ab_multi.c -o /tmp/fp4-abm -ldl
 *   LD_LIBRARY_PATH=build/native /tmp/fp4-abm N K G THREADS REPS a.so b.so[@VALUE] ...   (REPS <= 400)
 * a.so@VALUE sets the environment variable FP4_KNOB=VALUE while that copy is loaded (a scratch build
 * can read it in a constructor to pick a variant: one build, several settings). Used for the
 * session-9 FP4 figures (notes/fp4.md). */
#include "panatron/panatron.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
typedef struct { void* h; pt_status (*ctx_create)(const pt_ctx_params*, pt_ctx**); pt_status (*mm)(pt_ctx*, const pt_tensor*, const pt_tensor*, const pt_tensor*, const pt_tensor*, pt_tensor*, const pt_fp4_matmul_params*);
  pt_status (*q)(pt_ctx*, const pt_tensor*, const pt_fp4_quant_params*, pt_tensor*, pt_tensor*); const char* (*err)(void); pt_ctx* ctx; } L;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
#define MV 6
int main(int argc,char**argv){
  if(argc<7||argc-6>MV){fprintf(stderr,"usage: %s N K G THREADS REPS lib.so[@knob] ... (1..%d libraries)\n",argv[0],MV);return 2;}
  int64_t n=atoll(argv[1]),k=atoll(argv[2]); int G=atoi(argv[3]); int th=atoi(argv[4]); int reps=atoi(argv[5]); int nv=argc-6;
  double cold = getenv("COLD") ? atof(getenv("COLD")) : 256.0;
  L l[MV]; char* names[MV];
  for(int i=0;i<nv;i++){ char spec[512]; strcpy(spec,argv[6+i]); names[i]=argv[6+i]; char* at=strchr(spec,'@'); if(at){*at=0; setenv("FP4_KNOB",at+1,1);} else unsetenv("FP4_KNOB");
    char tmp[600]; snprintf(tmp,sizeof tmp,"/tmp/fp4-abm-%d-%d.so",(int)getpid(),i); char cmd[1300]; snprintf(cmd,sizeof cmd,"cp %s %s",spec,tmp); if(system(cmd))return 1;
    l[i].h=dlopen(tmp,RTLD_NOW|RTLD_LOCAL); if(!l[i].h){fprintf(stderr,"%s\n",dlerror());return 1;} unlink(tmp);
    l[i].ctx_create=dlsym(l[i].h,"pt_ctx_create"); l[i].mm=dlsym(l[i].h,"pt_fp4_matmul"); l[i].q=dlsym(l[i].h,"pt_fp4_quantize"); l[i].err=dlsym(l[i].h,"pt_last_error");
    pt_ctx_params cp={th,0,0,0}; if(l[i].ctx_create(&cp,&l[i].ctx)){puts(l[i].err());return 1;} }
  int64_t ng=G?k/G:1; size_t cb=n*k/2, sb=4*n*ng; int copies=(int)(cold*1048576.0/(cb+sb))+1;
  float* w=malloc(4*n*k); float* x=aligned_alloc(64,4*k+64); float*y=aligned_alloc(64,4*n+64);
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
  if(reps<1||reps>400||k<=0||n<=0||(G&&k%G)){fprintf(stderr,"REPS must be 1..400, K a positive multiple of G\n");return 2;}
  static double t[MV][400], ratio[MV][400];
  for(int rep=-2;rep<reps;rep++) for(int j=0;j<nv;j++){ int v=(rep+j)%nv; if(v<0)v+=nv;
    double t0=now();
    for(int i=0;i<copies;i++){pt_tensor tc={c[i],PT_U4,PT_DEVICE_CPU,2,0,{n,k},{k/2,1}},ts={s[i],PT_F32,PT_DEVICE_CPU,2,0,{n,ng},{4*ng,4}};
      if(l[v].mm(l[v].ctx,&tx,&tc,&ts,NULL,&ty,&fp)){puts(l[v].err());return 1;}}
    if(rep>=0) t[v][rep]=(now()-t0)/copies; }
  printf("N=%lld K=%lld G=%d th=%d reps=%d copies=%d\n",(long long)n,(long long)k,G,th,reps,copies);
  for(int v=0;v<nv;v++){ for(int i=0;i<reps;i++) ratio[v][i]=t[v][i]/t[0][i]; qsort(ratio[v],reps,sizeof(double),cmpd);}
  for(int v=0;v<nv;v++) qsort(t[v],reps,sizeof(double),cmpd);
  for(int v=0;v<nv;v++) printf("  %-40s %7.2f us (min %7.2f max %7.2f)  t/t0 med %.3f (min %.3f max %.3f)\n",names[v],t[v][reps/2]*1e6,t[v][0]*1e6,t[v][reps-1]*1e6,ratio[v][reps/2],ratio[v][0],ratio[v][reps-1]);
  return 0;}
