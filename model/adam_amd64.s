#include "go_asm.h"
#include "textflag.h"

// func adamAVX2(params, grad, m, v []float32, k *adamStep)
//
// Eight elements per iteration, each with the IEEE operations of
// adamUpdateGo in its order: float32 products and sums for the moments,
// float64 for the bias-corrected step, float32 for the weights. No fused
// multiply-add.
TEXT ·adamAVX2(SB), NOSPLIT, $0-104
	MOVQ params_base+0(FP), DI
	MOVQ params_len+8(FP), CX
	MOVQ grad_base+24(FP), SI
	MOVQ m_base+48(FP), R8
	MOVQ v_base+72(FP), R9
	MOVQ k+96(FP), R10
	SHRQ $3, CX
	JZ   done
	VBROADCASTSS adamStep_b1(R10), Y8   // β1
	VBROADCASTSS adamStep_a1(R10), Y9   // 1-β1
	VBROADCASTSS adamStep_b2(R10), Y10  // β2
	VBROADCASTSS adamStep_a2(R10), Y11 // 1-β2
	VBROADCASTSS adamStep_decay(R10), Y12 // lr·decay
	VBROADCASTSD adamStep_c1(R10), Y13 // c1
	VBROADCASTSD adamStep_c2(R10), Y14 // c2
	VBROADCASTSD adamStep_lr(R10), Y15 // lr
	VBROADCASTSD adamStep_eps(R10), Y7  // eps

loop:
	VMOVUPS (SI), Y0          // g
	VMOVUPS (R8), Y1          // m
	VMULPS  Y8, Y1, Y1        // β1·m
	VMULPS  Y9, Y0, Y2        // (1-β1)·g
	VADDPS  Y2, Y1, Y1        // m'
	VMOVUPS Y1, (R8)
	VMULPS  Y0, Y0, Y2        // g·g
	VMULPS  Y11, Y2, Y2       // (1-β2)·g·g
	VMOVUPS (R9), Y3          // v
	VMULPS  Y10, Y3, Y3       // β2·v
	VADDPS  Y2, Y3, Y3        // v'
	VMOVUPS Y3, (R9)

	// elements 0-3: lr·(m'·c1) / (sqrt(v'·c2) + eps) in float64
	VCVTPS2PD X1, Y4
	VMULPD    Y13, Y4, Y4
	VMULPD    Y15, Y4, Y4
	VCVTPS2PD X3, Y5
	VMULPD    Y14, Y5, Y5
	VSQRTPD   Y5, Y5
	VADDPD    Y7, Y5, Y5
	VDIVPD    Y5, Y4, Y4
	VCVTPD2PSY Y4, X4

	// elements 4-7
	VEXTRACTF128 $1, Y1, X5
	VCVTPS2PD    X5, Y5
	VMULPD       Y13, Y5, Y5
	VMULPD       Y15, Y5, Y5
	VEXTRACTF128 $1, Y3, X6
	VCVTPS2PD    X6, Y6
	VMULPD       Y14, Y6, Y6
	VSQRTPD      Y6, Y6
	VADDPD       Y7, Y6, Y6
	VDIVPD       Y6, Y5, Y5
	VCVTPD2PSY   Y5, X5
	VINSERTF128  $1, X5, Y4, Y4 // the update, as float32

	VMOVUPS (DI), Y0          // w
	VSUBPS  Y4, Y0, Y1        // w - update
	VMULPS  Y12, Y0, Y2       // lr·decay·w
	VSUBPS  Y2, Y1, Y1
	VMOVUPS Y1, (DI)

	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ CX
	JNZ  loop
	VZEROUPPER

done:
	RET
