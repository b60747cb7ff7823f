/**
 * Colour quantization for GIF frames: a palette of at most 256 colours built from one image's
 * own pixels, and the index of the nearest palette colour for every pixel. No dithering: the
 * frames are compared with their PNGs pixel by pixel, and dithering trades a lower perceived
 * error for a higher per-pixel one.
 *
 * The palette comes from a variance-based median cut over the image's distinct colours
 * (weighted by how often each occurs), refined by a few rounds of weighted k-means (Lloyd), which
 * lowers the squared error the cut leaves by moving each colour to the mean of what maps to it.
 * An image with 256 or fewer distinct colours gets exactly those colours (lossless).
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

/** Distinct colours of RGB [N, 3] data: keys 0xRRGGBB and their counts, plus each pixel's key. */
function histogram(rgb: Uint8Array): { colors: Uint32Array; counts: Float64Array } {
  const keys = new Uint32Array(rgb.length / 3);
  for (let i = 0, p = 0; i < keys.length; i++, p += 3) {
    keys[i] = (rgb[p] << 16) | (rgb[p + 1] << 8) | rgb[p + 2];
  }
  const sorted = keys.slice().sort();
  const colors: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[i]) j++;
    colors.push(sorted[i]);
    counts.push(j - i);
    i = j;
  }
  return { colors: Uint32Array.from(colors), counts: Float64Array.from(counts) };
}

const channel = (key: number, c: number) => (key >> (16 - 8 * c)) & 255;

interface Box {
  start: number;
  end: number; // exclusive, into the order array
  sse: number;
}

/** Weighted sum of squared distances to the mean over order[start, end). */
function boxError(order: Uint32Array, colors: Uint32Array, counts: Float64Array, box: Box) {
  const sum = [0, 0, 0];
  const sq = [0, 0, 0];
  let weight = 0;
  for (let i = box.start; i < box.end; i++) {
    const k = order[i];
    const w = counts[k];
    weight += w;
    for (let c = 0; c < 3; c++) {
      const v = channel(colors[k], c);
      sum[c] += w * v;
      sq[c] += w * v * v;
    }
  }
  const variances = sum.map((s, c) => sq[c] - (s * s) / weight);
  return { weight, sum, variances };
}

function medianCut(colors: Uint32Array, counts: Float64Array, size: number): Float64Array {
  const order = new Uint32Array(colors.length).map((_, i) => i);
  const boxes: Box[] = [{ start: 0, end: colors.length, sse: Infinity }];
  while (boxes.length < size) {
    let pick = -1;
    for (let b = 0; b < boxes.length; b++) {
      if (boxes[b].end - boxes[b].start < 2) continue;
      if (pick < 0 || boxes[b].sse > boxes[pick].sse) pick = b;
    }
    if (pick < 0 || boxes[pick].sse === 0) break;
    const box = boxes[pick];
    const { weight, variances } = boxError(order, colors, counts, box);
    const axis = variances.indexOf(Math.max(...variances));
    // Sort the box by the axis: value * 2^24 + index sorts natively (no comparator) and
    // keeps the index (< 2^24 distinct colours) in the low bits.
    const part = order.subarray(box.start, box.end);
    const keyed = Float64Array.from(part, (k) => channel(colors[k], axis) * 2 ** 24 + k).sort();
    for (let i = 0; i < part.length; i++) part[i] = keyed[i] % 2 ** 24;
    // Split where the running weight passes half: both halves keep pixels, the larger box
    // is cut near its weighted median along its widest axis.
    let acc = 0;
    let cut = box.start + 1;
    for (let i = box.start; i < box.end - 1; i++) {
      acc += counts[order[i]];
      cut = i + 1;
      if (acc >= weight / 2) break;
    }
    const left: Box = { start: box.start, end: cut, sse: 0 };
    const right: Box = { start: cut, end: box.end, sse: 0 };
    for (const half of [left, right]) {
      half.sse = boxError(order, colors, counts, half).variances.reduce((a, b) => a + b, 0);
    }
    boxes.splice(pick, 1, left, right);
  }
  const palette = new Float64Array(boxes.length * 3);
  boxes.forEach((box, b) => {
    const { weight, sum } = boxError(order, colors, counts, box);
    for (let c = 0; c < 3; c++) palette[b * 3 + c] = sum[c] / weight;
  });
  return palette;
}

