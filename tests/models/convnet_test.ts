import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { Rng } from "../../src/core/rng.ts";
import { countParams, createDenoiser } from "../../src/models/denoiser.ts";
import { testEachBackend } from "../_backends.ts";
import { formulaInput, loadFormulaWeights, loadUNetFixture } from "./_reference_weights.ts";

const fixture = loadUNetFixture();

testEachBackend(
  "convnet names its parameters as the PyTorch reference and counts them alike",
  (b) => {
    const model = createDenoiser(b, new Rng(0), {
      preset: "convnet",
      numClasses: 10,
      imageSize: 8,
      channels: 3,
    });
    deepEqual(
      model.store.names().map((n) => [n, [...model.store.get(n).shape]]),
      fixture.presets.convnet.names,
    );
    equal(model.paramCount(), fixture.presets.convnet.paramsWith10Classes);
    equal(countParams("convnet", 0), fixture.presets.convnet.params);
    assert(!model.store.names().some((n) => n.includes("mha")), "convnet has no attention");
    model.dispose();
  },
  { only: ["tfjs-cpu"] },
);

testEachBackend("convnet forward matches PyTorch with the same weights (8x8)", (b) => {
  const expected = fixture.forward.find((c) => c.preset === "convnet")!;
  const model = createDenoiser(b, new Rng(0), {
    preset: "convnet",
    numClasses: 0,
    imageSize: 8,
    channels: 3,
  });
  loadFormulaWeights(model.store);
  const out = b.noGrad(() =>
    b.read(
      model.forward(b.tensor(formulaInput(), [2, 3, 8, 8]), b.tensor(expected.t, [2], "int32")),
    )
  );
  let maxErr = 0;
  for (let i = 0; i < out.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(out[i] - expected.output[i]));
  }
  equal(out.length, expected.output.length);
  assert(maxErr < 2e-4, `max abs error ${maxErr}`);
  model.dispose();
});

testEachBackend(
  "convnet's output depends on the timestep (the embedding reaches the blocks)",
  (b) => {
    const model = createDenoiser(b, new Rng(4), {
      preset: "convnet",
      numClasses: 0,
      imageSize: 8,
      channels: 3,
      baseWidth: 8,
    });
    const x = b.tensor(formulaInput(), [2, 3, 8, 8]);
    const a = b.read(model.forward(x, b.tensor([0, 0], [2], "int32")));
    const c = b.read(model.forward(x, b.tensor([500, 500], [2], "int32")));
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - c[i]));
    assert(diff > 1e-3, `max difference ${diff}`);
    model.dispose();
  },
  { only: ["tfjs-cpu"] },
);
