/**
 * Every IR op's GPU kernel, one family per file next to this one. An op missing here has no GPU kernel (Nf4Const has
 * none: plan.ts places its code bytes as a weight; Nf4Gemm is matmul.ts's, its loads nf4.ts's).
 */
import type { Emitter } from './context';
import { ELEMENTWISE } from './elementwise';
import { MATMUL } from './matmul';
import { REDUCE } from './reduce';
import { INDEXING } from './indexing';
import { ADAMW } from './adamw';
import { ATTENTION } from './attention';
import { CROSS_ENTROPY } from './cross-entropy';
import { NORM } from './norm';
import { LOGPROB } from './logprob';
import { SWIGLU } from './swiglu';

export const KERNELS: Readonly<Record<string, Emitter>> = { ...ELEMENTWISE, ...MATMUL, ...REDUCE, ...INDEXING, ...ADAMW, ...ATTENTION, ...CROSS_ENTROPY, ...NORM, ...LOGPROB, ...SWIGLU };

export type { EmitCtx, Emitter } from './context';
