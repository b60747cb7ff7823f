import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backend/backend.ts";
import {
  computeActivations,
  type ImageLike,
  imagesToTensor,
  toInceptionInput,
} from "../../src/metrics/features.ts";
import type { InceptionNet } from "../../src/metrics/inception.ts";
import { testEachBackend } from "../_backends.ts";

// Reference: tests/fixtures/make_fid_fixtures.py resize — PyTorch 1.13
// F.interpolate(x, size, mode="bilinear", align_corners=False).
const { cases } = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/fid/resize.json", import.meta.url)),
);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

testEachBackend(
  "bilinear resize (align_corners=False) matches PyTorch F.interpolate",
  (backend) => {
    for (const c of cases) {
      const out = backend.scope(() =>
        backend.interpolateBilinear(
          backend.tensor(Float32Array.from(c.input), c.shape),
          c.size,
          false,
        )
      );
      const diff = maxAbsDiff(backend.read(out), c.output);
      assert.ok(diff < 1e-5, `${c.shape} -> ${c.size}: max |diff| ${diff}`);
    }
  },
);

testEachBackend("toInceptionInput() resizes to 299 and maps [0, 1] to [-1, 1]", (backend) => {
  const c = cases.find((k: { size: number[] }) => k.size[0] === 299);
  const x = backend.tensor(Float32Array.from(c.input), c.shape);
  const out = backend.read(backend.scope(() => toInceptionInput(backend, x)));
  const expected = c.output.map((v: number) => 2 * v - 1);
  assert.ok(maxAbsDiff(out, expected) < 2e-5);
});

testEachBackend("imagesToTensor() scales to [0, 1], replicates gray, drops alpha", (backend) => {
  const rgb: ImageLike = {
    width: 2,
    height: 1,
    channels: 3,
    data: new Uint8Array([0, 51, 255, 102, 153, 204]),
  };
  const gray: ImageLike = { width: 2, height: 1, channels: 1, data: new Uint8Array([51, 255]) };
  const rgba: ImageLike = {
    width: 2,
    height: 1,
    channels: 4,
    data: new Uint8Array([0, 51, 255, 7, 102, 153, 204, 9]),
  };
  const t = imagesToTensor(backend, [rgb, gray, rgba]); // [3, 3, 1, 2]
  assert.deepEqual([...t.shape], [3, 3, 1, 2]);
  const v = backend.read(t);
  const expectRgb = [0, 102, 51, 153, 255, 204].map((x) => x / 255); // planes R, G, B
  const expectGray = [51, 255, 51, 255, 51, 255].map((x) => x / 255);
  assert.ok(maxAbsDiff(v.slice(0, 6), expectRgb) < 1e-7);
  assert.ok(maxAbsDiff(v.slice(6, 12), expectGray) < 1e-7);
  assert.ok(maxAbsDiff(v.slice(12, 18), expectRgb) < 1e-7);
  t.dispose();
  const bad: ImageLike = { width: 2, height: 2, channels: 3, data: new Uint8Array(5) };
  assert.throws(() => imagesToTensor(backend, [bad]), /5 bytes do not make 2x2 with 3 channels/);
}, { only: ["torch-cpu", "tfjs-cpu"] });

/** A stand-in network whose "features" are its input's centre pixel: [N, 3]. */
function centrePixelNet(backend: Backend): InceptionNet {
  const centre = (x: Tensor) =>
    backend.reshape(backend.slice(x, [0, 0, 149, 149], [-1, -1, 1, 1]), [x.shape[0], 3]);
  return {
    backend,
    dims: 3 as unknown as 64,
    params: undefined as never,
    blocks: (x: Tensor) => [centre(x)],
    features: centre,
    dispose() {},
    [Symbol.dispose]() {},
  };
}

testEachBackend(
  "computeActivations() keeps order over batches and mixed image sizes",
  async (backend) => {
    const solid = (w: number, h: number, rgb: number[]): ImageLike => ({
      width: w,
      height: h,
      channels: 3,
      data: Uint8Array.from({ length: w * h * 3 }, (_, i) => rgb[i % 3]),
    });
    const images = [
      solid(8, 8, [0, 255, 51]),
      solid(5, 3, [255, 0, 102]),
      solid(5, 3, [51, 51, 51]),
      solid(8, 8, [204, 153, 0]),
      solid(2, 9, [255, 255, 255]),
    ];
    const live = backend.liveTensors();
    const { data, n, dims } = await computeActivations(backend, centrePixelNet(backend), images, {
      batchSize: 2,
      progress: false,
    });
    assert.equal(n, 5);
    assert.equal(dims, 3);
    // A solid colour stays solid through the resize: feature = 2 c / 255 - 1 exactly.
    const expected = images.flatMap((img) =>
      [...img.data.slice(0, 3)].map((c) => (2 * c) / 255 - 1)
    );
    const diff = maxAbsDiff(data, expected);
    assert.ok(diff < 1e-6, `max |diff| ${diff}`);
    assert.equal(backend.liveTensors(), live, "no tensors leak");
  },
  { only: ["torch-cpu", "tfjs-wasm"] },
);
