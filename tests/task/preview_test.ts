import { deepEqual } from "node:assert/strict";
import { previewLabels } from "../../src/task/preview.ts";

Deno.test("previewLabels() gives zeros for unconditional models", () => {
  deepEqual([...previewLabels(16, 0, 8)], new Array(16).fill(0));
  deepEqual([...previewLabels(4, 0)], [0, 0, 0, 0]);
});

Deno.test("previewLabels() gives each class one contiguous block of whole rows, in class order", () => {
  deepEqual([...previewLabels(8, 2, 2)], [0, 0, 0, 0, 1, 1, 1, 1]);
  deepEqual([...previewLabels(24, 3, 8)], [0, 1, 2].flatMap((c) => new Array(8).fill(c)));
  const two = previewLabels(64, 2, 8); // 8 rows: 4 per class
  deepEqual([...two], [...new Array(32).fill(0), ...new Array(32).fill(1)]);
  const ten = previewLabels(80, 10, 8); // one row per class
  for (let i = 0; i < 80; i++) deepEqual(ten[i], Math.floor(i / 8));
  const three = previewLabels(48, 3, 8); // 6 rows: 2 per class
  deepEqual([...three].filter((l) => l === 1).length, 16);
});

Deno.test("previewLabels() never splits a row between classes when classes do not divide rows", () => {
  const labels = previewLabels(64, 10, 8); // 8 rows, 10 classes: some classes get no row
  for (let row = 0; row < 8; row++) {
    const first = labels[row * 8];
    for (let c = 1; c < 8; c++) deepEqual(labels[row * 8 + c], first);
  }
});
