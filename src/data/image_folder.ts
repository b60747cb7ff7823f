/**
 * Image-folder data sets: `ROOT/{train,test}/<class>/*.png|*.jpg`, classes sorted by name
 * give the label ids (as torchvision's ImageFolder does), and flat folders of images (FID
 * inputs). Symlinked files and folders are followed. Every image must have the same size,
 * unless an `imageSize` is given: then each is resized to it as torchvision's Resize +
 * CenterCrop would.
 *
 * @module
 */
import { decodeImage, listImageFiles } from "../io/image.ts";
import { resizeCenterCrop } from "./resize.ts";

/** Decoded images of one split, with their labels. */
export interface FolderImages {
  /** [N, 3, H, W] uint8 */
  images: Uint8Array;
  /** [N] label ids in the full (unfiltered) class list */
  labels: Int32Array;
  count: number;
  imageShape: [3, number, number];
}

/**
 * The class folders of `ROOT/<split>`, sorted by name (index = label id).
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "../io/png.ts";
 * import { listClassFolders } from "./image_folder.ts";
 * // The layout of an image-folder data set: ROOT/<split>/<class>/*.png|*.jpg
 * const root = await Deno.makeTempDir();
 * for (const name of ["cat", "dog"]) {
 *   await writeImageFolder(`${root}/train/${name}`, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
 * }
 * console.log(await listClassFolders(root, "train")); // ["cat", "dog"]: label ids 0 and 1
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function listClassFolders(root: string, split: "train" | "test"): Promise<string[]> {
  const dir = `${root}/${split}`;
  const classes: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(".")) continue;
      // Symlinked class folders count (Deno.stat follows the link).
      if (entry.isDirectory || (entry.isSymlink && await isDirectory(`${dir}/${entry.name}`))) {
        classes.push(entry.name);
      }
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${dir} does not exist: an image-folder data set needs ${root}/${split}/<class>/*.png|*.jpg`,
        { cause: error },
      );
    }
    throw new Error(`cannot list ${dir}: ${(error as Error).message}`, { cause: error });
  }
  if (classes.length === 0) {
    throw new Error(`${dir} has no class folders (expected ${dir}/<class>/*.png|*.jpg)`);
  }
  return classes.sort();
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false; // a dangling link
  }
}

/**
 * Reads and decodes `paths` into one NCHW uint8 array, `concurrency` file reads at a time.
 * With `imageSize`, every image is resized to it (torchvision Resize + CenterCrop); without,
 * every image must have the size of the first path's (read before the others, so the error
 * names the same odd file whichever read finishes first).
 */
async function decodeAll(
  paths: string[],
  imageSize?: number,
  concurrency = 32,
): Promise<{ images: Uint8Array; imageShape: [3, number, number] }> {
  const decode = async (path: string) => {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      throw new Error(`cannot read image ${path}: ${(error as Error).message}`, { cause: error });
    }
    return decodeImage(bytes, path);
  };
  if (paths.length === 0) return { images: new Uint8Array(0), imageShape: [3, 0, 0] };
  const first = await decode(paths[0]);
  const height = imageSize ?? first.height;
  const width = imageSize ?? first.width;
  const images = new Uint8Array(paths.length * 3 * height * width);
  const store = (index: number, img: { width: number; height: number; data: Uint8Array }) => {
    if (imageSize === undefined && (img.width !== width || img.height !== height)) {
      throw new Error(
        `${paths[index]} is ${img.width}x${img.height} but ${paths[0]}, the first image, is ` +
          `${width}x${height}; all images of a data set must have the same size (pass ` +
          `--image-size N to resize them all to NxN: shorter side to N, then a centre crop)`,
      );
    }
    // HWC -> CHW
    const plane = img.height * img.width;
    const chw = new Uint8Array(3 * plane); // [3, h, w]
    const data = img.data;
    for (let i = 0; i < plane; i++) {
      chw[i] = data[3 * i];
      chw[plane + i] = data[3 * i + 1];
      chw[2 * plane + i] = data[3 * i + 2];
    }
    images.set(
      imageSize === undefined ? chw : resizeCenterCrop(chw, 3, img.height, img.width, imageSize),
      index * 3 * height * width,
    );
  };
  store(0, first);
  let next = 1;
  let failed = false;
  const worker = async () => {
    while (next < paths.length && !failed) {
      const index = next++;
      store(index, await decode(paths[index]));
    }
  };
  await Promise.all(
    Array.from(
      { length: Math.min(concurrency, paths.length - 1) },
      () =>
        worker().catch((error) => {
          failed = true; // stop the other readers
          throw error;
        }),
    ),
  );
  return { images, imageShape: [3, height, width] };
}

/**
 * Loads the images of the kept classes of one split. `keep` lists label ids (indices into
 * {@link listClassFolders}; default all). `limit` caps the total, split evenly over the kept
 * classes (earlier classes take the remainder), first files by name within each class.
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "../io/png.ts";
 * import { loadImageFolder } from "./image_folder.ts";
 * // The layout of an image-folder data set: ROOT/<split>/<class>/*.png|*.jpg
 * const root = await Deno.makeTempDir();
 * for (const name of ["cat", "dog"]) {
 *   await writeImageFolder(`${root}/test/${name}`, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
 * }
 * const dogs = await loadImageFolder(root, "test", { keep: [1] }); // CIFAR-10's cats: keep [3]
 * console.log(dogs.count, dogs.imageShape); // 2 [3, 4, 4]
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function loadImageFolder(
  root: string,
  split: "train" | "test",
  options: { keep?: number[]; limit?: number; imageSize?: number } = {},
): Promise<FolderImages> {
  const classes = await listClassFolders(root, split);
  const keep = options.keep ?? classes.map((_, i) => i);
  const paths: string[] = [];
  const labels: number[] = [];
  for (let k = 0; k < keep.length; k++) {
    const label = keep[k];
    if (!(label >= 0 && label < classes.length)) {
      throw new RangeError(
        `class id ${label} is out of range: ${root}/${split} has ${classes.length} classes`,
      );
    }
    let files = await listImageFiles(`${root}/${split}/${classes[label]}`);
    if (options.limit !== undefined) {
      const share = Math.floor(options.limit / keep.length) +
        (k < options.limit % keep.length ? 1 : 0);
      files = files.slice(0, share);
    }
    paths.push(...files);
    for (let i = 0; i < files.length; i++) labels.push(label);
  }
  if (paths.length === 0) throw new Error(`no images selected from ${root}/${split}`);
  const { images, imageShape } = await decodeAll(paths, options.imageSize);
  return { images, labels: Int32Array.from(labels), count: paths.length, imageShape };
}

/**
 * Loads every image directly inside `dir` (sorted by name), e.g. a folder of samples for FID.
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "../io/png.ts";
 * import { loadFlatImageFolder } from "./image_folder.ts";
 * const dir = await Deno.makeTempDir();
 * await writeImageFolder(dir, new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]); // 00000.png, 00001.png
 * const { images, count, imageShape } = await loadFlatImageFolder(dir);
 * console.log(count, imageShape, images.length); // 2 [3, 4, 4] 96
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadFlatImageFolder(
  dir: string,
  options: { limit?: number; imageSize?: number } = {},
): Promise<{ images: Uint8Array; count: number; imageShape: [3, number, number] }> {
  let paths = await listImageFiles(dir);
  if (options.limit !== undefined) paths = paths.slice(0, options.limit);
  const { images, imageShape } = await decodeAll(paths, options.imageSize);
  return { images, count: paths.length, imageShape };
}
