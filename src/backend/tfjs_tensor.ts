/**
 * The tfjs backend's tensor handle and its layout: a {@link Tensor} over one tfjs tensor that may
 * hold an NCHW tensor channels-last, the transposes between the two orders, and small helpers
 * shared by the ops in the tfjs_*.ts files.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import type { DType, Tensor } from "./backend.ts";
import type { Tf } from "./tfjs_kernels.ts";

/** Permutations between NCHW and channels-last NHWC, and where each NCHW axis lives in NHWC. */
export const TO_NHWC = [0, 2, 3, 1];
export const TO_NCHW = [0, 3, 1, 2];
export const NHWC_AXIS = [0, 3, 1, 2];

/**
 * A {@link Tensor} handle over one tfjs tensor (or tf.Variable). When `channelsLast`, the tfjs
 * tensor holds the logical [N, C, H, W] tensor as [N, H, W, C]; `shape` is always NCHW.
 */
export class TfjsTensor implements Tensor {
  constructor(
    readonly owner: { readonly name: string },
    readonly tf: Tf,
    readonly channelsLast = false,
  ) {}
  get shape(): readonly number[] {
    const s = this.tf.shape;
    return this.channelsLast ? [s[0], s[3], s[1], s[2]] as number[] : s;
  }
  get dtype(): DType {
    return this.tf.dtype as DType;
  }
  get backend(): string {
    return this.owner.name;
  }
  get disposed(): boolean {
    return this.tf.isDisposed;
  }
  dispose(): void {
    if (!this.tf.isDisposed) this.tf.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** What an op body returns: a tfjs tensor and whether it is a channels-last view. */
export interface Out {
  t: Tf;
  channelsLast: boolean;
}

/** The tensor in NCHW order (a transpose when channels-last). Call inside a tidy. */
export function nchw(h: TfjsTensor): Tf {
  return h.channelsLast ? tf.transpose(h.tf, TO_NCHW) : h.tf;
}

/** The rank-4 tensor in NHWC order (a transpose unless channels-last). Call inside a tidy. */
export function nhwc(h: TfjsTensor): Tf {
  return h.channelsLast ? h.tf : tf.transpose(h.tf, TO_NHWC);
}

/** Brings an NCHW-broadcastable operand (rank <= 4) into NHWC order for a channels-last peer. */
export function toChannelsLast(t: Tf): Tf {
  const rank4 = tf.reshape(t, [...Array(4 - t.rank).fill(1), ...t.shape]);
  return tf.transpose(rank4, TO_NHWC);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function axesOf(axes: readonly number[] | undefined, rank: number): number[] | undefined {
  return axes?.map((a) => normAxis(a, rank));
}

/** Both operands in one layout: their own when they agree, else NCHW. */
export function sameLayout(a: TfjsTensor, b: TfjsTensor): [Tf, Tf] {
  return a.channelsLast === b.channelsLast ? [a.tf, b.tf] : [nchw(a), nchw(b)];
}

export function collectTensors(value: unknown, out: Tf[]): void {
  if (value instanceof TfjsTensor) out.push(value.tf);
  else if (Array.isArray(value)) { for (const v of value) collectTensors(v, out); }
  else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) collectTensors(v, out);
  }
}
