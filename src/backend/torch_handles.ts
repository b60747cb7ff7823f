/**
 * The torch backend's handle table: every tensor is an id into it, pointing at a native handle
 * of the shim; here are the bookkeeping (bytes, scopes, the finalizer as a safety net), the
 * helpers every op uses to pass handles in and turn a status + dd_out back into a tensor,
 * tensor creation and reading, scopes and disposal. The ops live in torch_ops.ts, torch_nn.ts
 * and torch.ts, each a subclass of the one before.
 *
 * @module
 */
import {
  type BackendCapabilities,
  BackendError,
  type DType,
  type Keepable,
  sizeOf,
  type Tensor,
} from "./backend.ts";
import { cString, type Lib, MAX_RANK } from "./torch_ffi.ts";
import { collectTensors, shapesOf, type Slot, TorchTensor } from "./torch_tensor.ts";
import * as V from "./validate.ts";

/**
 * The handle table of a torch backend, with creation, reading, scopes and disposal. The op
 * groups extend it (torch_ops.ts, torch_nn.ts, then torch.ts) and reach the shim only through
 * its protected helpers; the table itself stays private here.
 */
export abstract class TorchHandles {
  readonly name: string;
  readonly device: string;
  readonly version: string;
  readonly capabilities: BackendCapabilities;
  protected readonly lib: Lib;
  protected readonly cuda: number;
  protected readonly out = new BigInt64Array(3 + MAX_RANK);
  readonly #slots = new Map<number, Slot>();
  readonly #scopes: Set<TorchTensor>[] = [];
  readonly #finalizer: FinalizationRegistry<number>;
  #nextId = 1;
  #bytes = 0;
  #closed = false;

  constructor(lib: Lib, cuda: boolean) {
    this.lib = lib;
    this.cuda = cuda ? 1 : 0;
    this.name = cuda ? "torch-cuda" : "torch-cpu";
    this.device = cString(lib.dd_device_name(this.cuda));
    this.version = `libtorch ${cString(lib.dd_version())}`;
    this.capabilities = {
      eighFloat64: true,
      autocast: cuda,
      fusedConvActivation: true,
      // libtorch allocates from host or device memory and fails with a clean error.
      memoryLimitBytes: null,
    };
    // Safety net only: a handle dropped without dispose() is freed when collected.
    this.#finalizer = new FinalizationRegistry((id) => this.#free(id));
  }

  // ---- bookkeeping ----

  holds(id: number): boolean {
    return this.#slots.has(id);
  }

  release(t: TorchTensor): void {
    if (this.#free(t.id)) this.#finalizer.unregister(t);
  }

  #free(id: number): boolean {
    const slot = this.#slots.get(id);
    if (!slot) return false;
    this.#slots.delete(id);
    this.#bytes -= slot.bytes;
    this.lib.dd_free(slot.ptr);
    return true;
  }

  protected adopt(
    addr: bigint,
    shape: number[],
    dtype: DType,
    variable = false,
    trainable = false,
  ): TorchTensor {
    const ptr = Deno.UnsafePointer.create(addr);
    if (ptr === null) throw new BackendError("adopt", [shape], "the shim returned a null handle");
    const id = this.#nextId++;
    const bytes = sizeOf(shape) * 4;
    this.#slots.set(id, { ptr, addr, bytes });
    this.#bytes += bytes;
    const t = new TorchTensor(this, id, shape, dtype, variable, trainable);
    this.#finalizer.register(t, id, t);
    if (!variable) this.#scopes.at(-1)?.add(t);
    return t;
  }

  protected error(op: string, inputs: readonly (Tensor | number | undefined)[]): BackendError {
    return new BackendError(op, shapesOf(inputs), cString(this.lib.dd_last_error()).trim());
  }

  /** Turns a status + dd_out into a tracked tensor (or a BackendError). */
  protected result(
    status: number,
    op: string,
    inputs: readonly (Tensor | number | undefined)[],
  ): TorchTensor {
    if (status !== 0) throw this.error(op, inputs);
    const out = this.out;
    const rank = Number(out[2]);
    const shape = new Array<number>(rank);
    for (let i = 0; i < rank; i++) shape[i] = Number(out[3 + i]);
    return this.adopt(out[0], shape, out[1] === 1n ? "int32" : "float32");
  }

  /** The live handle of `t`, or a BackendError naming the op. */
  protected h(t: Tensor, op: string): Deno.PointerObject {
    if (!(t instanceof TorchTensor) || t.owner !== this) {
      throw new BackendError(
        op,
        [t.shape],
        `tensor belongs to backend ${t.backend}, not ${this.name}`,
      );
    }
    const slot = this.#slots.get(t.id);
    if (!slot) throw new BackendError(op, [t.shape], "tensor was disposed");
    return slot.ptr;
  }

