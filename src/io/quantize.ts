/**
 * Colour quantization for GIF frames: a palette of at most 256 colours built from one image's
 * own pixels, and the index of the nearest palette colour for every pixel. No dithering: the
 * frames are compared with their PNGs pixel by pixel, and dithering trades a lower perceived
 * error for a higher per-pixel one.
 *
 * What is minimised is what the GIF is judged by: the mean absolute error (L1) between a pixel
 * and its palette colour. So the palette is refined by weighted k-medians under the L1 distance
 * (Lloyd's alternation: map each colour to its L1-nearest entry, move each entry to the
 * per-channel weighted median of what maps to it; both steps never raise the error), not by
 * k-means, which minimises squared error. A median is always a value that occurs, so a colour
 * that dominates its cluster (the black padding of a grid, a flat border) is kept exactly.
 *
 * The refinement starts from a greedy variance cut: the box of colours whose best split lowers
 * the squared error most is split where that error is lowest (any axis, any position: a 1-D
 * search over per-value sums, as in Wu's quantizer), rather than at the median of the widest
 * axis. An image with 256 or fewer distinct colours gets exactly those colours (lossless).
 *
 * @module
 */

/** A palette (`[r, g, b]` per entry) and one palette index per pixel. */
export interface Quantized {
  /** [K, 3], K <= 256 */
  palette: Uint8Array;
  /** [H * W] */
  indices: Uint8Array;
}

/** Distinct colours of RGB [N, 3] data, sorted by 0xRRGGBB key, and how often each occurs. */
interface Histogram {
  /** [M] sorted 0xRRGGBB keys */
  keys: Uint32Array;
  /** [M] per channel */
  r: Uint8Array;
  g: Uint8Array;
  b: Uint8Array;
  /** [M] */
  counts: Float64Array;
}

function histogram(rgb: Uint8Array): Histogram {
  const all = new Uint32Array(rgb.length / 3);
  for (let i = 0, p = 0; i < all.length; i++, p += 3) {
    all[i] = (rgb[p] << 16) | (rgb[p + 1] << 8) | rgb[p + 2];
  }
  all.sort();
  let m = 0;
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) m++;
  const keys = new Uint32Array(m);
  const counts = new Float64Array(m);
  for (let i = 0, j = -1; i < all.length; i++) {
    if (i === 0 || all[i] !== all[i - 1]) keys[++j] = all[i];
    counts[j]++;
  }
  const r = Uint8Array.from(keys, (k) => k >> 16);
  const g = Uint8Array.from(keys, (k) => (k >> 8) & 255);
  const b = Uint8Array.from(keys, (k) => k & 255);
  return { keys, r, g, b, counts };
}

/** A box of the variance cut: order[start, end) and its best split, found when it was made. */
interface Box {
  start: number;
  end: number;
  /** drop in squared error if split (0: cannot split) */
  gain: number;
  axis: number;
  /** members with value <= threshold on `axis` go left */
  threshold: number;
}

/** Per-value sums of a box along one axis: weight, the three channel sums, sum of squares. */
const BINS = 256 * 5;

/**
 * The box over order[start, end) with its best split: of every axis and every threshold, the
 * one whose two halves leave the least squared error about their means (from prefix sums of
 * the per-value bins, so each axis costs one pass over the box).
 */
