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
  /** Dimensions. */
  shape: number[];
  /** The elements, row-major. */
  data: Float32Array;
}

/** Raised when loaded weights do not fit the model (missing, unexpected, wrong shape). */
export class WeightMismatchError extends Error {
  /** `message` names the parameter and what did not match. */
  constructor(message: string) {
    super(message);
    this.name = "WeightMismatchError";
  }
}

interface Entry {
  /** null in a shape-only store. */
  tensor: Tensor | null;
  shape: readonly number[];
  trainable: boolean;
}

/** Initial values of a parameter, or a function that computes them (skipped when only shapes are recorded). */
export type InitialValues = Float32Array | (() => Float32Array);

/**
 * The parameters (trainable) and buffers (e.g. BatchNorm running statistics) of one model.
 *
 * @example
 * ```ts
 * import { ParamStore } from "./params.ts";
 * import { selectBackend } from "../backend/select.ts";
 * using backend = await selectBackend({ name: "tfjs-cpu" });
 * using store = new ParamStore(backend); // freed at the end of the scope
 * store.add("fc.weight", [2, 3], new Float32Array(6));
 * console.log(store.count()); // 6
 * ```
 */
export class ParamStore {
  readonly #entries = new Map<string, Entry>();
  readonly #backend: Backend | null;

  /** A store whose tensors live on `backend` (`null` only through {@link shapeOnly}). */
  constructor(backend: Backend | null) {
    this.#backend = backend;
  }

  /**
   * A store that only records names, shapes and trainability: no tensors, no backend, and
   * initial values given as functions are never computed. Running a model's `define*` on it
   * counts the real model's parameters without building it.
   *
   * @example
   * ```ts
   * import { ParamStore } from "./params.ts";
   * const shapes = ParamStore.shapeOnly();
   * shapes.add("fc.weight", [1000, 1000], () => new Float32Array(1_000_000));
   * console.log(shapes.count()); // 1000000
   * ```
   */
  static shapeOnly(): ParamStore {
    return new ParamStore(null);
  }

  /** True for a {@link shapeOnly} store. */
  get isShapeOnly(): boolean {
    return this.#backend === null;
  }

  /** The backend the tensors live on; a shape-only store has none. */
  get backend(): Backend {
    if (!this.#backend) throw new Error("a shape-only ParamStore has no backend and no tensors");
    return this.#backend;
  }

  /**
   * Creates a variable named `name` from host data (copied), or from the data `init` returns.
   * A shape-only store records the shape without calling `init`.
   */
  add(name: string, shape: readonly number[], init: InitialValues, trainable = true): void {
    if (this.#entries.has(name)) throw new Error(`parameter ${name} is defined twice`);
    if (!this.#backend) {
      this.#entries.set(name, { tensor: null, shape: [...shape], trainable });
      return;
    }
    const backend = this.#backend;
    const data = typeof init === "function" ? init() : init;
    if (data.length !== sizeOf(shape)) {
      throw new Error(`parameter ${name}: ${data.length} values for shape ${shapeString(shape)}`);
    }
    const tensor = backend.scope(() => backend.variable(backend.tensor(data, shape), trainable));
    this.#entries.set(name, { tensor, shape: tensor.shape, trainable });
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
    if (!entry.tensor) throw new Error(`${name}: a shape-only ParamStore holds no tensors`);
    return entry.tensor;
  }

  /** The shape of parameter `name` (also in a shape-only store). */
  shape(name: string): readonly number[] {
    const entry = this.#entries.get(name);
    if (!entry) throw new Error(`no parameter named ${name}`);
    return entry.shape;
  }

  /** Whether a parameter or buffer called `name` exists. */
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
    return this.trainableNames().map((name) => this.get(name));
  }

  /** Number of trainable scalars (what PyTorch's `sum(p.numel() for p in parameters())` gives). */
  count(): number {
    let n = 0;
    for (const e of this.#entries.values()) if (e.trainable) n += sizeOf(e.shape);
    return n;
  }

  /** Number of scalars of every entry, trainable or not (parameters and buffers). */
  countAll(): number {
    let n = 0;
    for (const e of this.#entries.values()) n += sizeOf(e.shape);
    return n;
  }

  /** Copies every parameter and buffer to the host. */
  toHost(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const name of this.names()) {
      const tensor = this.get(name);
      out.set(name, {
        shape: [...tensor.shape],
        data: Float32Array.from(this.backend.read(tensor)),
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
      if (src.shape.length !== e.shape.length || src.shape.some((d, i) => d !== e.shape[i])) {
        problems.push(
          `${name}: file has ${shapeString(src.shape)}, model needs ${shapeString(e.shape)}`,
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
    for (const name of this.names()) {
      const src = named.get(name);
      if (!src) continue;
      const tensor = this.get(name);
      this.backend.scope(() =>
        this.backend.assign(tensor, this.backend.tensor(src.data, src.shape))
      );
    }
  }

  /** Frees every variable. */
  dispose(): void {
    for (const e of this.#entries.values()) e.tensor?.dispose();
    this.#entries.clear();
  }

  /** {@link ParamStore.dispose}, for `using store = new ParamStore(backend)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
