/**
 * The torch backend's tensor handle: an id into its owner's table of native handles, with the
 * shape and dtype kept on the JS side, and helpers over handles shared by the torch*.ts files.
 *
 * @module
 */
import type { DType, Keepable, Tensor } from "./backend.ts";

/** A native handle: its pointer, address (for handle arrays) and size in bytes. */
export interface Slot {
  ptr: Deno.PointerObject;
  addr: bigint;
  bytes: number;
}

/** What a {@link TorchTensor} asks of the backend that owns it. */
export interface TensorOwner {
  readonly name: string;
  holds(id: number): boolean;
  release(t: TorchTensor): void;
}

/** A libtorch tensor handle. */
export class TorchTensor implements Tensor {
  constructor(
    readonly owner: TensorOwner,
    readonly id: number,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly isVariable: boolean,
    readonly trainable: boolean,
  ) {}

  get backend(): string {
    return this.owner.name;
  }

  get disposed(): boolean {
    return !this.owner.holds(this.id);
  }

  dispose(): void {
    this.owner.release(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The shapes of the tensors among `xs` (numbers and absent tensors skipped). */
export function shapesOf(xs: readonly (Tensor | number | undefined)[]): number[][] {
  return xs.filter((x): x is Tensor => typeof x === "object" && x !== null).map((t) => [
    ...t.shape,
  ]);
}

/** Collects the tensors inside a scope's result (arrays and plain objects, recursively). */
export function collectTensors(value: Keepable, into: Set<Tensor>): void {
  if (value === null || typeof value !== "object") return;
  if (value instanceof TorchTensor) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into);
  } else {
    for (const v of Object.values(value as Record<string, Keepable>)) collectTensors(v, into);
  }
}
