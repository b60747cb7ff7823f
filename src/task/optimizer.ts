/**
 * Adam/AdamW over a {@link ParamStore}'s trainable parameters, with state that checkpoints
 * under PyTorch-like names (`<param>.exp_avg`, `<param>.exp_avg_sq`). The update itself is the
 * backend's fused {@link Backend.adamStep}.
 *
 * @module
 */
import type { AdamOptions, AdamState, Backend, Tensor, ValueAndGrad } from "../backend/backend.ts";
import type { HostTensor, ParamStore } from "../nn/params.ts";

/**
 * Gradient averaging over the ranks of a data-parallel job, set on an optimizer by the trainer.
 * `valueAndGrad` may overlap the averaging with the backward pass (a torch process group does);
 * `average` averages gradients computed already.
 */
export interface GradientAverager {
  /** Loss and gradients of `lossFn` w.r.t. `params`, averaged over ranks. */
  valueAndGrad(lossFn: () => Tensor, params: readonly Tensor[]): ValueAndGrad;
  /** grads[i] <- mean over ranks of grads[i], in place. */
  average(grads: readonly Tensor[]): void;
}

/**
 * Adam (Kingma & Ba 2015) or AdamW (decoupled weight decay) for one model.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { Adam } from "./optimizer.ts";
 * using b = await createBackend("tfjs-cpu");
 * using store = new ParamStore(b);
 * store.add("w", [2], new Float32Array([1, -1]));
 * using opt = new Adam(store, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
 * const w = store.get("w");
 * const { grads } = b.valueAndGrad(() => b.sum(b.mul(w, w)), store.trainable()); // d/dw = 2w
 * opt.step(grads);
 * console.log(b.read(w)); // about [0.9, -0.9]: Adam's first step moves each weight by lr
 * ```
 */
export class Adam {
  /** Step count and moments (checkpointed). */
  readonly state: AdamState;
  readonly #params: Tensor[];
  readonly #names: string[];
  readonly #backend: Backend;
  /**
   * Set by the trainer under data parallelism. Tasks get their gradients from
   * {@link Adam.valueAndGrad} (averaged, overlapped where the backend can), or, when they
   * accumulate micro-batches, call {@link Adam.averageGradients} on the sum (before clipping).
   */
  gradientAverager: GradientAverager | null = null;

  /** Zero moments for every trainable parameter of `store`. */
  constructor(readonly store: ParamStore, public options: AdamOptions) {
    this.#backend = store.backend;
    this.#params = store.trainable();
    this.#names = store.trainableNames();
    const zerosLike = (p: Tensor) => this.#backend.variable(this.#backend.zeros(p.shape), false);
    this.state = {
      step: 0,
      m: this.#backend.scope(() => this.#params.map(zerosLike)),
      v: this.#backend.scope(() => this.#params.map(zerosLike)),
    };
  }

  /**
   * Loss of `lossFn` and its gradients w.r.t. this optimizer's parameters (store order),
   * averaged over the ranks of a data-parallel job; alone, {@link Backend.valueAndGrad}.
   */
  valueAndGrad(lossFn: () => Tensor): ValueAndGrad {
    return this.gradientAverager
      ? this.gradientAverager.valueAndGrad(lossFn, this.#params)
      : this.#backend.valueAndGrad(lossFn, this.#params);
  }

  /** Averages `grads` over the ranks of a data-parallel job (in place); alone, does nothing. */
  averageGradients(grads: readonly Tensor[]): void {
    this.gradientAverager?.average(grads);
  }

  /** Applies one update with `grads` (one per trainable parameter, in store order). */
  step(grads: readonly Tensor[]): void {
    if (grads.length !== this.#params.length) {
      throw new Error(`Adam.step: ${grads.length} gradients for ${this.#params.length} parameters`);
    }
    this.#backend.adamStep(this.#params, grads, this.state, this.options);
  }

  /** Moments as named host tensors, plus the step count, for checkpoints. */
  toHost(): { step: number; tensors: Map<string, HostTensor> } {
    const tensors = new Map<string, HostTensor>();
    this.#names.forEach((name, i) => {
      for (
        const [suffix, t] of [["exp_avg", this.state.m[i]], [
          "exp_avg_sq",
          this.state.v[i],
        ]] as const
      ) {
        tensors.set(`${name}.${suffix}`, {
          shape: [...t.shape],
          data: Float32Array.from(this.#backend.read(t)),
        });
      }
    });
    return { step: this.state.step, tensors };
  }

  /** Restores what {@link toHost} saved; every moment must be present with the right shape. */
  load(step: number, tensors: ReadonlyMap<string, HostTensor>): void {
    this.#names.forEach((name, i) => {
      for (
        const [suffix, t] of [["exp_avg", this.state.m[i]], [
          "exp_avg_sq",
          this.state.v[i],
        ]] as const
      ) {
        const src = tensors.get(`${name}.${suffix}`);
        if (!src) throw new Error(`optimizer state lacks ${name}.${suffix}`);
        if (src.shape.join() !== t.shape.join()) {
          throw new Error(
            `optimizer state ${name}.${suffix} has shape [${src.shape}], expected [${t.shape}]`,
          );
        }
        this.#backend.scope(() =>
          this.#backend.assign(t, this.#backend.tensor(src.data, src.shape))
        );
      }
    });
    this.state.step = step;
  }

  /** Frees the moments; calling it again does nothing. */
  dispose(): void {
    for (const t of [...this.state.m, ...this.state.v]) t.dispose();
  }

  /** {@link Adam.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Rescales gradients so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_).
 * Returns the new gradient list and the norm before clipping.
 */
export function clipGradNorm(
  backend: Backend,
  grads: readonly Tensor[],
  maxNorm: number,
): { grads: Tensor[]; norm: number } {
  const sq = grads.map((g) => backend.sum(backend.mul(g, g)));
  let total = sq[0];
  for (let i = 1; i < sq.length; i++) total = backend.add(total, sq[i]);
  const norm = Math.sqrt(backend.read(total)[0]);
  if (!(norm > maxNorm)) return { grads: [...grads], norm };
  const scale = maxNorm / (norm + 1e-6);
  return { grads: grads.map((g) => backend.mul(g, scale)), norm };
}
