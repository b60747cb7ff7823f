import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { encodeZip, readZipDirectory, readZipEntry } from "../../src/io/zip.ts";

/**
 * A one-entry archive in full ZIP64 form (APPNOTE 4.3.14-4.3.16, 4.5.3): 32-bit sizes and
 * offset set to 0xFFFFFFFF with the real values in the extra field, entry counts 0xFFFF, a
 * ZIP64 end record and locator. Built by hand, independently of encodeZip().
 */
function zip64Archive(name: string, data: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const crc = crc32(data) >>> 0;
  const local = new Uint8Array(30 + nameBytes.length + 20);
  let v = new DataView(local.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint16(4, 45, true);
  v.setUint32(14, crc, true);
  v.setUint32(18, 0xffffffff, true);
  v.setUint32(22, 0xffffffff, true);
  v.setUint16(26, nameBytes.length, true);
  v.setUint16(28, 20, true);
  local.set(nameBytes, 30);
  let e = 30 + nameBytes.length;
  v.setUint16(e, 1, true);
  v.setUint16(e + 2, 16, true);
  v.setBigUint64(e + 4, BigInt(data.length), true);
  v.setBigUint64(e + 12, BigInt(data.length), true);
  const centralOffset = local.length + data.length;
  const central = new Uint8Array(46 + nameBytes.length + 28);
  v = new DataView(central.buffer);
  v.setUint32(0, 0x02014b50, true);
  v.setUint16(4, 45, true);
  v.setUint16(6, 45, true);
  v.setUint32(16, crc, true);
  v.setUint32(20, 0xffffffff, true);
  v.setUint32(24, 0xffffffff, true);
  v.setUint16(28, nameBytes.length, true);
  v.setUint16(30, 28, true);
  v.setUint32(42, 0xffffffff, true);
  central.set(nameBytes, 46);
  e = 46 + nameBytes.length;
  v.setUint16(e, 1, true);
  v.setUint16(e + 2, 24, true);
  v.setBigUint64(e + 4, BigInt(data.length), true); // uncompressed
  v.setBigUint64(e + 12, BigInt(data.length), true); // compressed
  v.setBigUint64(e + 20, 0n, true); // local header offset
  const zip64EndOffset = centralOffset + central.length;
  const tail = new Uint8Array(56 + 20 + 22);
  v = new DataView(tail.buffer);
  v.setUint32(0, 0x06064b50, true);
  v.setBigUint64(4, 44n, true);
  v.setBigUint64(24, 1n, true);
  v.setBigUint64(32, 1n, true);
  v.setBigUint64(40, BigInt(central.length), true);
  v.setBigUint64(48, BigInt(centralOffset), true);
  v.setUint32(56, 0x07064b50, true);
  v.setBigUint64(64, BigInt(zip64EndOffset), true);
  v.setUint32(72, 1, true);
  v.setUint32(76, 0x06054b50, true);
  v.setUint16(84, 0xffff, true);
  v.setUint16(86, 0xffff, true);
  v.setUint32(88, 0xffffffff, true);
  v.setUint32(92, 0xffffffff, true);
  const out = new Uint8Array(local.length + data.length + central.length + tail.length);
  out.set(local, 0);
  out.set(data, local.length);
  out.set(central, centralOffset);
  out.set(tail, zip64EndOffset);
  return out;
}

Deno.test("readZipDirectory() follows ZIP64 end records and extra fields", () => {
  const data = new TextEncoder().encode("zip64 payload");
  const bytes = zip64Archive("archive/data/0", data);
  const entries = readZipDirectory(bytes, "z.pth");
  assert.equal(entries.length, 1);
  assert.equal(entries[0].name, "archive/data/0");
  assert.equal(entries[0].uncompressedSize, data.length);
  assert.equal(entries[0].localHeaderOffset, 0);
  assert.deepEqual(readZipEntry(bytes, entries[0], "z.pth"), data);
});

Deno.test("encodeZip() output is listed and read back, and damage is reported", () => {
  const files = [
    { name: "a.npy", data: new Uint8Array([1, 2, 3]) },
    { name: "b/c.txt", data: new TextEncoder().encode("hello") },
  ];
  const bytes = encodeZip(files);
  const entries = readZipDirectory(bytes, "t.zip");
  assert.deepEqual(entries.map((e) => e.name), ["a.npy", "b/c.txt"]);
  entries.forEach((e, i) => assert.deepEqual(readZipEntry(bytes, e, "t.zip"), files[i].data));
  assert.throws(
    () => readZipDirectory(bytes.subarray(0, bytes.length - 5), "t.zip"),
    /t.zip: not a valid ZIP archive: no end-of-central-directory/,
  );
  const flipped = bytes.slice();
  flipped[30 + 5] ^= 0xff; // first data byte of a.npy (after the 30-byte header and name)
  assert.throws(() => readZipEntry(flipped, entries[0], "t.zip"), /a.npy: CRC-32 mismatch/);
});