function makeBox(h: Histogram, order: Uint32Array, start: number, end: number, bins: Float64Array) {
  const box: Box = { start, end, gain: 0, axis: 0, threshold: 0 };
  const channels = [h.r, h.g, h.b];
  for (let axis = 0; axis < 3; axis++) {
    bins.fill(0);
    const along = channels[axis];
    for (let i = start; i < end; i++) {
      const k = order[i];
      const w = h.counts[k];
      const r = h.r[k];
      const g = h.g[k];
      const b = h.b[k];
      const o = along[k] * 5;
      bins[o] += w;
      bins[o + 1] += w * r;
      bins[o + 2] += w * g;
      bins[o + 3] += w * b;
      bins[o + 4] += w * (r * r + g * g + b * b);
    }
    const total = [0, 0, 0, 0, 0];
    for (let v = 0; v < 256; v++) for (let s = 0; s < 5; s++) total[s] += bins[v * 5 + s];
    const sse = (w: number, r: number, g: number, b: number, q: number) =>
      q - (r * r + g * g + b * b) / w;
    const whole = sse(total[0], total[1], total[2], total[3], total[4]);
    const left = [0, 0, 0, 0, 0];
    for (let v = 0; v < 255; v++) {
      if (bins[v * 5] === 0) continue;
      for (let s = 0; s < 5; s++) left[s] += bins[v * 5 + s];
      const rightWeight = total[0] - left[0];
      if (rightWeight <= 0) break;
      const split = sse(left[0], left[1], left[2], left[3], left[4]) +
        sse(
          rightWeight,
          total[1] - left[1],
          total[2] - left[2],
          total[3] - left[3],
          total[4] - left[4],
        );
      const gain = whole - split;
      if (gain > box.gain) Object.assign(box, { gain, axis, threshold: v });
    }
  }
  return box;
}

/** Greedy variance cut into at most `size` boxes; returns each colour's box index. */
function varianceCut(h: Histogram, size: number): { assign: Uint16Array; boxes: number } {
  const m = h.keys.length;
  const order = new Uint32Array(m).map((_, i) => i);
  const bins = new Float64Array(BINS);
  const boxes = [makeBox(h, order, 0, m, bins)];
  const channels = [h.r, h.g, h.b];
  while (boxes.length < size) {
    let pick = 0;
    for (let i = 1; i < boxes.length; i++) if (boxes[i].gain > boxes[pick].gain) pick = i;
    const box = boxes[pick];
    if (!(box.gain > 0)) break;
    // Partition order[start, end) in place: values <= threshold first.
    const along = channels[box.axis];
    let lo = box.start;
    let hi = box.end - 1;
    while (lo <= hi) {
      if (along[order[lo]] <= box.threshold) {
        lo++;
      } else {
        const t = order[lo];
        order[lo] = order[hi];
        order[hi--] = t;
      }
    }
    boxes.splice(
      pick,
      1,
      makeBox(h, order, box.start, lo, bins),
      makeBox(h, order, lo, box.end, bins),
    );
  }
  const assign = new Uint16Array(m);
  boxes.forEach((box, i) => {
    for (let j = box.start; j < box.end; j++) assign[order[j]] = i;
  });
  return { assign, boxes: boxes.length };
}

/**
 * Moves every used entry to the per-channel weighted median of the colours assigned to it (the
 * L1-optimal centre; the lower median, so always a value that occurs). Unused entries keep
 * their place. palette: [K, 3] integers.
 */
function medians(h: Histogram, assign: Uint16Array, palette: Int32Array): void {
  const k = palette.length / 3;
  const counts = new Float64Array(k * 3 * 256); // [K, 3, 256]
  const weights = new Float64Array(k);
  for (let n = 0; n < assign.length; n++) {
    const i = assign[n];
    const w = h.counts[n];
    weights[i] += w;
    counts[(i * 3) * 256 + h.r[n]] += w;
    counts[(i * 3 + 1) * 256 + h.g[n]] += w;
    counts[(i * 3 + 2) * 256 + h.b[n]] += w;
  }
  for (let i = 0; i < k; i++) {
    if (weights[i] === 0) continue;
    for (let c = 0; c < 3; c++) {
      const base = (i * 3 + c) * 256;
      let acc = 0;
      let v = 0;
      while ((acc += counts[base + v]) * 2 < weights[i]) v++;
      palette[i * 3 + c] = v;
    }
  }
}

