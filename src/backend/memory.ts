/**
 * Sizing work to a backend's memory: where `capabilities.memoryLimitBytes` is set (tfjs-wasm's
 * 4 GiB heap), a batch that would not fit is split into parts that do. The need is measured,
 * not guessed: the work runs once on one item and once on two, and the peak tensor bytes of
 * each ({@link Backend.peakBytes}) give a fixed part and a part per item; the largest part
 * that fits follows from them. The callers (the trainer's steps, Inception features, sampling)
 * decide what a split means for their results; see task/microbatch.ts.
 *
 * @module
 */
import type { Backend } from "./backend.ts";

/** What {@link fitBatch} found. */
export interface BatchFit {
  /** Items per part: the whole batch when it fits or the backend has no limit. */
  size: number;
  /** Estimated peak bytes of the whole batch in one part (NaN when not measured). */
  needBytes: number;
  /** The backend's limit (null: none). */
  limitBytes: number | null;
}

/**
 * The largest part of a batch of `n` items that fits `backend`'s memory limit, by running
 * `probe(1)` and `probe(2)` (each must run the work on that many items and may return
 * tensors, which are freed). Without a limit, or for n = 1, nothing runs and the answer is n.
 *
 * @example
 * ```ts
 * import { createBackend } from "./select.ts";
 * import { fitBatch } from "./memory.ts";
 * const b = await createBackend("tfjs-wasm");
 * const fit = fitBatch(b, 64, (m) => b.relu(b.zeros([m, 1000])));
 * console.log(fit.size); // 64: a kilobyte per row fits easily
 * b.dispose();
 * ```
 */
export function fitBatch(backend: Backend, n: number, probe: (m: number) => unknown): BatchFit {
  const limitBytes = backend.capabilities.memoryLimitBytes;
  if (limitBytes === null || n <= 1) return { size: n, needBytes: NaN, limitBytes };
  const one = backend.peakBytes(() => {
    probe(1);
  });
  const two = backend.peakBytes(() => {
    probe(2);
  });
  // peak(m) = fixed + m * perItem; a noisy or flat second point counts all of it per item.
  const perItem = two > one ? two - one : Math.max(one, 1);
  const fixed = Math.max(0, one - perItem);
  const needBytes = fixed + n * perItem;
  if (needBytes <= limitBytes) return { size: n, needBytes, limitBytes };
  const size = Math.max(1, Math.min(n, Math.floor((limitBytes - fixed) / perItem)));
  return { size, needBytes, limitBytes };
}

/** Splits `n` items into the fewest parts of at most `size`, as equal as possible. */
export function splitSizes(n: number, size: number): number[] {
  const parts = Math.ceil(n / Math.max(1, size));
  const base = Math.floor(n / parts);
  const extra = n - base * parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

const said = new Set<string>();

/**
 * The one stderr line saying that `what` runs in parts and why; printed once per process and
 * message (not once per step).
 */
export function noteSplit(backend: Backend, what: string, n: number, fit: BatchFit): void {
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const line = `${what}: ${n} items need ~${gib(fit.needBytes)} of tensors on ${backend.name}, ` +
    `over its ${gib(fit.limitBytes ?? 0)} budget; running them in parts of at most ${fit.size}`;
  if (said.has(line)) return;
  said.add(line);
  console.error(line);
}
