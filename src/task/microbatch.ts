/**
 * Gradient accumulation over micro-batches, for a training batch that does not fit the
 * backend's memory (see backend/memory.ts). A loss that is a mean over the batch's samples,
 * each sample's term depending on that sample alone, equals the size-weighted mean of the
 * micro-batches' losses, and so do its gradients: the result is the full batch's up to float
 * rounding. That holds for the DDPM losses over GroupNorm U-Nets (per-sample normalisation);
 * it does not for BatchNorm, whose statistics span the batch, so the DCGAN never uses this: it
 * refuses a batch that does not fit, naming the largest that does (gan/memory.ts).
 *
 * @module
 */
import type { Backend, Tensor, ValueAndGrad } from "../backend/backend.ts";
import { type BatchFit, fitBatch, noteSplit, splitSizes } from "../backend/memory.ts";

/**
 * Loss and gradients of a batch of `n` samples, in micro-batches where the backend's memory
 * requires. `part(start, size)` must return the loss (a mean over its samples) and gradients
 * of samples [start, start + size). The part size is measured once per batch size and kept in
 * `cache`; the split is announced once on stderr. When the batch fits in one pass, `whole()`
 * computes it instead (default `part(0, n)`; the data-parallel step averages there, overlapped
 * with backward) and the result says `whole: true`.
 *
 * @example
 * ```ts
 * // const { value, grads } = accumulatedValueAndGrad(backend, 32, (s, m) =>
 * //   backend.valueAndGrad(() => lossOf(s, m), params), new Map());
 * ```
 */
export function accumulatedValueAndGrad(
  backend: Backend,
  n: number,
  part: (start: number, size: number) => ValueAndGrad,
  cache: Map<number, BatchFit>,
  whole: () => ValueAndGrad = () => part(0, n),
): ValueAndGrad & { whole: boolean } {
  let fit = cache.get(n);
  if (!fit) {
    fit = fitBatch(backend, n, (m) => part(0, m).grads);
    cache.set(n, fit);
    if (fit.size < n) noteSplit(backend, "training step (gradient accumulation)", n, fit);
  }
  if (fit.size >= n) return { ...whole(), whole: true };
  let value = 0;
  let sum: Tensor[] | undefined;
  let start = 0;
  for (const size of splitSizes(n, fit.size)) {
    const weight = size / n;
    const next = backend.scope(() => {
      const r = part(start, size);
      value += weight * r.value;
      const weighted = r.grads.map((g) => backend.mul(g, weight));
      return sum ? sum.map((s, i) => backend.add(s, weighted[i])) : weighted;
    });
    sum?.forEach((t) => t.dispose());
    sum = next;
    start += size;
  }
  return { value, grads: sum!, whole: false };
}
