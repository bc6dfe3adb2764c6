/* Reference values for datapath-common hash tests: gcc -O2 jhash_ref.c && ./a.out (jhash from include/linux/jhash.h). */
#include <stdio.h>
typedef unsigned int u32;
static inline u32 rol32(u32 w, unsigned s){return (w<<(s&31))|(w>>((-s)&31));}
#define __jhash_final(a, b, c) { c ^= b; c -= rol32(b, 14); a ^= c; a -= rol32(c, 11); b ^= a; b -= rol32(a, 25); c ^= b; c -= rol32(b, 16); a ^= c; a -= rol32(c, 4); b ^= a; b -= rol32(a, 14); c ^= b; c -= rol32(b, 24); }
static u32 jhash_3words(u32 a,u32 b,u32 c,u32 iv){iv+=0xdeadbeef+(3<<2);a+=iv;b+=iv;c+=iv;__jhash_final(a,b,c);return c;}
int main(){printf("%u %u %u\n",jhash_3words(0,0,0,0),jhash_3words(1,2,3,4),jhash_3words(0x0100000a,0x5000d204,6,0x71dcda46));}
