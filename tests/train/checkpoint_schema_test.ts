import assert from "node:assert/strict";
import {
  type CheckpointState,
  firstNonFinite,
  validateCheckpointState,
} from "../../src/train/checkpoint_schema.ts";
import type { HostTensor } from "../../src/nn/params.ts";

const PATH = "run/checkpoint.safetensors";

function validState(): CheckpointState {
  return {
    format: "deno-diffusion-checkpoint/1",
    kind: "gan",
    config: { preset: "dcgan", imageSize: 32, channels: 3, numClasses: 0 },
    step: 6,
    epoch: 1,
    rng: { s: [1, 2, 3, 4], spareNormal: null },
    optimizerSteps: { generator: 6 },
    train: {
      batchSize: 4,
      epochs: 3,
      maxSteps: null,
      seed: 7,
      flip: true,
      stepsPerEpoch: 4,
      totalSteps: 12,
      source: { data: null, classes: "cat" },
    },
    backend: "torch-cpu",
    savedAt: "2026-12-03T10:00:00.000Z",
  };
}

const tensor = (values: number[]): HostTensor => ({
  shape: [values.length],
  data: new Float32Array(values),
});
const TENSORS = new Map([
  ["generator/w", tensor([1, 2])],
  ["optim.generator/w.exp_avg", tensor([0, 0])],
]);

/** A copy of the valid state with `edit` applied to its JSON. */
// deno-lint-ignore no-explicit-any
type Loose = Record<string, any>;

function broken(edit: (s: Loose) => void): unknown {
  const s = structuredClone(validState()) as Loose;
  edit(s);
  return s;
}

Deno.test("a well-formed checkpoint state passes and comes back unchanged", () => {
  assert.deepEqual(validateCheckpointState(validState(), PATH, TENSORS), validState());
});

Deno.test("a data-parallel run's world size and global batch pass when they agree", () => {
  const state = validState();
  state.train.worldSize = 2;
  state.train.globalBatch = state.train.batchSize * 2;
  assert.deepEqual(validateCheckpointState(structuredClone(state), PATH, TENSORS), state);
});

// Each case: what is wrong, and the field the error must name.
const CASES: [string, (s: Loose) => void, RegExp][] = [
  ["an all-zero RNG state", (s) => (s.rng.s = [0, 0, 0, 0]), /'rng'.*all zero/],
  ["an RNG word past 32 bits", (s) => (s.rng.s[2] = 2 ** 32), /'rng'.*s\[2\]/],
  ["a NaN spare normal", (s) => (s.rng.spareNormal = "NaN"), /'rng'.*spareNormal/],
  ["no train record", (s) => delete s.train, /'train' must be a JSON object, got missing/],
  ["a negative image size", (s) => (s.config.imageSize = -32), /'config.imageSize'.*-32/],
  ["zero channels", (s) => (s.config.channels = 0), /'config.channels'/],
  ["a fractional class count", (s) => (s.config.numClasses = 1.5), /'config.numClasses'/],
  ["a config that is a string", (s) => (s.config = "dcgan"), /'config' must be a JSON object/],
  ["a negative step", (s) => (s.step = -1), /'step' must be an integer/],
  ["a step as a string", (s) => (s.step = "6"), /'step' must be an integer/],
  ["an epoch that contradicts the step", (s) => (s.epoch = 5), /'epoch' is 5, but step 6/],
  ["a step past the budget", (s) => (s.step = 13), /'step' is 13, past/],
  ["a zero batch size", (s) => (s.train.batchSize = 0), /'train.batchSize'/],
  ["a zero world size", (s) => (s.train.worldSize = 0), /'train.worldSize'/],
  [
    "a global batch that is not batch size x world size",
    (s) => {
      s.train.worldSize = 2;
      s.train.globalBatch = s.train.batchSize * 3;
    },
    /'train.globalBatch' is \d+, but train.batchSize \d+ x train.worldSize 2/,
  ],
  ["a seed past 32 bits", (s) => (s.train.seed = 2 ** 32), /'train.seed'/],
  ["flip as a string", (s) => (s.train.flip = "yes"), /'train.flip'/],
  ["zero steps per epoch", (s) => (s.train.stepsPerEpoch = 0), /'train.stepsPerEpoch'/],
  ["a negative max-steps", (s) => (s.train.maxSteps = -5), /'train.maxSteps'/],
  ["class names that are numbers", (s) => (s.train.source.classNames = [1]), /classNames/],
  ["source classes missing", (s) => delete s.train.source.classes, /'train.source.classes'/],
  ["an unknown format", (s) => (s.format = "other/2"), /'format' is "other\/2"/],
  ["a kind that is a number", (s) => (s.kind = 3), /'kind' must be a string/],
  ["no savedAt", (s) => delete s.savedAt, /'savedAt'/],
  ["a savedAt that is no date", (s) => (s.savedAt = "yesterday"), /'savedAt' must be an ISO/],
  ["no optimizer", (s) => (s.optimizerSteps = {}), /'optimizerSteps' is empty/],
  ["more optimizer steps than steps", (s) => (s.optimizerSteps.generator = 7), /generator/],
  [
    "an optimizer for a group without tensors",
    (s) => (s.optimizerSteps.discriminator = 1),
    /'optimizerSteps.discriminator' names group 'discriminator', which has no tensors/,
  ],
];

for (const [what, edit, message] of CASES) {
  Deno.test(`checkpoint metadata with ${what} is refused, naming the file and field`, () => {
    assert.throws(() => validateCheckpointState(broken(edit), PATH, TENSORS), (e: Error) => {
      assert.match(e.message, /^run\/checkpoint\.safetensors: checkpoint field /);
      assert.match(e.message, message);
      return true;
    });
  });
}

Deno.test("metadata that is not a JSON object is refused", () => {
  for (const raw of [[], null, "x", 3]) {
    assert.throws(
      () => validateCheckpointState(raw, PATH, TENSORS),
      /checkpoint field '\(metadata\)' must be a JSON object/,
    );
  }
});

Deno.test("optimizer moments missing from the tensors are refused", () => {
  const tensors = new Map([["generator/w", tensor([1, 2])]]);
  assert.throws(
    () => validateCheckpointState(validState(), PATH, tensors),
    /'optimizerSteps.generator'.*moments \(optim.generator\/...\) are missing/,
  );
});

Deno.test("firstNonFinite() names the tensor and index of the first NaN or infinity", () => {
  assert.equal(firstNonFinite(TENSORS), null);
  const bad = new Map([["a", tensor([1])], ["b/w", tensor([0, 1, -Infinity, NaN])]]);
  assert.equal(firstNonFinite(bad), "b/w[2] = -Infinity");
});
