/**
 * Images -> Inception features, preprocessed as pytorch-fid does: uint8 RGB -> float [0, 1]
 * -> bilinear resize to 299x299 (align_corners=False) -> 2x - 1, in batches, with a progress
 * bar on stderr.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { type BatchFit, fitBatch, noteSplit } from "../backend/memory.ts";
import { decodeImageFile } from "../io/image.ts";
import { ProgressBar } from "../io/progress.ts";
import type { InceptionNet } from "./inception.ts";

/** An 8-bit image, HWC row-major; grayscale (1) and RGBA (4, alpha dropped) are accepted. */
export interface ImageLike {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** 1 (gray), 3 (RGB) or 4 (RGBA). */
  channels: number;
  /** [H, W, channels] */
  data: Uint8Array;
}

/** Inception's input side. */
export const INCEPTION_SIZE = 299;

/**
 * Stacks same-sized images into x [N, 3, H, W] with values in [0, 1] (as torchvision's
 * ToTensor); grayscale is replicated to RGB and alpha dropped, as PIL's convert("RGB").
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { imagesToTensor } from "./features.ts";
 * const backend = await createBackend("tfjs-cpu");
 * const x = imagesToTensor(backend, [{ width: 1, height: 1, channels: 1, data: new Uint8Array([255]) }]);
 * console.log(x.shape); // [1, 3, 1, 1]
 * ```
 */
export function imagesToTensor(backend: Backend, images: readonly ImageLike[]): Tensor {
  if (images.length === 0) throw new Error("imagesToTensor: no images");
  const { width, height } = images[0];
  const plane = width * height;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, n) => {
    if (img.width !== width || img.height !== height) {
      throw new Error(
        `imagesToTensor: mixed sizes ${width}x${height} and ${img.width}x${img.height}`,
      );
    }
    const c = img.channels;
    if (![1, 3, 4].includes(c) || img.data.length !== plane * c) {
      throw new Error(
        `image ${n}: ${img.data.length} bytes do not make ${width}x${height} with ${c} channels ` +
          `(1, 3 or 4 expected)`,
      );
    }
    for (let ch = 0; ch < 3; ch++) {
      const src = c === 1 ? 0 : ch;
      const base = (n * 3 + ch) * plane;
      for (let i = 0; i < plane; i++) out[base + i] = img.data[i * c + src] / 255;
    }
  });
  return backend.tensor(out, [images.length, 3, height, width]);
}

/**
 * x [N, 3, H, W] in [0, 1] -> [N, 3, 299, 299] in [-1, 1]: bilinear resize with
 * align_corners=False (pytorch-fid's F.interpolate), then 2x - 1.
 *
 * @example
 * ```ts
 * import { createBackend } from "../backend/select.ts";
 * import { toInceptionInput } from "./features.ts";
 * const backend = await createBackend("tfjs-cpu");
 * console.log(toInceptionInput(backend, backend.zeros([2, 3, 32, 32])).shape); // [2, 3, 299, 299]
 * ```
 */
export function toInceptionInput(backend: Backend, x: Tensor): Tensor {
  const resized = backend.interpolateBilinear(x, [INCEPTION_SIZE, INCEPTION_SIZE], false);
  return backend.sub(backend.mul(resized, 2), 1);
}

/** Options of {@link computeActivations}. */
export interface ActivationOptions {
  /** Images per forward pass. Default 50 (pytorch-fid's default). */
  batchSize?: number;
  /** Total count, for the progress bar when `images` is not an array. */
  total?: number;
  /** Show a progress bar on stderr (default true when stderr is a terminal). */
  progress?: boolean;
  /** Label of the progress bar. */
  label?: string;
}

/**
 * Features of a set of images: `data` [n, dims] row-major. The project's one name for a
 * feature matrix; `Data` is float32 as the network gives it, float64 where a caller has it.
 */
