/**
 * The unit of data every layer above `data/` trades in: a batch of images on the host.
 *
 * @module
 */

/** A batch of images on the host: float32 NCHW in [-1, 1] and int32 labels. */
export interface Batch {
  /** [B, C, H, W] row-major. */
  images: Float32Array;
  /** [B] class ids (0 when the data set has no labels). */
  labels: Int32Array;
  /** [B, C, H, W]. */
  shape: readonly [number, number, number, number];
}
