/* scripts/decode-calls/attn_layers.c: decode attention as in a GPT-2 step (12 layers' caches, KV 16..80), EVICT MiB streamed between calls; see run.sh */
#include <panatron/panatron.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static pt_tensor tens(void* d, int dt, int nd, const int64_t* s){pt_tensor t;memset(&t,0,sizeof t);t.data=d;t.dtype=dt;t.ndim=nd;
 int64_t st=4; for(int i=nd-1;i>=0;i--){t.shape[i]=s[i];t.stride[i]=st;st*=s[i];} return t;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
 int th=atoi(argv[1]); int evict_mib=atoi(argv[2]); int reps=atoi(argv[3]);
 int64_t H=12,D=64,Smax=80,L=12;
 pt_ctx* ctx; pt_ctx_params cp={th,0,1,0}; if(pt_ctx_create(&cp,&ctx)!=PT_OK){puts(pt_last_error());return 1;}
 size_t nc=H*Smax*D; float *k[12],*v[12];
 for(int l=0;l<L;l++){k[l]=aligned_alloc(64,nc*4);v[l]=aligned_alloc(64,nc*4);for(size_t i=0;i<nc;i++){k[l][i]=(float)((i*7919+l)%1000)/1000-0.5f;v[l][i]=(float)((i*104729+l)%1000)/1000-0.5f;}}
 float*q=malloc(H*D*4),*o=malloc(H*D*4);
 for(int i=0;i<H*D;i++)q[i]=(float)(i%13)/13-0.5f;
 size_t eb=(size_t)evict_mib<<20; char* ev=malloc(eb+64); memset(ev,1,eb); char* ev2=malloc(eb+64); memset(ev2,2,eb);
 int64_t es[1]={(int64_t)eb/4}; pt_tensor te=tens(ev,PT_F32,1,es), te2=tens(ev2,PT_F32,1,es);
 int32_t len; int64_t qs[4]={1,1,H,D},cs[4]={1,H,Smax,D},ls[1]={1};
 pt_tensor tq=tens(q,PT_F32,4,qs),to=tens(o,PT_F32,4,qs),tl=tens(&len,PT_I32,1,ls);
 double* per=malloc(sizeof(double)*reps); 
 for(int r=0;r<reps;r++){ double tot=0;
  for(len=16;len<=80;len++) for(int l=0;l<L;l++){
   if(evict_mib) pt_add(ctx,&te,&te2,&te2); /* stream the buffer (parallel, like a GEMV) */
   pt_tensor tk=tens(k[l],PT_F32,4,cs),tv=tens(v[l],PT_F32,4,cs);
   pt_flash_decode_params dp;memset(&dp,0,sizeof dp);dp.q=&tq;dp.k_cache=&tk;dp.v_cache=&tv;dp.kv_lens=&tl;dp.out=&to;dp.causal=1;dp.window_left=-1;dp.window_right=-1;
   double t0=now(); if(pt_flash_attn_decode(ctx,&dp)!=PT_OK){puts(pt_last_error());return 1;} tot+=now()-t0; }
  per[r]=tot/(65*12)*1e6; }
 qsort(per,reps,sizeof(double),cmp);
 printf("threads %d evict %d MiB: us per call median %.2f (min %.2f max %.2f)\n",th,evict_mib,per[reps/2],per[0],per[reps-1]);
 return 0;}
