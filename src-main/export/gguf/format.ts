/**
 * GGUF v3 constants: metadata value types, ggml tensor types with their block sizes, llama.cpp's file types.
 * Facts from the GGUF specification (ggml/docs/gguf.md) and ggml's type table; the numbers are the file format.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** Metadata value types. */
export enum GgufType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** Tensor types Lathe writes (ggml_type numbers). */
export enum GgmlType {
  F32 = 0, F16 = 1, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
}

/** Values per block and bytes per block of each tensor type. */
export const BLOCK: Record<GgmlType, { size: number; bytes: number; name: string }> = {
  [GgmlType.F32]: { size: 1, bytes: 4, name: 'F32' },
  [GgmlType.F16]: { size: 1, bytes: 2, name: 'F16' },
  [GgmlType.BF16]: { size: 1, bytes: 2, name: 'BF16' },
  [GgmlType.Q8_0]: { size: 32, bytes: 34, name: 'Q8_0' }, // f16 d, i8 qs[32]
  [GgmlType.Q5_0]: { size: 32, bytes: 22, name: 'Q5_0' }, // f16 d, u8 qh[4], u8 qs[16]
  [GgmlType.Q5_1]: { size: 32, bytes: 24, name: 'Q5_1' }, // f16 d, f16 m, u8 qh[4], u8 qs[16]
  [GgmlType.Q4_K]: { size: 256, bytes: 144, name: 'Q4_K' }, // f16 d, f16 dmin, u8 scales[12], u8 qs[128]
  [GgmlType.Q5_K]: { size: 256, bytes: 176, name: 'Q5_K' }, // f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
  [GgmlType.Q6_K]: { size: 256, bytes: 210, name: 'Q6_K' }, // u8 ql[128], u8 qh[64], i8 scales[16], f16 d
};

/** Bytes of a tensor whose rows have `rowLen` values (must be a multiple of the block size). */
export function tensorBytes(type: GgmlType, shape: readonly number[]): number {
  const b = BLOCK[type];
  const n = shape.reduce((a, x) => a * x, 1);
  return (n / b.size) * b.bytes;
}

/** The quantization choices offered to users. */
export const GGUF_QUANTS = ['f16', 'bf16', 'q8_0', 'q6_k', 'q5_k_m', 'q4_k_m'] as const;
export type GgufQuant = (typeof GGUF_QUANTS)[number];

/** llama.cpp's `general.file_type` (enum llama_ftype) for each choice. */
export const FILE_TYPE: Record<GgufQuant, number> = { f16: 1, bf16: 32, q8_0: 7, q6_k: 18, q5_k_m: 17, q4_k_m: 15 };

/** The main tensor type of each choice. */
export const MAIN_TYPE: Record<GgufQuant, GgmlType> = {
  f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0, q6_k: GgmlType.Q6_K, q5_k_m: GgmlType.Q5_K, q4_k_m: GgmlType.Q4_K,
};

export function alignUp(n: number, a = GGUF_ALIGNMENT): number {
  return Math.ceil(n / a) * a;
}