export interface FeatureMatrix<Data extends Float32Array | Float64Array = Float32Array> {
  /** [n, dims] row-major. */
  data: Data;
  /** Number of images. */
  n: number;
  /** Feature size. */
  dims: number;
}

/** Runs one batch (any mix of sizes) through the network; features appended to `out`. */
function runBatch(
  backend: Backend,
  net: InceptionNet,
  batch: readonly ImageLike[],
  out: Float32Array[],
): void {
  const features = backend.scope(() =>
    backend.noGrad(() => {
      // Same-sized runs are resized together; the 299x299 results stack into one batch.
      const parts: Tensor[] = [];
      let start = 0;
      while (start < batch.length) {
        let end = start + 1;
        while (
          end < batch.length && batch[end].width === batch[start].width &&
          batch[end].height === batch[start].height
        ) end++;
        parts.push(toInceptionInput(backend, imagesToTensor(backend, batch.slice(start, end))));
        start = end;
      }
      const x = parts.length === 1 ? parts[0] : backend.cat(parts, 0); // [B, 3, 299, 299]
      return net.features(x); // [B, dims]
    })
  );
  try {
    out.push(Float32Array.from(backend.read(features)));
  } finally {
    features.dispose();
  }
}

/**
 * Inception features of images, in order, batch by batch (pytorch-fid's get_activations:
 * features of every block are globally average-pooled).
 *
 * @example
 * ```ts ignore needs-weights
 * import { createBackend } from "../backend/select.ts";
 * import { computeActivations } from "./features.ts";
 * import { loadInception } from "./weights.ts";
 * using backend = await createBackend("torch-cpu");
 * using net = await loadInception(backend);
 * const img = { width: 32, height: 32, channels: 3, data: new Uint8Array(32 * 32 * 3) };
 * const { data, n, dims } = await computeActivations(backend, net, [img, img]);
 * ```
 */
export async function computeActivations(
  backend: Backend,
  net: InceptionNet,
  images: Iterable<ImageLike> | AsyncIterable<ImageLike>,
  options: ActivationOptions = {},
): Promise<FeatureMatrix> {
  const batchSize = options.batchSize ?? 50;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  const total = options.total ?? (Array.isArray(images) ? images.length : undefined);
  const showProgress = options.progress ?? Deno.stderr.isTerminal();
  const bar = showProgress ? new ProgressBar(options.label ?? "Inception features", total) : null;
  const chunks: Float32Array[] = [];
  let batch: ImageLike[] = [];
  let done = 0;
  // Images are independent (Inception runs in eval mode), so parts give the same features.
  let fit: BatchFit | undefined;
  const flush = () => {
    fit ??= fitBatch(backend, batchSize, (m) => runBatch(backend, net, batch.slice(0, m), []));
    if (fit.size < batchSize) noteSplit(backend, "Inception features", batchSize, fit);
    for (let i = 0; i < batch.length; i += fit.size) {
      runBatch(backend, net, batch.slice(i, i + fit.size), chunks);
    }
    done += batch.length;
    batch = [];
    bar?.update(done);
  };
  for await (const image of images) {
    batch.push(image);
    if (batch.length === batchSize) flush();
  }
  if (batch.length) flush();
  bar?.finish(done);
  const data = new Float32Array(done * net.dims);
  let offset = 0;
  for (const c of chunks) {
    data.set(c, offset);
    offset += c.length;
  }
  return { data, n: done, dims: net.dims };
}

/**
 * Decodes image files lazily, in order (for {@link computeActivations} over a folder).
 *
 * @example
 * ```ts
 * import { listImageFiles } from "../io/image.ts";
 * import { writeImageFolder } from "../io/png.ts";
 * import { decodeFiles } from "./features.ts";
 * const dir = await Deno.makeTempDir();
 * await writeImageFolder(dir, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
 * for await (const img of decodeFiles(await listImageFiles(dir))) console.log(img.width); // 4, twice
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* decodeFiles(files: readonly string[]): AsyncGenerator<ImageLike> {
  for (const file of files) yield await decodeImageFile(file);
}
