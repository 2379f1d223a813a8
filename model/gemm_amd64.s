#include "textflag.h"

// COEFFICIENT loads the next coefficient of a row of A from (src) into x as
// t = alpha*a (alpha in X6, X7 zero) and jumps to skip when t is zero (of
// either sign): gonum's "if tmp != 0" before each axpy. A NaN is not zero
// (the comparison is unordered, PF set) and falls through to the add.
#define COEFFICIENT(src, x, skip) \
	VMOVSS   (src), x; \
	VMULSS   X6, x, x; \
	VUCOMISS X7, x; \
	JNE      3(PC); \
	JPS      2(PC); \
	JMP      skip

// func gemmTile2x32(c0, c1, a0, a1 *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, zero bool)
//
// For l = 0, ..., k-1: t = alpha*a0[l] (a0 advancing by as bytes); if
// t != 0 (NaN included), c0[0:32] += t*b[l][0:32] (b advancing by bs
// bytes) as a float32 product then a float32 sum; and the same for c1 with
// a1. That is gonum's AxpyUnitary(t, b[l], c) for two rows of C, held in
// Y0-Y3 and Y4, Y5, Y14, Y15 for the whole loop, each b[l] loaded once for
// both, each row skipping its own zero coefficients. The operands go in
// AxpyUnitary's order too (b[l] times t, that product plus c), so that
// where both are NaN the result is the same NaN. With zero the rows start
// from +0 instead of from c0 and c1: what loading rows just cleared gives,
// without reading them, or clearing them first.
TEXT ·gemmTile2x32(SB), NOSPLIT, $0-69
	MOVQ     c0+0(FP), DI
	MOVQ     c1+8(FP), R10
	MOVQ     a0+16(FP), SI
	MOVQ     a1+24(FP), R11
	MOVQ     as+32(FP), R8
	MOVQ     b+40(FP), DX
	MOVQ     bs+48(FP), R9
	MOVQ     k+56(FP), CX
	VMOVSS   alpha+64(FP), X6
	MOVBLZX  zero+68(FP), AX
	VXORPS   X7, X7, X7
	TESTL    AX, AX
	JZ       tile2load
	VXORPS   Y0, Y0, Y0
	VXORPS   Y1, Y1, Y1
	VXORPS   Y2, Y2, Y2
	VXORPS   Y3, Y3, Y3
	VXORPS   Y4, Y4, Y4
	VXORPS   Y5, Y5, Y5
	VXORPS   Y14, Y14, Y14
	VXORPS   Y15, Y15, Y15
	JMP      tile2start

tile2load:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS (R10), Y4
	VMOVUPS 32(R10), Y5
	VMOVUPS 64(R10), Y14
	VMOVUPS 96(R10), Y15

tile2start:
	TESTQ CX, CX
	JZ    tile2store

tile2loop:
	VMOVUPS (DX), Y8
	VMOVUPS 32(DX), Y9
	VMOVUPS 64(DX), Y10
	VMOVUPS 96(DX), Y11

	COEFFICIENT(SI, X12, tile2row1)

	VBROADCASTSS X12, Y12
	VMULPS       Y12, Y8, Y13
	VADDPS       Y0, Y13, Y0
	VMULPS       Y12, Y9, Y13
	VADDPS       Y1, Y13, Y1
	VMULPS       Y12, Y10, Y13
	VADDPS       Y2, Y13, Y2
	VMULPS       Y12, Y11, Y13
	VADDPS       Y3, Y13, Y3

tile2row1:
	COEFFICIENT(R11, X12, tile2next)

	VBROADCASTSS X12, Y12
	VMULPS       Y12, Y8, Y13
	VADDPS       Y4, Y13, Y4
	VMULPS       Y12, Y9, Y13
	VADDPS       Y5, Y13, Y5
	VMULPS       Y12, Y10, Y13
	VADDPS       Y14, Y13, Y14
	VMULPS       Y12, Y11, Y13
	VADDPS       Y15, Y13, Y15

tile2next:
	ADDQ R8, SI
	ADDQ R8, R11
	ADDQ R9, DX
	DECQ CX
	JNZ  tile2loop

tile2store:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, (R10)
	VMOVUPS Y5, 32(R10)
	VMOVUPS Y14, 64(R10)
	VMOVUPS Y15, 96(R10)
	VZEROUPPER
	RET