/** Palette entries sorted by r + g + b, for the pruned nearest-entry search. */
interface SortedPalette {
  /** [K] entry index in sum order */
  bySum: Uint16Array;
  /** [K] r + g + b, ascending, and each channel in the same order */
  sums: Int32Array;
  r: Int32Array;
  g: Int32Array;
  b: Int32Array;
}

function sortPalette(palette: Int32Array): SortedPalette {
  const k = palette.length / 3;
  const sum = (i: number) => palette[i * 3] + palette[i * 3 + 1] + palette[i * 3 + 2];
  const bySum = new Uint16Array(k).map((_, i) => i).sort((a, b) => sum(a) - sum(b));
  return {
    bySum,
    sums: Int32Array.from(bySum, sum),
    r: Int32Array.from(bySum, (i) => palette[i * 3]),
    g: Int32Array.from(bySum, (i) => palette[i * 3 + 1]),
    b: Int32Array.from(bySum, (i) => palette[i * 3 + 2]),
  };
}

/**
 * Lloyd's state per distinct colour: its entry, its exact L1 distance to that entry (`upper`),
 * and a lower bound on its distance to every other entry (`lower`). After the entries move,
 * the bounds are loosened by the moves (the triangle inequality holds for L1), and only colours
 * whose bounds cross are searched again (Hamerly's k-means acceleration): late rounds touch few.
 */
interface Assignment {
  /** [M] */
  index: Uint16Array;
  upper: Float64Array;
  lower: Float64Array;
}

/**
 * Exact search for colour n's L1-nearest entry and the distance to the second nearest. Entries
 * are visited in order of their distance in r + g + b from the colour, which bounds the L1
 * distance from below, so the search stops once that alone reaches the second-best distance.
 * On a tie the current entry is kept, so a colour moves only to a strictly nearer entry.
 */
function search(h: Histogram, sorted: SortedPalette, n: number, a: Assignment): void {
  const { bySum, sums } = sorted;
  const k = sums.length;
  const r = h.r[n];
  const g = h.g[n];
  const b = h.b[n];
  const s = r + g + b;
  const current = a.index[n];
  let best = Infinity;
  let second = Infinity;
  let bestIndex = current;
  let lo = 0;
  let hi = k;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sums[mid] < s) lo = mid + 1;
    else hi = mid;
  }
  for (let up = lo, down = lo - 1; up < k || down >= 0;) {
    const du = up < k ? sums[up] - s : Infinity;
    const dd = down >= 0 ? s - sums[down] : Infinity;
    if (du >= second && dd >= second) break;
    const j = du <= dd ? up++ : down--;
    const d = Math.abs(sorted.r[j] - r) + Math.abs(sorted.g[j] - g) + Math.abs(sorted.b[j] - b);
    if (d < best || (d === best && bySum[j] === current)) {
      second = best;
      best = d;
      bestIndex = bySum[j];
    } else if (d < second) {
      second = d;
    }
  }
  a.index[n] = bestIndex;
  a.upper[n] = best;
  a.lower[n] = second;
}

/** Maps every distinct colour to its L1-nearest entry from scratch. */
function assignAll(h: Histogram, palette: Int32Array, index: Uint16Array): Assignment {
  const m = index.length;
  const a = { index, upper: new Float64Array(m), lower: new Float64Array(m) };
  const sorted = sortPalette(palette);
  for (let n = 0; n < m; n++) search(h, sorted, n, a);
  return a;
}

