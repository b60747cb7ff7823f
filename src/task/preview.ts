/**
 * The one layout of class labels for image grids (training previews, `sample` grids, the
 * study's fixed-noise grids), so every grid of a conditional model reads the same way.
 *
 * @module
 */

/**
 * Labels for a preview grid of `n` images with `columns` per row: zeros when unconditional;
 * otherwise row r of the ceil(n / columns) rows shows class floor(r * K / rows), so each class
 * gets one contiguous block of whole rows, in class order.
 *
 * @example
 * ```ts
 * import { previewLabels } from "./preview.ts";
 * console.log([...previewLabels(8, 2, 2)]); // [0, 0, 0, 0, 1, 1, 1, 1]
 * ```
 */
export function previewLabels(n: number, numClasses: number, columns = 8): Int32Array {
  const labels = new Int32Array(n);
  if (numClasses <= 0) return labels;
  const rows = Math.ceil(n / columns);
  for (let i = 0; i < n; i++) {
    labels[i] = Math.floor((Math.floor(i / columns) * numClasses) / rows);
  }
  return labels;
}
