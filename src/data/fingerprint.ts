/**
 * A content fingerprint of a data set: what a run trained on, independent of where the files
 * are. A resumed run compares it to tell a moved data set (same fingerprint) from a changed
 * one (different images, labels or classes), which would break exact resume silently.
 *
 * @module
 */
import type { Dataset } from "./dataset.ts";

/**
 * `"<count>x<C>x<H>x<W>:<16 hex digits>"`: two independent 32-bit FNV-1a-style lanes over the
 * images, labels and class names. Not cryptographic: it guards against mistakes, not attacks.
 *
 * @example
 * ```ts
 * import { Dataset } from "./dataset.ts";
 * import { datasetFingerprint } from "./fingerprint.ts";
 * const data = new Dataset({ images: new Uint8Array(48), labels: new Int32Array([0]), imageShape: [3, 4, 4], classNames: ["a"] });
 * console.log(datasetFingerprint(data).startsWith("1x3x4x4:")); // true
 * ```
 */
export function datasetFingerprint(data: Dataset): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  const mix = (value: number) => {
    a = Math.imul(a ^ value, 0x01000193);
    b = Math.imul(b ^ value, 0x5bd1e995) ^ (b >>> 15);
  };
  const images = data.images();
  // Four bytes per round (little-endian words, the same on any alignment), bytes for the tail.
  const whole = images.length - (images.length % 4);
  for (let i = 0; i < whole; i += 4) {
    mix(images[i] | (images[i + 1] << 8) | (images[i + 2] << 16) | (images[i + 3] << 24));
  }
  for (let i = whole; i < images.length; i++) mix(images[i]);
  const labels = data.labels();
  for (let i = 0; i < labels.length; i++) mix(labels[i] & 0xff);
  for (const byte of new TextEncoder().encode(JSON.stringify(data.classNames))) mix(byte);
  const hex = (x: number) => (x >>> 0).toString(16).padStart(8, "0");
  return `${data.size}x${data.imageShape.join("x")}:${hex(a)}${hex(b)}`;
}
