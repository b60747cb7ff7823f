import assert from "node:assert/strict";
import { Md5, md5Hex } from "../../src/io/md5.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("md5Hex() matches the RFC 1321 test suite", () => {
  const suite: [string, string][] = [
    ["", "d41d8cd98f00b204e9800998ecf8427e"],
    ["a", "0cc175b9c0f1b6a831c399e269772661"],
    ["abc", "900150983cd24fb0d6963f7d28e17f72"],
    ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
    ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
    [
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
      "d174ab98d277d9f5a5611c2c9f419d9f",
    ],
    ["1234567890".repeat(8), "57edf4a22be3c955ac49da2e2107b67a"],
  ];
  for (const [input, digest] of suite) assert.equal(md5Hex(text(input)), digest, input);
});

Deno.test("Md5.update() in uneven chunks equals the one-shot digest", () => {
  const bytes = new Uint8Array(10_007).map((_, i) => (i * 131 + 7) & 255);
  for (const chunk of [1, 63, 64, 65, 1000]) {
    const hash = new Md5();
    for (let p = 0; p < bytes.length; p += chunk) hash.update(bytes.subarray(p, p + chunk));
    assert.equal(hash.hex(), md5Hex(bytes), `chunk ${chunk}`);
  }
});
