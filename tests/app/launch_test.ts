import assert from "node:assert/strict";
import { pinLocalGpu, readTorchrunEnv, threadsPerRank } from "../../src/app/launch.ts";

Deno.test("readTorchrunEnv reads the torchrun variables, and is null without WORLD_SIZE", () => {
  assert.equal(readTorchrunEnv({}), null);
  assert.deepEqual(
    readTorchrunEnv({
      MASTER_ADDR: "node-1",
      MASTER_PORT: "29511",
      RANK: "5",
      WORLD_SIZE: "8",
      LOCAL_RANK: "1",
      LOCAL_WORLD_SIZE: "4",
    }),
    {
      masterAddr: "node-1",
      masterPort: 29511,
      rank: 5,
      worldSize: 8,
      localRank: 1,
      localWorldSize: 4,
    },
  );
  // LOCAL_* default to a one-machine job; MASTER_PORT to torchrun's 29500.
  assert.deepEqual(readTorchrunEnv({ MASTER_ADDR: "h", RANK: "1", WORLD_SIZE: "2" }), {
    masterAddr: "h",
    masterPort: 29500,
    rank: 1,
    worldSize: 2,
    localRank: 1,
    localWorldSize: 2,
  });
});

Deno.test("readTorchrunEnv names the variable that is missing or wrong", () => {
  assert.throws(() => readTorchrunEnv({ WORLD_SIZE: "2", MASTER_ADDR: "h" }), /\$RANK=\(unset\)/);
  assert.throws(() => readTorchrunEnv({ WORLD_SIZE: "two", RANK: "0" }), /\$WORLD_SIZE=two/);
  assert.throws(
    () => readTorchrunEnv({ WORLD_SIZE: "2", RANK: "2", MASTER_ADDR: "h" }),
    /RANK=2 must be below/,
  );
  assert.throws(() => readTorchrunEnv({ WORLD_SIZE: "2", RANK: "0" }), /MASTER_ADDR is unset/);
  assert.throws(
    () => readTorchrunEnv({ WORLD_SIZE: "2", RANK: "0", MASTER_ADDR: "h", MASTER_PORT: "70000" }),
    /not a TCP port/,
  );
});

Deno.test("threadsPerRank splits the cores evenly, never below one", () => {
  assert.equal(threadsPerRank(16, 4), 4);
  assert.equal(threadsPerRank(2, 2), 1);
  assert.equal(threadsPerRank(2, 8), 1);
});

Deno.test("pinLocalGpu gives local rank i the i-th visible GPU", () => {
  const all: Record<string, string | undefined> = {};
  assert.equal(pinLocalGpu(3, all), "3");
  assert.equal(all.CUDA_VISIBLE_DEVICES, "3");
  const listed: Record<string, string | undefined> = { CUDA_VISIBLE_DEVICES: "4,5,6,7" };
  assert.equal(pinLocalGpu(2, listed), "6");
  const single: Record<string, string | undefined> = { CUDA_VISIBLE_DEVICES: "5" };
  assert.equal(pinLocalGpu(0, single), null); // already one GPU: kept
  assert.throws(() => pinLocalGpu(2, { CUDA_VISIBLE_DEVICES: "0,1" }), /LOCAL_RANK 2 has no GPU/);
});
