/**
 * Reading .tar and .tar.gz archives: just what extracting a data set release needs (regular
 * files of ustar, GNU long-name and pax archives, checksums verified), no dependencies.
 *
 * @module
 */

/**
 * Lists the regular files of an (uncompressed) tar archive: ustar, GNU long names and pax
 * `path` records. Header checksums are verified.
 *
 * @example
 * ```ts
 * import { parseTar } from "./tar.ts";
 * // A one-file archive: a 512-byte header, the data padded to 512, two zero end blocks.
 * const enc = new TextEncoder();
 * const tar = new Uint8Array(4 * 512);
 * tar.set(enc.encode("a.txt"), 0); // name
 * tar.set(enc.encode("00000000002"), 124); // size in octal
 * tar[156] = 0x30; // type '0': a regular file
 * let sum = 8 * 0x20; // the checksum counts its own 8 bytes as spaces
 * for (const byte of tar.subarray(0, 512)) sum += byte;
 * tar.set(enc.encode(sum.toString(8).padStart(6, "0")), 148);
 * tar.set(enc.encode("hi"), 512);
 * for (const { name, data } of parseTar(tar, "a.tar")) console.log(name, data.length); // a.txt 2
 * ```
 */
export function parseTar(bytes: Uint8Array, source: string): { name: string; data: Uint8Array }[] {
  const files: { name: string; data: Uint8Array }[] = [];
  let p = 0;
  let longName: string | null = null;
  while (p + 512 <= bytes.length) {
    const header = bytes.subarray(p, p + 512);
    if (header.every((b) => b === 0)) return files; // end-of-archive blocks
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
    if (sum !== tarOctal(header, 148, 8, source)) {
      throw new Error(`${source}: corrupt tar header at byte ${p} (checksum mismatch)`);
    }
    const size = tarOctal(header, 124, 12, source);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = p + 512;
    if (dataStart + size > bytes.length) {
      throw new Error(`${source}: tar entry at byte ${p} runs past the end (truncated archive?)`);
    }
    const data = bytes.subarray(dataStart, dataStart + size);
    const prefix = tarString(header, 257, 6) === "ustar" ? tarString(header, 345, 155) : "";
    let name = longName ?? (prefix ? `${prefix}/` : "") + tarString(header, 0, 100);
    if (type === "L") {
      longName = tarString(data, 0, data.length);
    } else if (type === "x") {
      const path = /\d+ path=([^\n]*)\n/.exec(new TextDecoder().decode(data))?.[1];
      if (path) longName = path;
    } else {
      longName = null;
      if (type === "0" || type === "7") {
        name = name.replace(/^\.\//, "");
        files.push({ name, data });
      }
    }
    p = dataStart + Math.ceil(size / 512) * 512;
  }
  if (p < bytes.length || files.length === 0) {
    throw new Error(`${source}: truncated tar archive`);
  }
  return files;
}

function tarString(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

function tarOctal(block: Uint8Array, start: number, length: number, source: string): number {
  if (block[start] & 0x80) {
    // GNU base-256 for large values.
    let value = 0;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + block[i];
    return value;
  }
  const text = tarString(block, start, length).trim();
  if (!/^[0-7]*$/.test(text)) {
    throw new Error(`${source}: corrupt tar header (bad number "${text}")`);
  }
  return text ? parseInt(text, 8) : 0;
}

/**
 * The decompressed bytes of a gzip file.
 *
 * @example
 * ```ts
 * import { gunzipFile } from "./tar.ts";
 * const gzip = new Blob(["hello"]).stream().pipeThrough(new CompressionStream("gzip"));
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/a.gz`, new Uint8Array(await new Response(gzip).arrayBuffer()));
 * console.log(new TextDecoder().decode(await gunzipFile(`${dir}/a.gz`))); // hello
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function gunzipFile(path: string): Promise<Uint8Array> {
  const file = await Deno.open(path);
  try {
    const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (error) {
    throw new Error(`${path}: corrupt gzip data (${(error as Error).message})`, { cause: error });
  }
}
