#include "textflag.h"

// TERM adds x·y to the sum in s: the eight values of A's column in the
// transposed block at off(SI) times y's value at yoff(DI), broadcast, with
// x the first operand of the multiplication, as DotUnitary's MULSS and
// MULPS take them, and the sum the second of the addition.
#define TERM(off, yoff, s) \
	VBROADCASTSS yoff(DI), Y8; \
	VMOVUPS      off(SI), Y9; \
	VMULPS       Y8, Y9, Y9; \
	VADDPS       Y9, s, s

// QUAD adds the four terms from off(SI) and yoff(DI) on to the sums a, b,
// c and d, one each: the four lanes of one of DotUnitary's sums.
#define QUAD(off, yoff, a, b, c, d) \
	TERM(off, yoff, a); \
	TERM(off+32, yoff+4, b); \
	TERM(off+64, yoff+8, c); \
	TERM(off+96, yoff+12, d)

// func dots8(at, y *float32, n int, out *[8]float32)
//
// out[r] = gonum's f32.DotUnitary(x_r, y[0:n]) for the eight vectors x_r
// of the transposed block at (x_r[l] at at[8*l+r]), n > 0: each lane runs
// DotUnitary's schedule, which the alignment of y sets — single products
// added to lane 0 of its sum until y is 16-byte aligned, then sixteen at a
// time into two four-lane sums (added together after), then four at a
// time, then one at a time into lane 0 again, and last the four lanes
// summed pairwise as HADDPS does, ((s0+s1)+(s2+s3)). Each of the four lanes
// of DotUnitary's sums is a vector here (Y0-Y3, and Y4-Y7 for the second
// sum), across the eight x_r; every addition keeps DotUnitary's operand
// order, so NaNs propagate as there.
TEXT ·dots8(SB), NOSPLIT, $0-32
	MOVQ   at+0(FP), SI
	MOVQ   y+8(FP), DI
	MOVQ   n+16(FP), CX
	MOVQ   out+24(FP), R8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   DI, DX
	ANDQ   $15, DX
	JZ     dotsaligned
	SUBQ   $16, DX

dotstrim:
	TERM(0, 0, Y0)
	ADDQ   $32, SI
	ADDQ   $4, DI
	DECQ   CX
	JZ     dotsend
	ADDQ   $4, DX
	JNZ    dotstrim

dotsaligned:
	MOVQ CX, BX
	ANDQ $15, BX
	SHRQ $4, CX
	JZ   dotstail4start

dotsloop16:
	QUAD(0, 0, Y0, Y1, Y2, Y3)
	QUAD(128, 16, Y4, Y5, Y6, Y7)
	QUAD(256, 32, Y0, Y1, Y2, Y3)
	QUAD(384, 48, Y4, Y5, Y6, Y7)
	ADDQ   $512, SI
	ADDQ   $64, DI
	DECQ   CX
	JNZ    dotsloop16
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	TESTQ  BX, BX
	JZ     dotsend

dotstail4start:
	MOVQ BX, CX
	SHRQ $2, CX
	JZ   dotstailstart

dotstail4:
	QUAD(0, 0, Y0, Y1, Y2, Y3)
	ADDQ   $128, SI
	ADDQ   $16, DI
	DECQ   CX
	JNZ    dotstail4

dotstailstart:
	ANDQ $3, BX
	JZ   dotsend

dotstail:
	TERM(0, 0, Y0)
	ADDQ   $32, SI
	ADDQ   $4, DI
	DECQ   BX
	JNZ    dotstail

dotsend:
	VADDPS  Y1, Y0, Y0
	VADDPS  Y3, Y2, Y2
	VADDPS  Y2, Y0, Y0
	VMOVUPS Y0, (R8)
	VZEROUPPER
	RET