  protected hOpt(t: Tensor | undefined, op: string): Deno.PointerObject | null {
    return t === undefined ? null : this.h(t, op);
  }

  protected addrs(ts: readonly Tensor[], op: string): BigInt64Array {
    const a = new BigInt64Array(ts.length);
    for (let i = 0; i < ts.length; i++) {
      this.h(ts[i], op);
      a[i] = this.#slots.get((ts[i] as TorchTensor).id)!.addr;
    }
    return a;
  }

  protected ints(xs: readonly number[], op: string, shapes: readonly Tensor[] = []): BigInt64Array {
    const a = new BigInt64Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      if (!Number.isInteger(xs[i])) {
        throw new BackendError(op, shapesOf(shapes), `expected integers, got [${xs.join(",")}]`);
      }
      a[i] = BigInt(xs[i]);
    }
    return a;
  }

  protected checkOpen(op: string): void {
    if (this.#closed) throw new BackendError(op, [], `backend ${this.name} was disposed`);
  }

  // ---- hooks for native/distributed/ (same layer: src/backend/distributed.ts) ----

  /** The shim handles of `ts` as integers (for collectives over them). */
  addresses(ts: readonly Tensor[], op: string): BigInt64Array {
    this.checkOpen(op);
    return this.addrs(ts, op);
  }

  // ---- creation and reading ----

  tensor(
    data: Float32Array | Int32Array | number[],
    shape: readonly number[],
    dtype?: DType,
  ): Tensor {
    this.checkOpen("tensor");
    const type: DType = dtype ?? (data instanceof Int32Array ? "int32" : "float32");
    V.checkTensorData(data.length, shape, type);
    const host = type === "int32"
      ? (data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>))
      : (data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
    const status = this.lib.dd_from_data(
      host,
      type === "int32" ? 1 : 0,
      this.ints(shape, "tensor"),
      shape.length,
      this.cuda,
      this.out,
    );
    return this.result(status, "tensor", []);
  }

  zeros(shape: readonly number[]): Tensor {
    V.checkShape("zeros", shape);
    return this.full(shape, 0);
  }

  full(shape: readonly number[], value: number): Tensor {
    V.checkShape("full", shape);
    this.checkOpen("full");
    const dims = this.ints(shape, "full");
    return this.result(
      this.lib.dd_full(dims, shape.length, value, this.cuda, this.out),
      "full",
      [],
    );
  }

  read(t: Tensor): Float32Array | Int32Array {
    const h = this.h(t, "read");
    const n = sizeOf(t.shape);
    const dst = t.dtype === "int32" ? new Int32Array(n) : new Float32Array(n);
    if (this.lib.dd_read(h, dst, BigInt(dst.byteLength)) !== 0) throw this.error("read", [t]);
    return dst;
  }

  variable(init: Tensor, trainable: boolean): Tensor {
    const status = this.lib.dd_variable(this.h(init, "variable"), trainable ? 1 : 0, this.out);
    if (status !== 0) throw this.error("variable", [init]);
    const out = this.out;
    const shape = [...init.shape];
    return this.adopt(out[0], shape, out[1] === 1n ? "int32" : "float32", true, trainable);
  }

  assign(variable: Tensor, value: Tensor): void {
    V.checkAssign(variable, value);
    const dst = this.h(variable, "assign");
    if (!(variable as TorchTensor).isVariable) {
      throw new BackendError("assign", shapesOf([variable, value]), "target is not a variable");
    }
    if (this.lib.dd_assign(dst, this.h(value, "assign")) !== 0) {
      throw this.error("assign", [variable, value]);
    }
  }

  // ---- memory ----

  scope<T extends Keepable>(fn: () => T): T {
    const created = new Set<TorchTensor>();
    this.#scopes.push(created);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.#scopes.pop();
      for (const t of created) t.dispose();
      throw e;
    }
    this.#scopes.pop();
    const keep = new Set<Tensor>();
    collectTensors(result, keep);
    const parent = this.#scopes.at(-1);
    for (const t of created) {
      if (keep.has(t)) parent?.add(t);
      else t.dispose();
    }
    return result;
  }

  liveTensors(): number {
    return this.#slots.size;
  }

  liveBytes(): number {
    return this.#bytes;
  }

  peakBytes(fn: () => Keepable): number {
    // Autograd's saved tensors live inside libtorch, out of this count: no peak to report.
    this.scope(() => {
      fn();
    });
    return NaN;
  }

  /** Handles alive inside the shim for this thread (all torch backends of this worker). */
  nativeLiveHandles(): number {
    return Number(this.lib.dd_live_handles());
  }

  dispose(): void {
    if (this.#closed) return;
    for (const id of [...this.#slots.keys()]) this.#free(id);
    this.#closed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