/** Re-maps after the entries moved from `before` to `palette`, searching only where needed. */
function reassign(h: Histogram, before: Int32Array, palette: Int32Array, a: Assignment): void {
  const k = palette.length / 3;
  const moved = new Float64Array(k);
  let top = 0; // the entry that moved most, and the most any other moved
  let topMove = 0;
  let nextMove = 0;
  for (let i = 0; i < k; i++) {
    moved[i] = Math.abs(palette[i * 3] - before[i * 3]) +
      Math.abs(palette[i * 3 + 1] - before[i * 3 + 1]) +
      Math.abs(palette[i * 3 + 2] - before[i * 3 + 2]);
    if (moved[i] > topMove) {
      [nextMove, topMove, top] = [topMove, moved[i], i];
    } else if (moved[i] > nextMove) {
      nextMove = moved[i];
    }
  }
  if (topMove === 0) return;
  let sorted: SortedPalette | undefined;
  for (let n = 0; n < a.index.length; n++) {
    const i = a.index[n];
    a.upper[n] += moved[i];
    a.lower[n] -= i === top ? nextMove : topMove;
    if (a.upper[n] <= a.lower[n]) continue;
    a.upper[n] = Math.abs(palette[i * 3] - h.r[n]) + Math.abs(palette[i * 3 + 1] - h.g[n]) +
      Math.abs(palette[i * 3 + 2] - h.b[n]);
    if (a.upper[n] <= a.lower[n]) continue;
    search(h, sorted ??= sortPalette(palette), n, a);
  }
}

/** Total weighted L1 error of an assignment (exact: the bounds may be loose). */
function totalError(h: Histogram, palette: Int32Array, index: Uint16Array): number {
  let total = 0;
  for (let n = 0; n < index.length; n++) {
    const i = index[n];
    total += h.counts[n] * (Math.abs(palette[i * 3] - h.r[n]) +
      Math.abs(palette[i * 3 + 1] - h.g[n]) + Math.abs(palette[i * 3 + 2] - h.b[n]));
  }
  return total;
}

/**
 * Builds a palette of at most `size` colours (default 256) for RGB [H, W, 3] data and maps
 * every pixel to its L1-nearest entry. `rounds` caps the k-medians rounds (they stop earlier
 * once a round lowers the error by less than one part in 10^5).
 *
 * @example
 * ```ts
 * import { quantize } from "./quantize.ts";
 * const rgb = new Uint8Array([255, 0, 0, 0, 0, 255, 255, 0, 0]);
 * const { palette, indices } = quantize(rgb); // 2 colours: lossless
 * console.log(palette.length / 3, [...indices]); // 2 [1, 0, 1]
 * ```
 */
export function quantize(rgb: Uint8Array, size = 256, rounds = 40): Quantized {
  if (rgb.length % 3 !== 0) throw new TypeError(`quantize: ${rgb.length} bytes is not RGB data`);
  if (!(Number.isInteger(size) && size >= 1 && size <= 256)) {
    throw new RangeError(`quantize: palette size must be 1..256, got ${size}`);
  }
  const h = histogram(rgb);
  const m = h.keys.length;
  let palette: Int32Array;
  let assign: Uint16Array;
  if (m <= size) {
    palette = new Int32Array(m * 3);
    for (let i = 0; i < m; i++) palette.set([h.r[i], h.g[i], h.b[i]], i * 3);
    assign = new Uint16Array(m).map((_, i) => i);
  } else {
    const cut = varianceCut(h, size);
    palette = new Int32Array(cut.boxes * 3);
    medians(h, cut.assign, palette);
    const a = assignAll(h, palette, cut.assign);
    let error = totalError(h, palette, a.index);
    for (let round = 0; round < rounds; round++) {
      const before = palette.slice();
      medians(h, a.index, palette);
      reassign(h, before, palette, a);
      const next = totalError(h, palette, a.index);
      const done = error - next < error * 1e-5;
      error = next;
      if (done) break;
    }
    assign = a.index;
  }
  const indices = new Uint8Array(rgb.length / 3);
  for (let i = 0, p = 0; i < indices.length; i++, p += 3) {
    const key = (rgb[p] << 16) | (rgb[p + 1] << 8) | rgb[p + 2];
    let lo = 0; // binary search of the sorted distinct colours
    let hi = m - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (h.keys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    indices[i] = assign[lo];
  }
  return { palette: Uint8Array.from(palette), indices };
}
