/**
 * The DCGAN's batch against a backend's memory limit (tfjs-wasm's heap; see
 * backend/memory.ts). A DDPM step that does not fit runs as micro-batches with gradient
 * accumulation, which is exact because GroupNorm normalises each sample on its own. The
 * DCGAN's BatchNorm normalises over the whole batch (and its running statistics follow the
 * batch's), so micro-batches would train a different model. The user's batch semantics are
 * kept instead: a batch that does not fit is refused before the step touches anything, with
 * the largest batch that fits.
 *
 * The need is measured as for the DDPM step: the step's work (G's forward pass, D's loss and
 * gradients on a real and a fake batch, G's loss and gradients through D) runs once on one
 * sample and once on two, writing BatchNorm running statistics to throw-away sinks so that the
 * model is left exactly as it was.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { type BatchFit, fitBatch } from "../backend/memory.ts";
import {
  type DcganModelConfig,
  defineDiscriminatorStatsSink,
  defineGeneratorStatsSink,
  discriminatorForward,
  generatorForward,
} from "../models/dcgan.ts";
import { ParamStore } from "../nn/params.ts";
import { discriminatorLoss, generatorLoss } from "./loss.ts";

/** A DCGAN batch larger than the backend's memory allows; names the largest that fits. */
export class GanBatchTooLargeError extends Error {
  constructor(
    readonly batchSize: number,
    readonly largestBatch: number,
    readonly fit: BatchFit,
    backendName: string,
  ) {
    const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;
    super(
      `a DCGAN training step at batch ${batchSize} needs ~${gib(fit.needBytes)} of tensors on ` +
        `${backendName}, over its ${gib(fit.limitBytes ?? 0)} budget. The DCGAN's BatchNorm ` +
        `normalises over the whole batch, so the batch cannot be split into smaller parts ` +
        `without changing the training. The largest batch that fits is ${largestBatch}: pass ` +
        `--batch-size ${largestBatch} (or less), or use torch-cpu, which has no such limit.`,
    );
    this.name = "GanBatchTooLargeError";
  }
}

/** What the probe needs of a GAN task. */
export interface GanProbeParts {
  generator: ParamStore;
  discriminator: ParamStore;
  model: DcganModelConfig;
  smooth: boolean;
}

/**
 * A checker that throws {@link GanBatchTooLargeError} when a training step at batch `n` would
 * not fit `backend`'s memory; measured once per batch size. Without a limit it never runs
 * anything.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { Rng } from "../core/rng.ts";
 * import { ParamStore } from "../nn/params.ts";
 * import { DEFAULT_DCGAN, defineDiscriminator, defineGenerator } from "../models/dcgan.ts";
 * import { ganBatchChecker } from "./memory.ts";
 * using b = await createBackend("tfjs-cpu");
 * const model = { ...DEFAULT_DCGAN, nz: 8, ngf: 4, ndf: 4 };
 * using generator = new ParamStore(b);
 * using discriminator = new ParamStore(b);
 * defineGenerator(generator, new Rng(0), model);
 * defineDiscriminator(discriminator, new Rng(1), model);
 * const check = ganBatchChecker(b, { generator, discriminator, model, smooth: false });
 * check(64); // tfjs-cpu has no memory limit: nothing to measure, no error
 * check.dispose();
 * ```
 */
export function ganBatchChecker(
  backend: Backend,
  parts: GanProbeParts,
): ((n: number) => void) & { dispose(): void } {
  const checked = new Set<number>();
  let sinks: { generator: ParamStore; discriminator: ParamStore } | undefined;
  const probe = (m: number) => {
    sinks ??= makeSinks(backend, parts.model);
    return probeStep(backend, parts, sinks, m);
  };
  const check = (n: number) => {
    if (checked.has(n)) return;
    const fit = fitBatch(backend, n, probe);
    if (fit.size < n) throw new GanBatchTooLargeError(n, fit.size, fit, backend.name);
    checked.add(n);
  };
  return Object.assign(check, {
    dispose: () => {
      sinks?.generator.dispose();
      sinks?.discriminator.dispose();
      sinks = undefined;
    },
  });
}

function makeSinks(b: Backend, model: DcganModelConfig) {
  const generator = new ParamStore(b);
  defineGeneratorStatsSink(generator, model);
  const discriminator = new ParamStore(b);
  defineDiscriminatorStatsSink(discriminator, model);
  return { generator, discriminator };
}

/** The tensors of one training step's work on `m` samples (see the module comment). */
function probeStep(
  b: Backend,
  { generator, discriminator, model, smooth }: GanProbeParts,
  sinks: { generator: ParamStore; discriminator: ParamStore },
  m: number,
): Tensor[] {
  const z = b.zeros([m, model.nz, 1, 1]);
  const real = b.zeros([m, model.channels, 32, 32]);
  const labels = model.numClasses > 0 ? b.tensor(new Int32Array(m), [m], "int32") : undefined;
  const gMode = { training: true, statsSink: sinks.generator };
  const dMode = { training: true, statsSink: sinks.discriminator };
  const fake = b.noGrad(() => generatorForward(b, generator, model, z, labels, gMode));
  const d = b.valueAndGrad(() => {
    const realLogits = discriminatorForward(b, discriminator, model, real, labels, dMode);
    const fakeLogits = discriminatorForward(b, discriminator, model, fake, labels, dMode);
    return discriminatorLoss(b, realLogits, fakeLogits, smooth);
  }, discriminator.trainable());
  const g = b.valueAndGrad(() => {
    const images = generatorForward(b, generator, model, z, labels, gMode);
    return generatorLoss(b, discriminatorForward(b, discriminator, model, images, labels, dMode));
  }, generator.trainable());
  return [...d.grads, ...g.grads];
}
