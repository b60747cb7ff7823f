/**
 * MD5 (RFC 1321), incremental, for verifying downloads against published checksums. WebCrypto
 * has no MD5, and the CIFAR-10 release publishes only an MD5 sum.
 *
 * @module
 */

// Per-round left-rotation amounts and sine-derived constants, RFC 1321 section 3.4.
const ROUND_SHIFTS = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];
const SHIFTS = Array.from({ length: 64 }, (_, i) => ROUND_SHIFTS[i >> 4][i & 3]);
const K = Int32Array.from(
  { length: 64 },
  (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0,
);

/**
 * Incremental MD5 digest.
 *
 * @example
 * ```ts
 * import { Md5 } from "./md5.ts";
 * const hash = new Md5();
 * hash.update(new TextEncoder().encode("abc"));
 * console.log(hash.hex()); // "900150983cd24fb0d6963f7d28e17f72"
 * ```
 */
export class Md5 {
  #state = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476]);
  #block = new Uint8Array(64);
  #blockWords = new DataView(this.#block.buffer);
  #blockLength = 0;
  #totalBytes = 0;
  #words = new Int32Array(16);

  /** Feeds more bytes. */
  update(bytes: Uint8Array): this {
    let p = 0;
    this.#totalBytes += bytes.length;
    if (this.#blockLength > 0) {
      const take = Math.min(64 - this.#blockLength, bytes.length);
      this.#block.set(bytes.subarray(0, take), this.#blockLength);
      this.#blockLength += take;
      p = take;
      if (this.#blockLength < 64) return this;
      this.#compress(this.#blockWords, 0);
      this.#blockLength = 0;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (; p + 64 <= bytes.length; p += 64) this.#compress(view, p);
    this.#block.set(bytes.subarray(p));
    this.#blockLength = bytes.length - p;
    return this;
  }

  /** Finishes and returns the digest as 32 lowercase hex digits. */
  hex(): string {
    const bitLength = this.#totalBytes * 8;
    const padding = new Uint8Array(((55 - this.#totalBytes) & 63) + 9);
    padding[0] = 0x80;
    const tail = new DataView(padding.buffer, padding.length - 8);
    tail.setUint32(0, bitLength >>> 0, true);
    tail.setUint32(4, Math.floor(bitLength / 2 ** 32), true);
    this.update(padding);
    const out = new DataView(new ArrayBuffer(16));
    for (let i = 0; i < 4; i++) out.setInt32(i * 4, this.#state[i], true);
    return [...new Uint8Array(out.buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  #compress(view: DataView, offset: number): void {
    const m = this.#words;
    for (let i = 0; i < 16; i++) m[i] = view.getInt32(offset + i * 4, true);
    let [a, b, c, d] = this.#state;
    for (let i = 0; i < 64; i++) {
      let f: number;
      let g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const sum = (a + f + K[i] + m[g]) | 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << SHIFTS[i]) | (sum >>> (32 - SHIFTS[i])))) | 0;
    }
    this.#state[0] += a;
    this.#state[1] += b;
    this.#state[2] += c;
    this.#state[3] += d;
  }
}

/**
 * MD5 of a byte array as 32 lowercase hex digits.
 *
 * @example
 * ```ts
 * import { md5Hex } from "./md5.ts";
 * md5Hex(new Uint8Array(0)); // "d41d8cd98f00b204e9800998ecf8427e"
 * ```
 */
export function md5Hex(bytes: Uint8Array): string {
  return new Md5().update(bytes).hex();
}
