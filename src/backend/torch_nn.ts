/**
 * The torch backend's layers: convolutions, group/layer/batch norm (training-mode batch norm
 * may be routed to a process group's SyncBatchNorm, see distributed.ts), pooling, bilinear
 * resizing, attention and the two losses.
 *
 * @module
 */
import {
  BackendError,
  type BatchNormOptions,
  type Conv2dOptions,
  type ConvOptions,
  type Tensor,
} from "./backend.ts";
import { CONV_ACTIVATION } from "./torch_ffi.ts";
import { TorchOps } from "./torch_ops.ts";
import { shapesOf, TorchTensor } from "./torch_tensor.ts";
import * as V from "./validate.ts";

/**
 * A replacement for the shim's training-mode dd_batch_norm with the same arguments and result
 * (dd_dist_sync_batch_norm of a process group); `lastError` explains a non-zero status.
 */
export interface TrainingBatchNorm {
  run(
    x: Deno.PointerObject,
    weight: Deno.PointerObject | null,
    bias: Deno.PointerObject | null,
    runningMean: Deno.PointerObject,
    runningVar: Deno.PointerObject,
    momentum: number,
    eps: number,
    out: BigInt64Array,
  ): number;
  lastError(): string;
}

/** The layers and losses of a torch backend. */
export abstract class TorchNn extends TorchOps {
  #trainingBatchNorm: TrainingBatchNorm | null = null;

  /** Routes training-mode batchNorm through `hook` (null: the shim's own again). */
  setTrainingBatchNorm(hook: TrainingBatchNorm | null): void {
    this.#trainingBatchNorm = hook;
  }

  // ---- convolutions ----

  conv2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: Conv2dOptions = {}): Tensor {
    const { padding = 0, activation } = opts;
    const [padRows, padCols] = typeof padding === "number" ? [padding, padding] : padding;
    V.checkConv2d(x, w, b, { stride: opts.stride ?? 1, padding: [padRows, padCols], activation });
    const status = this.lib.dd_conv2d(
      this.h(x, "conv2d"),
      this.h(w, "conv2d"),
      this.hOpt(b, "conv2d"),
      opts.stride ?? 1,
      padRows,
      padCols,
      CONV_ACTIVATION[activation ?? "none"],
      this.out,
    );
    return this.result(status, "conv2d", [x, w, b]);
  }

  convTranspose2d(x: Tensor, w: Tensor, b: Tensor | undefined, opts: ConvOptions = {}): Tensor {
    const op = "convTranspose2d";
    V.checkConvTranspose2d(x, w, b, opts.stride ?? 1, opts.padding ?? 0, opts.outputPadding ?? 0);
    const status = this.lib.dd_conv_transpose2d(
      this.h(x, op),
      this.h(w, op),
      this.hOpt(b, op),
      opts.stride ?? 1,
      opts.padding ?? 0,
      opts.outputPadding ?? 0,
      this.out,
    );
    return this.result(status, op, [x, w, b]);
  }

  // ---- normalisation ----

  groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const op = "groupNorm";
    V.checkGroupNorm(x, groups, weight, bias);
    const status = this.lib.dd_group_norm(
      this.h(x, op),
      groups,
      this.h(weight, op),
      this.h(bias, op),
      eps,
      this.out,
    );
    return this.result(status, op, [x, weight, bias]);
  }

  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
    const op = "layerNorm";
    V.checkLayerNorm(x, weight, bias);
    const status = this.lib.dd_layer_norm(
      this.h(x, op),
      this.h(weight, op),
      this.h(bias, op),
      eps,
      this.out,
    );
    return this.result(status, op, [x, weight, bias]);
  }

  batchNorm(
    x: Tensor,
    weight: Tensor | undefined,
    bias: Tensor | undefined,
    runningMean: Tensor,
    runningVar: Tensor,
    opts: BatchNormOptions,
  ): Tensor {
    const op = "batchNorm";
    V.checkBatchNorm(x, weight, bias, runningMean, runningVar, opts.training);
    for (const stat of [runningMean, runningVar]) {
      if (!(stat instanceof TorchTensor && stat.isVariable)) {
        throw new BackendError(
          op,
          shapesOf([x, runningMean, runningVar]),
          "running statistics must be variables (they are updated in place)",
        );
      }
    }
    const hook = opts.training ? this.#trainingBatchNorm : null;
    if (hook) {
      const status = hook.run(
        this.h(x, op),
        this.hOpt(weight, op),
        this.hOpt(bias, op),
        this.h(runningMean, op),
        this.h(runningVar, op),
        opts.momentum ?? 0.1,
        opts.eps ?? 1e-5,
        this.out,
      );
      if (status !== 0) {
        throw new BackendError(op, shapesOf([x, weight, bias]), hook.lastError());
      }
      return this.result(0, op, [x, weight, bias, runningMean, runningVar]);
    }
    const status = this.lib.dd_batch_norm(
      this.h(x, op),
      this.hOpt(weight, op),
      this.hOpt(bias, op),
      this.h(runningMean, op),
      this.h(runningVar, op),
      opts.training ? 1 : 0,
      opts.momentum ?? 0.1,
      opts.eps ?? 1e-5,
      this.out,
    );
    return this.result(status, op, [x, weight, bias, runningMean, runningVar]);
  }

  // ---- pooling, resizing, attention ----

  maxPool2d(x: Tensor, kernel: number, stride: number, padding = 0): Tensor {
    V.checkPool("maxPool2d", x, kernel, stride, padding);
    const h = this.h(x, "maxPool2d");
    const status = this.lib.dd_max_pool2d(h, kernel, stride, padding, this.out);
    return this.result(status, "maxPool2d", [x]);
  }

  avgPool2d(
    x: Tensor,
    kernel: number,
    stride: number,
    padding = 0,
    countIncludePad = true,
  ): Tensor {
    V.checkPool("avgPool2d", x, kernel, stride, padding);
    const h = this.h(x, "avgPool2d");
    const include = countIncludePad ? 1 : 0;
    const status = this.lib.dd_avg_pool2d(h, kernel, stride, padding, include, this.out);
    return this.result(status, "avgPool2d", [x]);
  }

  interpolateBilinear(x: Tensor, size: readonly [number, number], alignCorners: boolean): Tensor {
    const op = "interpolateBilinear";
    V.checkInterpolate(x, size);
    const h = this.h(x, op);
    const status = this.lib.dd_interpolate_bilinear(
      h,
      size[0],
      size[1],
      alignCorners ? 1 : 0,
      this.out,
    );
    return this.result(status, op, [x]);
  }

  attention(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const op = "attention";
    V.checkAttention(q, k, v);
    const status = this.lib.dd_attention(
      this.h(q, op),
      this.h(k, op),
      this.h(v, op),
      this.out,
    );
    return this.result(status, op, [q, k, v]);
  }

  // ---- losses ----

  mseLoss(pred: Tensor, target: Tensor): Tensor {
    const op = "mseLoss";
    V.checkSameShape(op, pred, target);
    const status = this.lib.dd_mse_loss(this.h(pred, op), this.h(target, op), this.out);
    return this.result(status, op, [pred, target]);
  }

  bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
    const op = "bceWithLogits";
    V.checkSameShape(op, logits, targets);
    const status = this.lib.dd_bce_with_logits(
      this.h(logits, op),
      this.h(targets, op),
      this.out,
    );
    return this.result(status, op, [logits, targets]);
  }
}
