/**
 * The torch backend's tensor ops: elementwise arithmetic and activations, reductions, shape
 * ops, matmul and linear. Each validates with the shared checks (validate.ts), calls one shim
 * function and adopts its result (torch_handles.ts).
 *
 * @module
 */
import type { DType, Tensor } from "./backend.ts";
import { BINARY, REDUCE, UNARY } from "./torch_ffi.ts";
import { TorchHandles } from "./torch_handles.ts";
import * as V from "./validate.ts";

/** The tensor ops of a torch backend (the layers are in torch_nn.ts). */
export abstract class TorchOps extends TorchHandles {
  // ---- elementwise ----

  #unary(op: keyof typeof UNARY, a: Tensor): Tensor {
    return this.result(this.lib.dd_unary(UNARY[op], this.h(a, op), this.out), op, [a]);
  }

  #binary(op: keyof typeof BINARY, a: Tensor, b: Tensor | number): Tensor {
    V.checkBinary(op, a, b);
    const ha = this.h(a, op);
    const status = typeof b === "number"
      ? this.lib.dd_binary_scalar(BINARY[op], ha, b, this.out)
      : this.lib.dd_binary(BINARY[op], ha, this.h(b, op), this.out);
    return this.result(status, op, [a, b]);
  }

  add(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("add", a, b);
  }
  sub(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("sub", a, b);
  }
  mul(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("mul", a, b);
  }
  div(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("div", a, b);
  }
  pow(a: Tensor, p: number): Tensor {
    return this.#binary("pow", a, p);
  }
  greater(a: Tensor, b: Tensor | number): Tensor {
    return this.#binary("greater", a, b);
  }
  leakyRelu(a: Tensor, slope: number): Tensor {
    return this.#binary("leakyRelu", a, slope);
  }
  neg(a: Tensor): Tensor {
    return this.#unary("neg", a);
  }
  exp(a: Tensor): Tensor {
    return this.#unary("exp", a);
  }
  log(a: Tensor): Tensor {
    return this.#unary("log", a);
  }
  sqrt(a: Tensor): Tensor {
    return this.#unary("sqrt", a);
  }
  abs(a: Tensor): Tensor {
    return this.#unary("abs", a);
  }
  detach(a: Tensor): Tensor {
    return this.#unary("detach", a);
  }
  relu(a: Tensor): Tensor {
    return this.#unary("relu", a);
  }
  gelu(a: Tensor): Tensor {
    return this.#unary("gelu", a);
  }
  silu(a: Tensor): Tensor {
    return this.#unary("silu", a);
  }
  tanh(a: Tensor): Tensor {
    return this.#unary("tanh", a);
  }
  sigmoid(a: Tensor): Tensor {
    return this.#unary("sigmoid", a);
  }

  clamp(a: Tensor, min: number, max: number): Tensor {
    return this.result(this.lib.dd_clamp(this.h(a, "clamp"), min, max, this.out), "clamp", [
      a,
    ]);
  }

  where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
    V.checkWhere(cond, a, b);
    const status = this.lib.dd_where(
      this.h(cond, "where"),
      this.h(a, "where"),
      this.h(b, "where"),
      this.out,
    );
    return this.result(status, "where", [cond, a, b]);
  }

  cast(a: Tensor, dtype: DType): Tensor {
    V.checkDType("cast", [a.shape], dtype);
    const code = dtype === "int32" ? 1 : 0;
    return this.result(this.lib.dd_cast(this.h(a, "cast"), code, this.out), "cast", [a]);
  }

  softmax(a: Tensor, axis: number): Tensor {
    V.checkAxis("softmax", a, axis);
    const h = this.h(a, "softmax");
    return this.result(this.lib.dd_softmax(h, axis, this.out), "softmax", [a]);
  }

  // ---- reductions and shape ----

  #reduce(op: keyof typeof REDUCE, a: Tensor, axes?: readonly number[], keepDims = false): Tensor {
    V.checkAxes(op, a, axes);
    const h = this.h(a, op);
    const dims = this.ints(axes ?? a.shape.map((_, i) => i), op, [a]);
    const status = this.lib.dd_reduce(
      REDUCE[op],
      h,
      dims,
      dims.length,
      keepDims ? 1 : 0,
      this.out,
    );
    return this.result(status, op, [a]);
  }

  sum(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#reduce("sum", a, axes, keepDims);
  }
  mean(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#reduce("mean", a, axes, keepDims);
  }
  max(a: Tensor, axes?: readonly number[], keepDims?: boolean): Tensor {
    return this.#reduce("max", a, axes, keepDims);
  }

  reshape(a: Tensor, shape: readonly number[]): Tensor {
    V.checkReshape(a, shape);
    const h = this.h(a, "reshape");
    const dims = this.ints(shape, "reshape", [a]);
    const status = this.lib.dd_reshape(h, dims, dims.length, this.out);
    return this.result(status, "reshape", [a]);
  }

  permute(a: Tensor, dims: readonly number[]): Tensor {
    V.checkPermute(a, dims);
    const h = this.h(a, "permute");
    const d = this.ints(dims, "permute", [a]);
    return this.result(this.lib.dd_permute(h, d, d.length, this.out), "permute", [a]);
  }

  slice(a: Tensor, begin: readonly number[], size: readonly number[]): Tensor {
    V.checkSlice(a, begin, size);
    const h = this.h(a, "slice");
    const b = this.ints(begin, "slice", [a]);
    const s = this.ints(size, "slice", [a]);
    return this.result(this.lib.dd_slice(h, b, s, b.length, this.out), "slice", [a]);
  }

  cat(xs: readonly Tensor[], axis: number): Tensor {
    V.checkCat(xs, axis);
    const handles = this.addrs(xs, "cat");
    return this.result(this.lib.dd_cat(handles, xs.length, axis, this.out), "cat", xs);
  }

  gather(a: Tensor, indices: Tensor, axis: number): Tensor {
    V.checkGather(a, indices, axis);
    // libtorch's own out-of-range message differs from the other backends': check here.
    V.checkGatherIndices(a, indices, axis, this.read(indices));
    const status = this.lib.dd_gather(
      this.h(a, "gather"),
      this.h(indices, "gather"),
      axis,
      this.out,
    );
    return this.result(status, "gather", [a, indices]);
  }

  // ---- matrix products ----

  matmul(a: Tensor, b: Tensor): Tensor {
    V.checkMatmul(a, b);
    const status = this.lib.dd_matmul(this.h(a, "matmul"), this.h(b, "matmul"), this.out);
    return this.result(status, "matmul", [a, b]);
  }

  linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    V.checkLinear(x, w, b);
    const status = this.lib.dd_linear(
      this.h(x, "linear"),
      this.h(w, "linear"),
      this.hOpt(b, "linear"),
      this.out,
    );
    return this.result(status, "linear", [x, w, b]);
  }
}