/**
 * Index of the nearest palette entry (squared RGB distance) for each colour key. The palette is
 * sorted by green so the search can stop once green alone is farther than the best match.
 */
function nearest(colors: Uint32Array, palette: Float64Array): Uint16Array {
  const k = palette.length / 3;
  const byGreen = new Uint16Array(k).map((_, i) => i).sort((a, b) =>
    palette[a * 3 + 1] - palette[b * 3 + 1]
  );
  const greens = Float64Array.from(byGreen, (i) => palette[i * 3 + 1]);
  const out = new Uint16Array(colors.length);
  for (let n = 0; n < colors.length; n++) {
    const r = channel(colors[n], 0);
    const g = channel(colors[n], 1);
    const b = channel(colors[n], 2);
    let lo = 0;
    let hi = k;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (greens[mid] < g) lo = mid + 1;
      else hi = mid;
    }
    let best = Infinity;
    let bestIndex = 0;
    const visit = (j: number) => {
      const i = byGreen[j];
      const dr = palette[i * 3] - r;
      const dg = palette[i * 3 + 1] - g;
      const db = palette[i * 3 + 2] - b;
      const d = dr * dr + dg * dg + db * db;
      if (d < best) {
        best = d;
        bestIndex = i;
      }
    };
    for (let up = lo, down = lo - 1; up < k || down >= 0;) {
      const du = up < k ? greens[up] - g : Infinity;
      const dd = down >= 0 ? g - greens[down] : Infinity;
      if (Math.min(du, dd) ** 2 >= best) break;
      if (du <= dd) visit(up++);
      else visit(down--);
    }
    out[n] = bestIndex;
  }
  return out;
}

/**
 * Builds a palette of at most `size` colours (default 256) for RGB [H, W, 3] data and maps
 * every pixel to its nearest entry.
 *
 * @example
 * ```ts
 * import { quantize } from "./quantize.ts";
 * const rgb = new Uint8Array([255, 0, 0, 0, 0, 255, 255, 0, 0]);
 * const { palette, indices } = quantize(rgb); // 2 colours: lossless
 * console.log(palette.length / 3, [...indices]); // 2 [1, 0, 1]
 * ```
 */
export function quantize(rgb: Uint8Array, size = 256, rounds = 6): Quantized {
  if (rgb.length % 3 !== 0) throw new TypeError(`quantize: ${rgb.length} bytes is not RGB data`);
  if (!(Number.isInteger(size) && size >= 1 && size <= 256)) {
    throw new RangeError(`quantize: palette size must be 1..256, got ${size}`);
  }
  const { colors, counts } = histogram(rgb);
  let palette: Float64Array;
  let assignment: Uint16Array;
  if (colors.length <= size) {
    palette = new Float64Array(colors.length * 3);
    colors.forEach((key, i) => {
      for (let c = 0; c < 3; c++) palette[i * 3 + c] = channel(key, c);
    });
    assignment = new Uint16Array(colors.length).map((_, i) => i);
  } else {
    palette = medianCut(colors, counts, size);
    assignment = nearest(colors, palette);
    for (let round = 0; round < rounds; round++) {
      const sums = new Float64Array(palette.length);
      const weights = new Float64Array(palette.length / 3);
      for (let n = 0; n < colors.length; n++) {
        const i = assignment[n];
        weights[i] += counts[n];
        for (let c = 0; c < 3; c++) sums[i * 3 + c] += counts[n] * channel(colors[n], c);
      }
      for (let i = 0; i < weights.length; i++) {
        if (weights[i] === 0) continue; // an unused entry keeps its place
        for (let c = 0; c < 3; c++) palette[i * 3 + c] = sums[i * 3 + c] / weights[i];
      }
      // Round before the last assignment, so pixels map to the colours actually stored.
      if (round === rounds - 1) palette = palette.map(Math.round);
      assignment = nearest(colors, palette);
    }
    if (rounds === 0) {
      palette = palette.map(Math.round);
      assignment = nearest(colors, palette);
    }
  }
  const indices = new Uint8Array(rgb.length / 3);
  for (let i = 0, p = 0; i < indices.length; i++, p += 3) {
    const key = (rgb[p] << 16) | (rgb[p + 1] << 8) | rgb[p + 2];
    // Binary search of the sorted distinct colours.
    let lo = 0;
    let hi = colors.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (colors[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    indices[i] = assignment[lo];
  }
  return { palette: Uint8Array.from(palette), indices };
}
