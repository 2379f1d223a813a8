#include "textflag.h"

// PRODUCT loads the eight values of A's column in the transposed block at
// (SI) into Y9 and multiplies them by y's value at (DI), broadcast: x·y with
// x the first operand, as DotUnitary's MULSS and MULPS take them.
#define PRODUCT(off, yoff) \
	VBROADCASTSS yoff(DI), Y8; \
	VMOVUPS      off(SI), Y9; \
	VMULPS       Y8, Y9, Y9

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
	PRODUCT(0, 0)
	VADDPS Y9, Y0, Y0
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
	PRODUCT(0, 0)
	VADDPS Y9, Y0, Y0
	PRODUCT(32, 4)
	VADDPS Y9, Y1, Y1
	PRODUCT(64, 8)
	VADDPS Y9, Y2, Y2
	PRODUCT(96, 12)
	VADDPS Y9, Y3, Y3
	PRODUCT(128, 16)
	VADDPS Y9, Y4, Y4
	PRODUCT(160, 20)
	VADDPS Y9, Y5, Y5
	PRODUCT(192, 24)
	VADDPS Y9, Y6, Y6
	PRODUCT(224, 28)
	VADDPS Y9, Y7, Y7
	PRODUCT(256, 32)
	VADDPS Y9, Y0, Y0
	PRODUCT(288, 36)
	VADDPS Y9, Y1, Y1
	PRODUCT(320, 40)
	VADDPS Y9, Y2, Y2
	PRODUCT(352, 44)
	VADDPS Y9, Y3, Y3
	PRODUCT(384, 48)
	VADDPS Y9, Y4, Y4
	PRODUCT(416, 52)
	VADDPS Y9, Y5, Y5
	PRODUCT(448, 56)
	VADDPS Y9, Y6, Y6
	PRODUCT(480, 60)
	VADDPS Y9, Y7, Y7
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
	PRODUCT(0, 0)
	VADDPS Y9, Y0, Y0
	PRODUCT(32, 4)
	VADDPS Y9, Y1, Y1
	PRODUCT(64, 8)
	VADDPS Y9, Y2, Y2
	PRODUCT(96, 12)
	VADDPS Y9, Y3, Y3
	ADDQ   $128, SI
	ADDQ   $16, DI
	DECQ   CX
	JNZ    dotstail4

dotstailstart:
	ANDQ $3, BX
	JZ   dotsend

dotstail:
	PRODUCT(0, 0)
	VADDPS Y9, Y0, Y0
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
