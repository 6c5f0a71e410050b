/** Every IR op's GPU kernel, one family per file next to this one. An op missing here has no GPU kernel. */
import type { Emitter } from './context';
import { ELEMENTWISE } from './elementwise';
import { MATMUL } from './matmul';
import { REDUCE } from './reduce';
import { INDEXING } from './indexing';
import { NF4 } from './nf4';
import { ADAMW } from './adamw';
import { ATTENTION } from './attention';
import { CROSS_ENTROPY } from './cross-entropy';
import { NORM } from './norm';
import { LOGPROB } from './logprob';
import { SWIGLU } from './swiglu';

export const KERNELS: Readonly<Record<string, Emitter>> = { ...ELEMENTWISE, ...MATMUL, ...REDUCE, ...INDEXING, ...NF4, ...ADAMW, ...ATTENTION, ...CROSS_ENTROPY, ...NORM, ...LOGPROB, ...SWIGLU };

export type { EmitCtx, Emitter } from './context';
