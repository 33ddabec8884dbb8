/* scripts/decode-calls/call_cost.c: per-call cost of the decode step's small native calls (GPT-2 shapes, warm caches); see run.sh */
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
 int th=atoi(argv[1]); int iters=atoi(argv[2]);
 int64_t H=12,D=64,Smax=80;
 pt_ctx* ctx; pt_ctx_params cp={th,0,1,0}; if(pt_ctx_create(&cp,&ctx)!=PT_OK){puts(pt_last_error());return 1;}
 size_t nc=H*Smax*D; float*k=aligned_alloc(64,nc*4),*v=aligned_alloc(64,nc*4),*qkv=aligned_alloc(64,3*H*D*4),*o=aligned_alloc(64,H*D*4);
 for(size_t i=0;i<nc;i++){k[i]=(float)((i*7919)%1000)/1000-0.5f;v[i]=(float)((i*104729)%1000)/1000-0.5f;}
 for(int i=0;i<3*H*D;i++)qkv[i]=(float)(i%13)/13-0.5f;
 int32_t len, start; int64_t qs[4]={1,1,H,D},cs[4]={1,H,Smax,D},ls[1]={1};
 pt_tensor tq=tens(qkv,PT_F32,4,qs),tkn=tens(qkv+H*D,PT_F32,4,qs),tvn=tens(qkv+2*H*D,PT_F32,4,qs),to=tens(o,PT_F32,4,qs),tl=tens(&len,PT_I32,1,ls),ts=tens(&start,PT_I32,1,ls);
 for(int i=0;i<4;i++){tq.stride[i]=tkn.stride[i]=tvn.stride[i]=(i==3?4:i==2?D*4:3*H*D*4);}
 pt_tensor tk=tens(k,PT_F32,4,cs),tv=tens(v,PT_F32,4,cs);
 pt_flash_decode_params dp;memset(&dp,0,sizeof dp);dp.q=&tq;dp.k_cache=&tk;dp.v_cache=&tv;dp.kv_lens=&tl;dp.out=&to;dp.causal=1;dp.window_left=-1;dp.window_right=-1;
 double r[3][7];
 for(int rep=0;rep<7;rep++){
  start=20; double t0=now(); for(int i=0;i<iters;i++) pt_kv_cache_append(ctx,&tkn,&tvn,&ts,&tk,&tv,NULL); r[0][rep]=(now()-t0)/iters*1e6;
  len=16; t0=now(); for(int i=0;i<iters;i++) pt_flash_attn_decode(ctx,&dp); r[1][rep]=(now()-t0)/iters*1e6;
  len=48; t0=now(); for(int i=0;i<iters;i++) pt_flash_attn_decode(ctx,&dp); r[2][rep]=(now()-t0)/iters*1e6;
 }
 const char* nm[3]={"kv_cache_append (1 token, 12 heads)","flash_attn_decode kv=16","flash_attn_decode kv=48"};
 for(int j=0;j<3;j++){qsort(r[j],7,sizeof(double),cmp);printf("  %-36s %7.2f us (%.2f..%.2f)\n",nm[j],r[j][3],r[j][0],r[j][6]);}
 return 0;}
