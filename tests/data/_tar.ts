/** Test helper: builds ustar archives and gzip bytes, independently of src/data/cifar10.ts. */

export function makeTar(files: { name: string; data: Uint8Array }[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  for (const { name, data } of files) {
    const header = new Uint8Array(512);
    header.set(encoder.encode(name), 0);
    header.set(encoder.encode("0000644\0"), 100);
    header.set(encoder.encode("0000000\0"), 108);
    header.set(encoder.encode("0000000\0"), 116);
    header.set(encoder.encode(data.length.toString(8).padStart(11, "0") + "\0"), 124);
    header.set(encoder.encode("00000000000\0"), 136);
    header[156] = 0x30;
    header.set(encoder.encode("ustar\x0000"), 257);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    header.set(encoder.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    blocks.push(header);
    const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
    body.set(data);
    blocks.push(body);
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((s, b) => s + b.length, 0));
  let p = 0;
  for (const b of blocks) (out.set(b, p), (p += b.length));
  return out;
}

export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes.slice()]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A CIFAR-10 record file: image i has label i % 10 and every pixel = (i * 7 + plane) % 256. */
export function makeCifarRecords(count: number, offset = 0): Uint8Array {
  const out = new Uint8Array(count * 3073);
  for (let i = 0; i < count; i++) {
    const n = i + offset;
    out[i * 3073] = n % 10;
    for (let c = 0; c < 3; c++) {
      out.fill((n * 7 + c) % 256, i * 3073 + 1 + c * 1024, i * 3073 + 1 + (c + 1) * 1024);
    }
  }
  return out;
}