// gemmMask holds the lane masks of gemmTileN, sixteen ones then sixteen
// zeros: the sixteen dwords from gemmMask+64-4*n select the first n lanes.
DATA gemmMask<>+0(SB)/4, $0xffffffff
DATA gemmMask<>+4(SB)/4, $0xffffffff
DATA gemmMask<>+8(SB)/4, $0xffffffff
DATA gemmMask<>+12(SB)/4, $0xffffffff
DATA gemmMask<>+16(SB)/4, $0xffffffff
DATA gemmMask<>+20(SB)/4, $0xffffffff
DATA gemmMask<>+24(SB)/4, $0xffffffff
DATA gemmMask<>+28(SB)/4, $0xffffffff
DATA gemmMask<>+32(SB)/4, $0xffffffff
DATA gemmMask<>+36(SB)/4, $0xffffffff
DATA gemmMask<>+40(SB)/4, $0xffffffff
DATA gemmMask<>+44(SB)/4, $0xffffffff
DATA gemmMask<>+48(SB)/4, $0xffffffff
DATA gemmMask<>+52(SB)/4, $0xffffffff
DATA gemmMask<>+56(SB)/4, $0xffffffff
DATA gemmMask<>+60(SB)/4, $0xffffffff
DATA gemmMask<>+64(SB)/4, $0
DATA gemmMask<>+68(SB)/4, $0
DATA gemmMask<>+72(SB)/4, $0
DATA gemmMask<>+76(SB)/4, $0
DATA gemmMask<>+80(SB)/4, $0
DATA gemmMask<>+84(SB)/4, $0
DATA gemmMask<>+88(SB)/4, $0
DATA gemmMask<>+92(SB)/4, $0
DATA gemmMask<>+96(SB)/4, $0
DATA gemmMask<>+100(SB)/4, $0
DATA gemmMask<>+104(SB)/4, $0
DATA gemmMask<>+108(SB)/4, $0
DATA gemmMask<>+112(SB)/4, $0
DATA gemmMask<>+116(SB)/4, $0
DATA gemmMask<>+120(SB)/4, $0
DATA gemmMask<>+124(SB)/4, $0
GLOBL gemmMask<>(SB), RODATA|NOPTR, $128

// func gemmTileN(c, a *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, n int, zero bool)
//
// The loop of gemmTile2x32 over one row of C, c[0:n] for 0 < n <= 16, held
// in Y0 (lanes 0-7) and Y1 (lanes 8-15): only the first n lanes are loaded
// and stored, the others compute on zeros and are dropped. Lanes do not
// mix, so each element gets the float32 operations AxpyUnitary gives it,
// whether in its four-wide loop or its scalar tail. With zero the row
// starts from +0, as gemmTile2x32's do.
TEXT ·gemmTileN(SB), NOSPLIT, $0-65
	MOVQ     c+0(FP), DI
	MOVQ     a+8(FP), SI
	MOVQ     as+16(FP), R8
	MOVQ     b+24(FP), DX
	MOVQ     bs+32(FP), R9
	MOVQ     k+40(FP), CX
	VMOVSS   alpha+48(FP), X6
	MOVQ     n+56(FP), AX

	// Y2 and Y3 select the first n of lanes 0-7 and 8-15.
	LEAQ    gemmMask<>+64(SB), BX
	SHLQ    $2, AX
	SUBQ    AX, BX
	VMOVUPS (BX), Y2
	VMOVUPS 32(BX), Y3

	VXORPS     X7, X7, X7
	VXORPS     Y0, Y0, Y0
	VXORPS     Y1, Y1, Y1
	MOVBLZX    zero+64(FP), AX
	TESTL      AX, AX
	JNZ        tileNstart
	VMASKMOVPS (DI), Y2, Y0
	VMASKMOVPS 32(DI), Y3, Y1

tileNstart:
	TESTQ CX, CX
	JZ    tileNstore

tileNloop:
	COEFFICIENT(SI, X4, tileNnext)

	VBROADCASTSS X4, Y4
	VMASKMOVPS   (DX), Y2, Y8
	VMASKMOVPS   32(DX), Y3, Y9
	VMULPS       Y4, Y8, Y8
	VMULPS       Y4, Y9, Y9
	VADDPS       Y0, Y8, Y0
	VADDPS       Y1, Y9, Y1

tileNnext:
	ADDQ R8, SI
	ADDQ R9, DX
	DECQ CX
	JNZ  tileNloop

tileNstore:
	VMASKMOVPS Y0, Y2, (DI)
	VMASKMOVPS Y1, Y3, 32(DI)
	VZEROUPPER
	RET
