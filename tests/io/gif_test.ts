import assert from "node:assert/strict";
import { decodeGif, encodeGif, writeGif } from "../../src/io/gif.ts";
import { readNpy } from "../../src/io/npy.ts";

const fixture = (name: string) => new URL(`../fixtures/io/${name}`, import.meta.url).pathname;

function frame(width: number, height: number, fill: (i: number) => number) {
  return {
    width,
    height,
    channels: 3 as const,
    data: new Uint8Array(width * height * 3).map((_, i) => fill(i)),
  };
}

Deno.test("encodeGif() round-trips palette colours exactly and loops", () => {
  // Levels on the 6x7x6 cube: 0, 51, 102, ... for red/blue; 0, 42.5 -> 43, 85, ... for green.
  const a = frame(3, 2, (i) => [0, 85, 255][i % 3]);
  const b = frame(3, 2, (i) => [51, 128, 102][i % 3]);
  const bytes = encodeGif([a, b, a], { delayMs: 250 });
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 6)), "GIF89a");
  assert.ok(new TextDecoder().decode(bytes).includes("NETSCAPE2.0"), "looping extension");
  const back = decodeGif(bytes);
  assert.equal(back.length, 3);
  assert.deepEqual(back[0], a);
  assert.deepEqual(back[1], b);
  assert.deepEqual(back[2], a);
});

Deno.test("encodeGif() quantises any colour to within half a palette step", () => {
  const noise = frame(16, 16, (i) => (i * 7919) % 256);
  const [back] = decodeGif(encodeGif([noise], { delayMs: 100 }));
  for (let i = 0; i < noise.data.length; i++) {
    const step = i % 3 === 1 ? 255 / 6 : 255 / 5;
    assert.ok(Math.abs(back.data[i] - noise.data[i]) <= step / 2 + 0.5, `pixel ${i}`);
  }
});

Deno.test("decodeGif() reads an animated GIF written by PIL", async () => {
  const frames = decodeGif(await Deno.readFile(fixture("two_frames.gif")));
  const want = await readNpy(fixture("two_frames.npy")); // [2, 4, 6, 3]
  assert.equal(frames.length, 2);
  assert.deepEqual([...frames[0].data, ...frames[1].data], [...want.data]);
});

Deno.test("decodeGif() and encodeGif() reject bad input clearly", async () => {
  const good = encodeGif([frame(4, 4, () => 0)], { delayMs: 10 });
  assert.throws(() => decodeGif(new Uint8Array(10), "x.gif"), /x.gif: not a valid GIF/);
  assert.throws(() => decodeGif(good.subarray(0, 20), "cut.gif"), /cut.gif/);
  assert.throws(() => encodeGif([], { delayMs: 10 }), /no frames/);
  assert.throws(
    () => encodeGif([frame(2, 2, () => 0), frame(3, 2, () => 0)], { delayMs: 1 }),
    /frame 1 is 3x2/,
  );
  const dir = await Deno.makeTempDir();
  try {
    await writeGif(`${dir}/p.gif`, [frame(2, 2, () => 255)], { delayMs: 500 });
    assert.equal(decodeGif(await Deno.readFile(`${dir}/p.gif`)).length, 1);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["p.gif"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
