/**
 * Named parameters and buffers of a model, in PyTorch state_dict order and naming, so that a
 * checkpoint maps one-to-one onto a PyTorch module of the same architecture.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { shapeString, sizeOf } from "../backend/backend.ts";

/** Host copy of one named tensor. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Raised when loaded weights do not fit the model (missing, unexpected, wrong shape). */
export class WeightMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WeightMismatchError";
  }
}

interface Entry {
  tensor: Tensor;
  trainable: boolean;
}

/**
 * The parameters (trainable) and buffers (e.g. BatchNorm running statistics) of one model.
 *
 * @example
 * ```ts
 * import { ParamStore } from "./params.ts";
 * import { selectBackend } from "../backend/select.ts";
 * const backend = await selectBackend({ name: "tfjs-cpu" });
 * const store = new ParamStore(backend);
 * store.add("fc.weight", [2, 3], new Float32Array(6));
 * console.log(store.count()); // 6
 * store.dispose();
 * ```
 */
export class ParamStore {
  readonly #entries = new Map<string, Entry>();

  constructor(readonly backend: Backend) {}

  /** Creates a variable named `name` from host data (copied). */
  add(name: string, shape: readonly number[], data: Float32Array, trainable = true): Tensor {
    if (this.#entries.has(name)) throw new Error(`parameter ${name} is defined twice`);
    if (data.length !== sizeOf(shape)) {
      throw new Error(`parameter ${name}: ${data.length} values for shape ${shapeString(shape)}`);
    }
    const tensor = this.backend.scope(() =>
      this.backend.variable(this.backend.tensor(data, shape), trainable)
    );
    this.#entries.set(name, { tensor, trainable });
    return tensor;
  }

  /** The variable named `name`; throws naming the closest existing names when absent. */
  get(name: string): Tensor {
    const entry = this.#entries.get(name);
    if (!entry) {
      const prefix = name.split(".")[0];
      const near = this.names().filter((n) => n.startsWith(prefix)).slice(0, 5);
      throw new Error(
        `no parameter named ${name}${near.length ? ` (have ${near.join(", ")})` : ""}`,
      );
    }
    return entry.tensor;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** All names in creation (state_dict) order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Names of trainable parameters, in order. */
  trainableNames(): string[] {
    return [...this.#entries].filter(([, e]) => e.trainable).map(([n]) => n);
  }

  /** Trainable variables, in {@link trainableNames} order. */
  trainable(): Tensor[] {
    return [...this.#entries.values()].filter((e) => e.trainable).map((e) => e.tensor);
  }

  /** Number of trainable scalars (what PyTorch's `sum(p.numel() for p in parameters())` gives). */
  count(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.trainable) n += sizeOf(e.tensor.shape);
    return n;
  }

  /** Copies every parameter and buffer to the host. */
  toHost(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const [name, e] of this.#entries) {
      out.set(name, {
        shape: [...e.tensor.shape],
        data: Float32Array.from(this.backend.read(e.tensor)),
      });
    }
    return out;
  }

  /**
   * Overwrites values from host tensors. With `strict` (default) every name must be present
   * and nothing extra given; shapes must always match. Extra names are ignored when not strict.
   */
  load(named: ReadonlyMap<string, HostTensor>, strict = true): void {
    const problems: string[] = [];
    for (const [name, e] of this.#entries) {
      const src = named.get(name);
      if (!src) {
        if (strict) problems.push(`missing ${name}`);
        continue;
      }
      if (
        src.shape.length !== e.tensor.shape.length ||
        src.shape.some((d, i) => d !== e.tensor.shape[i])
      ) {
        problems.push(
          `${name}: file has ${shapeString(src.shape)}, model needs ${shapeString(e.tensor.shape)}`,
        );
      }
    }
    if (strict) {
      for (const name of named.keys()) {
        if (!this.#entries.has(name)) problems.push(`unexpected ${name}`);
      }
    }
    if (problems.length) {
      const shown = problems.slice(0, 8).join("; ");
      const more = problems.length > 8 ? ` (and ${problems.length - 8} more)` : "";
      throw new WeightMismatchError(`weights do not fit the model: ${shown}${more}`);
    }
    for (const [name, e] of this.#entries) {
      const src = named.get(name);
      if (!src) continue;
      this.backend.scope(() =>
        this.backend.assign(e.tensor, this.backend.tensor(src.data, src.shape))
      );
    }
  }

  /** Frees every variable. */
  dispose(): void {
    for (const e of this.#entries.values()) e.tensor.dispose();
    this.#entries.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
