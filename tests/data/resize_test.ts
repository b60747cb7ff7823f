import assert from "node:assert/strict";
import { resizeCenterCrop, resizedShape, resizePlane } from "../../src/data/resize.ts";

interface Case {
  height: number;
  width: number;
  size: number;
  input: string;
  output: string;
}
const fixture: { pillow: string; cases: Case[] } = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/resize/cases.json", import.meta.url)),
);

function decodeBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
}

function hwcToChw(hwc: Uint8Array, h: number, w: number): Uint8Array {
  const out = new Uint8Array(hwc.length);
  for (let i = 0; i < h * w; i++) {
    for (let c = 0; c < 3; c++) out[c * h * w + i] = hwc[3 * i + c];
  }
  return out;
}

Deno.test("Resize + CenterCrop equals torchvision on PIL (Pillow BILINEAR) pixel for pixel", () => {
  assert.ok(fixture.cases.length >= 10);
  for (const c of fixture.cases) {
    const input = hwcToChw(decodeBase64(c.input), c.height, c.width);
    const want = hwcToChw(decodeBase64(c.output), c.size, c.size);
    const got = resizeCenterCrop(input, 3, c.height, c.width, c.size);
    let differing = 0;
    for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differing++;
    assert.equal(differing, 0, `${c.height}x${c.width} -> ${c.size}: ${differing} values differ`);
  }
});

Deno.test("the shorter side becomes the size and the longer is floored, as torchvision does", () => {
  assert.deepEqual(resizedShape(48, 64, 32), [32, 42]);
  assert.deepEqual(resizedShape(100, 37, 32), [86, 32]);
  assert.deepEqual(resizedShape(32, 32, 32), [32, 32]);
});

Deno.test("a constant plane stays constant at any scale", () => {
  for (const [h, w, oh, ow] of [[7, 9, 3, 4], [5, 5, 11, 13], [64, 64, 32, 32]]) {
    const out = resizePlane(new Uint8Array(h * w).fill(173), h, w, oh, ow);
    assert.equal(out.length, oh * ow);
    assert.ok(out.every((v) => v === 173));
  }
  assert.throws(() => resizeCenterCrop(new Uint8Array(12), 3, 2, 2, 0), /positive integer/);
});
