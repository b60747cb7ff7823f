import assert from "node:assert/strict";
import { datasetImages, generatedImages } from "../../src/app/evaluate.ts";
import { Dataset } from "../../src/data/dataset.ts";

Deno.test("datasetImages() transposes CHW to HWC and keeps only the wanted labels, up to limit", () => {
  // 3 images of [3, 1, 2]: pixel value = 10 * image + channel * 2 + x
  const images = new Uint8Array(3 * 6).map((_, i) => 10 * Math.floor(i / 6) + (i % 6));
  const data = new Dataset({
    images,
    labels: new Int32Array([0, 1, 1]),
    imageShape: [3, 1, 2],
    classNames: ["a", "b"],
  });
  const picked = datasetImages(data, 5, [1]);
  assert.equal(picked.length, 2);
  assert.deepEqual([...picked[0].data], [10, 12, 14, 11, 13, 15]); // [H, W, C]
  assert.equal(datasetImages(data, 1).length, 1);
});

Deno.test("generatedImages() quantises [-1, 1] floats to 8-bit HWC images", () => {
  const [img] = generatedImages(new Float32Array([-1, 1, 0]), [1, 3, 1, 1]);
  assert.deepEqual([img.width, img.height, img.channels], [1, 1, 3]);
  assert.equal(img.data[0], 0);
  assert.equal(img.data[1], 255);
});
