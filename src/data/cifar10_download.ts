/**
 * The CIFAR-10 cache: the official binary release downloaded once (MD5-checked), extracted
 * into a private folder and moved into place, so a crash never leaves a half-written cache
 * that looks complete. Parsing the batch files is `cifar10.ts`'s job.
 *
 * @module
 */
import { writeFileAtomic } from "../io/atomic.ts";
import { defaultCacheDir } from "../io/cache.ts";
import { downloadFile } from "../io/download.ts";
import type { ByteProgress } from "../io/progress.ts";
import { gunzipFile, parseTar } from "../io/tar.ts";
import { CIFAR10_BATCHES_DIR, CIFAR10_MD5, CIFAR10_URL, hasCifarBatches } from "./cifar10.ts";

/**
 * Makes sure the CIFAR-10 batch files are in the cache, downloading and extracting the
 * official archive if needed, and returns the folder that holds them.
 *
 * @example
 * ```ts ignore needs-network
 * import { ensureCifar10 } from "./cifar10_download.ts";
 * import { readCifarSplit } from "./cifar10.ts";
 * const dir = await ensureCifar10(); // ~/.cache/deno-diffusion/cifar-10-batches-bin
 * const train = await readCifarSplit(dir, "train");
 * ```
 */
export async function ensureCifar10(
  options: { cacheDir?: string; url?: string; md5?: string; onProgress?: ByteProgress } = {},
): Promise<string> {
  const cache = options.cacheDir ?? defaultCacheDir();
  const target = `${cache}/${CIFAR10_BATCHES_DIR}`;
  if (await hasCifarBatches(target)) return target;
  await Deno.mkdir(cache, { recursive: true });
  const url = options.url ?? CIFAR10_URL;
  const archive = `${cache}/cifar-10-binary.tar.gz`;
  await downloadFile(url, archive, {
    md5: options.md5 ?? CIFAR10_MD5,
    onProgress: options.onProgress,
  });
  // Extract into a private folder, then move the finished batch folder into place, so a
  // crash never leaves a half-extracted cache that looks complete.
  const staging = await Deno.makeTempDir({ dir: cache, prefix: ".extract-" });
  try {
    const files = parseTar(await gunzipFile(archive), archive);
    for (const { name, data } of files) {
      if (!name.startsWith(`${CIFAR10_BATCHES_DIR}/`) || name.includes("..")) continue;
      await Deno.mkdir(`${staging}/${CIFAR10_BATCHES_DIR}`, { recursive: true });
      await writeFileAtomic(`${staging}/${name}`, data);
    }
    if (!(await hasCifarBatches(`${staging}/${CIFAR10_BATCHES_DIR}`))) {
      throw new Error(
        `${archive} does not contain ${CIFAR10_BATCHES_DIR}/data_batch_1..5.bin and test_batch.bin`,
      );
    }
    await Deno.remove(target, { recursive: true }).catch(() => {});
    await Deno.rename(`${staging}/${CIFAR10_BATCHES_DIR}`, target);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await Deno.remove(archive).catch(() => {});
  }
  return target;
}
