#include "textflag.h"

// func addAVX2(dst, src []float32)
//
// dst[i] = dst[i] + src[i], eight at a time: the float32 addition of
// addToGo.
TEXT ·addAVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ dst_len+8(FP), CX
	MOVQ src_base+24(FP), SI
	SHRQ $3, CX
	JZ   adddone

addloop:
	VMOVUPS (DI), Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     addloop

adddone:
	VZEROUPPER
	RET

// func addZeroAVX2(dst, src []float32)
//
// dst[i] = 0 + src[i], eight at a time: the float32 addition of
// addToZeroGo, dst not read.
TEXT ·addZeroAVX2(SB), NOSPLIT, $0-48
	MOVQ   dst_base+0(FP), DI
	MOVQ   dst_len+8(FP), CX
	MOVQ   src_base+24(FP), SI
	VXORPS Y1, Y1, Y1
	SHRQ   $3, CX
	JZ     addzerodone

addzeroloop:
	VADDPS  (SI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     addzeroloop

addzerodone:
	VZEROUPPER
	RET

// func scaleAVX2(dst, src []float32, k float32)
//
// dst[i] = src[i] * k, eight at a time: the float32 product of
// scaleIntoGo (dst may be src).
TEXT ·scaleAVX2(SB), NOSPLIT, $0-52
	MOVQ         dst_base+0(FP), DI
	MOVQ         dst_len+8(FP), CX
	MOVQ         src_base+24(FP), SI
	VBROADCASTSS k+48(FP), Y1
	SHRQ         $3, CX
	JZ           scaledone

scaleloop:
	VMOVUPS (SI), Y0
	VMULPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     scaleloop

scaledone:
	VZEROUPPER
	RET
