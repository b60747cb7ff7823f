/**
 * The FID Inception network against a PyTorch re-implementation (bench/reference/
 * fid_inception.py) with random weights in exactly pytorch-fid's state_dict layout. The weights
 * (~95 MB) are made at test time by tests/fixtures/make_fid_fixtures.py with Debian's
 * python3-torch; without it these tests FAIL (they are not optional).
 *
 * tfjs-cpu is skipped for the full 299x299 network: its pure-JS convolutions take minutes.
 */
import assert from "node:assert/strict";
import { readTorchStateDict } from "../../src/io/torch_pickle.ts";
import { encodePng } from "../../src/io/png.ts";
import { WeightMismatchError } from "../../src/nn/params.ts";
import {
  computeActivations,
  type ImageLike,
  imagesToTensor,
  toInceptionInput,
} from "../../src/metrics/features.ts";
import { fidFromStatistics, statisticsOf } from "../../src/metrics/fid.ts";
import { inceptionFromStateDict } from "../../src/metrics/inception.ts";
import { inceptionHeads, inceptionLayers } from "../../src/metrics/inception_layers.ts";
import {
  FID_WEIGHTS_FILE,
  FID_WEIGHTS_SIZE,
  loadInception,
  resolveInceptionWeights,
  verifyInceptionWeights,
} from "../../src/metrics/weights.ts";
import { fidCommand } from "../../src/cli/fid.ts";
import { readStatistics } from "../../src/metrics/stats_io.ts";
import { testEachBackend } from "../_backends.ts";
import { makeInceptionFixture, TORCH_PYTHON } from "../_inception_weights.ts";

