/**
 * The write part of the trainer's per-step agreement (src/train/data_parallel.ts): rank 0's
 * failed write and last good checkpoint reach every rank through one sum, whatever the other
 * ranks pass, and the error each rank raises names rank 0, the write and the checkpoint kept.
 * The group is a stand-in that adds the other rank's contribution, as Gloo's sum would; the
 * real two-process run is in tests/cli/parallel_cli_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ProcessGroup } from "../../src/backend/distributed.ts";
import {
  agree,
  agreeWrites,
  NO_WRITES,
  RankWriteError,
  type WriteState,
} from "../../src/train/data_parallel.ts";

/** Rank `rank` of 2; the other rank's values are what `other` held before the sum. */
function pair(rank: number, other: () => Float64Array) {
  return {
    rank,
    worldSize: 2,
    allReduceSum: (values: Float64Array) => {
      const theirs = other();
      values.forEach((v, i) => values[i] = v + theirs[i]);
    },
  } as unknown as ProcessGroup;
}

Deno.test("rank 0's failed write and checkpoint step reach both ranks; the others' values do not count", () => {
  const failed: WriteState = { failed: "the checkpoint", checkpointStep: 40 };
  // What rank 0 contributes: [failed + 1, step + 1]; a non-zero rank contributes zeros.
  const rank0Side = Float64Array.of(3, 41);
  const onRank1 = agreeWrites(pair(1, () => rank0Side), failed); // rank 1's own claim is ignored
  assert.deepEqual(onRank1, failed);
  const onRank0 = agreeWrites(pair(0, () => new Float64Array(2)), failed);
  assert.deepEqual(onRank0, failed);
  const none = agreeWrites(pair(0, () => new Float64Array(2)), NO_WRITES);
  assert.deepEqual(none, NO_WRITES);
  const step0 = agreeWrites(pair(0, () => new Float64Array(2)), {
    failed: null,
    checkpointStep: 0,
  });
  assert.equal(step0.checkpointStep, 0, "a checkpoint at step 0 is not 'none'");
});

Deno.test("agree carries the writes beside the metrics' mean and the stop flags", () => {
  // Rank 1's side: loss 3, no stop, time up, and zeros for the writes.
  const group = pair(0, () => Float64Array.of(3, 0, 1, 0, 0));
  const out = agree(group, { loss: 1 }, false, false, {
    failed: "log.jsonl",
    checkpointStep: null,
  });
  assert.deepEqual(out, {
    metrics: { loss: 2 },
    stop: false,
    timeUp: true,
    writes: { failed: "log.jsonl", checkpointStep: null },
  });
});

Deno.test("RankWriteError names rank 0, the write, the step and the checkpoint kept, and says what to do", () => {
  const own = new RankWriteError("log.jsonl", 9, 8, "runs/a", {
    path: "runs/a/log.jsonl",
    error: new Error("No space left on device (os error 28)\nstack"),
  });
  assert.equal(
    own.message,
    "rank 0 could not write log.jsonl (runs/a/log.jsonl): No space left on device (os error 28). " +
      "Every rank stopped after step 9; the last good checkpoint (step 8) in runs/a is intact. " +
      "Free space or make the run folder writable, then continue with --resume",
  );
  const other = new RankWriteError("a preview grid", 3, null, "runs/a");
  assert.match(
    other.message,
    /^rank 0 could not write a preview grid \(its error is in rank 0's output\)\. Every rank stopped after step 3; no checkpoint had been written yet\./,
  );
});