const workDir = await Deno.makeTempDir({ prefix: "fid_inception_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(workDir, { recursive: true }));

interface Reference {
  images: { count: number; height: number; width: number };
  odd: { count: number; height: number; width: number };
  dims: number[];
  /** Per block: [count][channels] pooled outputs. */
  features: number[][][];
  odd_features: number[][][];
}

let fixture: Promise<{ weights: string; images: ImageLike[]; odd: ImageLike; ref: Reference }>;

/** Runs the fixture script once (about half a minute) and loads what it wrote. */
function inceptionFixture() {
  fixture ??= (async () => {
    await makeInceptionFixture(workDir);
    const ref: Reference = JSON.parse(await Deno.readTextFile(`${workDir}/reference.json`));
    const bytes = await Deno.readFile(`${workDir}/images.bin`);
    const { count, height, width } = ref.images;
    const size = height * width * 3;
    const images = Array.from({ length: count }, (_, i) => ({
      width,
      height,
      channels: 3,
      data: bytes.slice(i * size, (i + 1) * size),
    }));
    const odd = {
      width: ref.odd.width,
      height: ref.odd.height,
      channels: 3,
      data: bytes.slice(count * size),
    };
    return { weights: `${workDir}/weights.pth`, images, odd, ref };
  })();
  return fixture;
}

function assertClose(got: ArrayLike<number>, expected: number[], what: string) {
  assert.equal(got.length, expected.length, `${what}: length`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  // float32 through up to 94 conv layers, BatchNorm folded: measured <= 4e-4 at block 3.
  assert.ok(
    maxDiff <= 1e-3 * Math.max(1, maxRef),
    `${what}: max |diff| ${maxDiff} (max ${maxRef})`,
  );
}

testEachBackend(
  "FID Inception matches the PyTorch reference at every block (64/192/768/2048)",
  async (backend) => {
    const { weights, images, odd, ref } = await inceptionFixture();
    const net = await loadInception(backend, { path: weights, verify: false });
    try {
      // All four blocks through the real preprocessing path (uint8 -> [0,1] -> 299 -> [-1,1]).
      const blocks = backend.scope(() =>
        backend.noGrad(() =>
          net.blocks(toInceptionInput(backend, imagesToTensor(backend, images)), 3)
        )
      );
      for (const [index, dims] of ref.dims.entries()) {
        assert.deepEqual([...blocks[index].shape], [images.length, dims]);
        assertClose(backend.read(blocks[index]), ref.features[index].flat(), `block ${index}`);
        blocks[index].dispose();
      }
      // A non-square image of another size.
      const acts = await computeActivations(backend, net, [odd], { progress: false });
      assertClose(acts.data, ref.odd_features[3].flat(), "21x40 image, 2048 dims");
    } finally {
      net.dispose();
    }
  },
  { only: ["torch-cuda", "torch-cpu", "tfjs-wasm"] },
);

Deno.test("loadInception() checks the size of the weights file by default", async () => {
  const { weights } = await inceptionFixture();
  await assert.rejects(
    verifyInceptionWeights(weights),
    /is 95728789 bytes, but pt_inception-2015-12-05-6726825d.pth is 95628359/,
  );
});

Deno.test("verifyInceptionWeights() refuses a file of the right size with the wrong sha256", async () => {
  const path = `${workDir}/same_size.pth`;
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, FID_WEIGHTS_SIZE);
  await assert.rejects(
    verifyInceptionWeights(path),
    /has sha256 [0-9a-f]{16}\.\.\., expected 6726825d/,
  );
  await Deno.remove(path);
});

Deno.test("a weights file with a missing, unexpected or misshapen tensor is refused by name", async () => {
  const { weights } = await inceptionFixture();
  const stateDict = await readTorchStateDict(weights);
  const fake = { name: "fake", liveTensors: () => 0 } as never; // never reached: checks come first
  const renamed = new Map(stateDict);
  renamed.set("Mixed_5b.branch1x1.convx.weight", renamed.get("Mixed_5b.branch1x1.conv.weight")!);
  renamed.delete("Mixed_5b.branch1x1.conv.weight");
  assert.throws(
    () => inceptionFromStateDict(fake, renamed),
    (e: Error) =>
      e instanceof WeightMismatchError &&
      e.message.includes("missing Mixed_5b.branch1x1.conv.weight") &&
      e.message.includes("unexpected Mixed_5b.branch1x1.convx.weight"),
  );
  const misshapen = new Map(stateDict);
  misshapen.set("Conv2d_1a_3x3.bn.running_var", { shape: [31], data: new Float32Array(31) });
  assert.throws(
    () => inceptionFromStateDict(fake, misshapen),
    /Conv2d_1a_3x3.bn.running_var is \[31\], expected \[32\]/,
  );
});

Deno.test("resolveInceptionWeights() explains what is missing and where to put the file", async () => {
  await assert.rejects(
    resolveInceptionWeights({ path: `${workDir}/nope.pth` }),
    /nope.pth \(from --inception-weights\) does not exist. Download/,
  );
  const cachePath = `${workDir}/cache/${FID_WEIGHTS_FILE}`;
  const previous = Deno.env.get("DENO_DIFFUSION_INCEPTION");
  Deno.env.delete("DENO_DIFFUSION_INCEPTION");
  try {
    await assert.rejects(
      resolveInceptionWeights({ cachePath, download: false }),
      (e: Error) =>
        e.message.includes("https://github.com/mseitzer/pytorch-fid/releases/download") &&
        e.message.includes("--inception-weights") && e.message.includes("DENO_DIFFUSION_INCEPTION"),
    );
  } finally {
    if (previous !== undefined) Deno.env.set("DENO_DIFFUSION_INCEPTION", previous);
  }
});

Deno.test("a download of the wrong size is refused and leaves nothing behind", async () => {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => new Response(new Uint8Array(1000)),
  );
  const cacheDir = `${workDir}/download-cache`;
  try {
    const url = `http://127.0.0.1:${server.addr.port}/${FID_WEIGHTS_FILE}`;
    const previous = Deno.env.get("DENO_DIFFUSION_INCEPTION");
    Deno.env.delete("DENO_DIFFUSION_INCEPTION");
    try {
      await assert.rejects(
        resolveInceptionWeights({ url, cachePath: `${cacheDir}/${FID_WEIGHTS_FILE}` }),
        /is 1000 bytes, but pt_inception-2015-12-05-6726825d.pth is 95628359/,
      );
    } finally {
      if (previous !== undefined) Deno.env.set("DENO_DIFFUSION_INCEPTION", previous);
    }
    const left = [...Deno.readDirSync(cacheDir)].map((e) => e.name);
    assert.deepEqual(left, []);
  } finally {
    await server.shutdown();
  }
});

testEachBackend(
  "`fid` on two image folders equals the FID of the PyTorch reference features",
  async (backend) => {
    const { weights, images, odd, ref } = await inceptionFixture();
    const dirA = `${workDir}/a`;
    const dirB = `${workDir}/b`;
    await Deno.mkdir(dirA, { recursive: true });
    await Deno.mkdir(dirB, { recursive: true });
    for (const [i, img] of images.entries()) {
      await Deno.writeFile(`${dirA}/${i}.png`, encodePng(img as never));
    }
    await Deno.writeFile(`${dirB}/0.png`, encodePng(images[0] as never));
    await Deno.writeFile(`${dirB}/1.png`, encodePng(odd as never));
    const refA = statisticsOf(Float32Array.from(ref.features[3].flat()), 3, 2048);
    const refB = statisticsOf(
      Float32Array.from([...ref.features[3][0], ...ref.odd_features[3][0]]),
      2,
      2048,
    );
    const expected = fidFromStatistics(refA, refB);
    const lines: string[] = [];
    const log = console.log;
    console.log = (line: string) => lines.push(line);
    try {
      const flags = ["--inception-weights", weights, "--skip-weights-check", "--json"];
      assert.equal(await fidCommand([dirA, dirB, ...flags, "--backend", backend.name]), 0);
      await fidCommand([
        "--save-stats",
        dirA,
        `${workDir}/a.npz`,
        ...flags,
        "--backend",
        backend.name,
      ]);
      await fidCommand([`${workDir}/a.npz`, dirB, ...flags, "--backend", backend.name]);
    } finally {
      console.log = log;
    }
    const [fromFolders, fromNpz] = lines.map((l) => JSON.parse(l));
    assert.equal(fromFolders.n_a, 3);
    assert.equal(fromFolders.dims, 2048);
    assert.equal(fromFolders.backend, backend.name);
    // Features agree to ~1e-4; with 3 and 2 samples the FID is ~1e3, so compare relatively.
    assert.ok(
      Math.abs(fromFolders.fid - expected) < 1e-3 * expected,
      `${fromFolders.fid} vs ${expected}`,
    );
    assert.ok(
      Math.abs(fromNpz.fid - fromFolders.fid) < 1e-9 * expected,
      "npz stats give the same FID",
    );
    // numpy (what pytorch-fid uses) reads the saved statistics and sees the same numbers.
    const program = `import json, numpy as np; f = np.load("${workDir}/a.npz"); ` +
      `print(json.dumps({"mu": list(f["mu"].shape), "sigma": list(f["sigma"].shape), ` +
      `"dtype": str(f["sigma"].dtype), "mu0": float(f["mu"][0]), "s01": float(f["sigma"][0, 1])}))`;
    const check = await new Deno.Command(TORCH_PYTHON, { args: ["-c", program], stdout: "piped" })
      .output();
    const seen = JSON.parse(new TextDecoder().decode(check.stdout));
    const saved = await readStatistics(`${workDir}/a.npz`);
    assert.deepEqual(seen, {
      mu: [2048],
      sigma: [2048, 2048],
      dtype: "float64",
      mu0: saved.mu[0],
      s01: saved.sigma[1],
    });
  },
  { only: ["torch-cpu"] },
);

Deno.test("inceptionHeads() stacks only 1x1 stride-1 convs that share their block's input", () => {
  const layers = inceptionLayers();
  for (const [block, members] of inceptionHeads()) {
    const cin = layers.get(`${block}.${members[0]}`)?.cin;
    for (const m of members) {
      const spec = layers.get(`${block}.${m}`);
      assert.ok(spec, `${block}.${m} is a layer`);
      assert.deepEqual([spec.kh, spec.kw, spec.stride, spec.ph, spec.pw], [1, 1, 1, 0, 0]);
      assert.equal(spec.cin, cin, `${block}.${m} reads the block input`);
    }
  }
  // Mixed_6a has a single 1x1 conv on its input; every other Mixed block stacks two or three.
  const blocks = new Set(
    [...layers.keys()].filter((n) => n.startsWith("Mixed_")).map((n) => n.split(".")[0]),
  );
  assert.deepEqual([...blocks].filter((block) => !inceptionHeads().has(block)), ["Mixed_6a"]);
});
