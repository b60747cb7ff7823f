/**
 * The FID Inception-v3 network exactly as pytorch-fid defines it (the 2015-12-05 TensorFlow
 * graph ported to PyTorch; Szegedy et al. 2016, "Rethinking the Inception Architecture"):
 * torchvision's Inception3 layout with pytorch-fid's patched blocks — average pooling that
 * ignores padded zeros in the A, C and first E blocks, max pooling in the last E block —
 * BatchNorm eps 0.001, and features taken after blocks 0..3 (64/192/768/2048 channels),
 * globally average-pooled.
 *
 * Each BasicConv2d (conv without bias -> BatchNorm -> ReLU) runs as one conv call whose weight
 * and bias have the (eval-mode) BatchNorm folded in at load time and whose ReLU is fused: the
 * same function, a fraction of the memory traffic. Two more rewrites keep the function and
 * save time: the 1x1 convs that read a block's input run as one conv with stacked weights
 * (`Mixed_5b.heads`, see {@link inceptionHeads}), and the branch_pool 1x1 conv runs before its
 * average pool (both linear, so they commute), pooling 4-7x fewer channels. Other parameters are
 * named after the layer, e.g. `Mixed_5b.branch5x5_2`.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { ParamStore, WeightMismatchError } from "../nn/params.ts";
import {
  BLOCK_INDEX_BY_DIM,
  type ConvSpec,
  type InceptionDims,
  inceptionHeads,
  inceptionLayers,
  inceptionStateDictShapes,
} from "./inception_layers.ts";

/** BatchNorm eps of the TensorFlow graph (torchvision's BasicConv2d uses it too). */
const BN_EPS = 0.001;

/** Names in the released file that the features ignore. */
function isIgnoredName(name: string): boolean {
  return name.endsWith(".num_batches_tracked") || name === "fc.weight" || name === "fc.bias";
}

/** A loaded FID Inception network on one backend. */
export interface InceptionNet {
  /** The backend holding the weights. */
  readonly backend: Backend;
  /** Folded conv weights and biases, `<layer>.weight` / `<layer>.bias`. */
  readonly params: ParamStore;
  /** Feature size of {@link InceptionNet.features}. */
  readonly dims: InceptionDims;
  /**
   * Globally average-pooled outputs of blocks 0..`lastBlock` for x [N, 3, 299, 299] already
   * scaled to [-1, 1]: [N, 64], [N, 192], [N, 768], [N, 2048].
   */
  blocks(x: Tensor, lastBlock?: number): Tensor[];
  /** Features of size `dims` for x [N, 3, 299, 299] in [-1, 1]: [N, dims]. */
  features(x: Tensor): Tensor;
  /** Frees the weights; calling it again does nothing. */
  dispose(): void;
  /** {@link InceptionNet.dispose}, for `using net = await loadInception(...)`. */
  [Symbol.dispose](): void;
}

/**
 * Builds the network from a state_dict in pytorch-fid's layout (names and shapes checked
 * strictly; `num_batches_tracked` and `fc.*` ignored), folding each BatchNorm into its conv.
 *
 * @example
 * ```ts ignore needs-weights
 * import { createBackend } from "../backend/select.ts";
 * import { readTorchStateDict } from "../io/torch_pickle.ts";
 * import { inceptionFromStateDict } from "./inception.ts";
 * using backend = await createBackend("torch-cpu");
 * using net = inceptionFromStateDict(backend, await readTorchStateDict("pt_inception.pth"), 2048);
 * ```
 */
export function inceptionFromStateDict(
  backend: Backend,
  stateDict: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
  dims: InceptionDims = 2048,
  source = "the weights",
): InceptionNet {
  const expected = inceptionStateDictShapes();
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const got = stateDict.get(name);
    if (!got) problems.push(`missing ${name}`);
    else if (got.shape.join() !== shape.join()) {
      problems.push(`${name} is [${got.shape}], expected [${shape}]`);
    }
  }
  for (const name of stateDict.keys()) {
    if (!expected.has(name) && !isIgnoredName(name)) problems.push(`unexpected ${name}`);
  }
  if (problems.length) {
    const more = problems.length > 6 ? ` (and ${problems.length - 6} more)` : "";
    throw new WeightMismatchError(
      `${source} is not pytorch-fid's FID Inception state_dict: ${
        problems.slice(0, 6).join("; ")
      }${more}. Use pt_inception-2015-12-05-6726825d.pth from pytorch-fid's release.`,
    );
  }
  const params = new ParamStore(backend);
  const layers = inceptionLayers();
  const heads = inceptionHeads();
  const folded = new Map<string, { weight: Float32Array; bias: Float32Array }>();
  for (const [name, s] of layers) {
    const get = (key: string) => stateDict.get(`${name}.${key}`)!.data;
    const [w, gamma, beta, mean, variance] = [
      get("conv.weight"),
      get("bn.weight"),
      get("bn.bias"),
      get("bn.running_mean"),
      get("bn.running_var"),
    ];
    const perOut = s.cin * s.kh * s.kw;
    const weight = new Float32Array(w.length);
    const bias = new Float32Array(s.cout);
    for (let o = 0; o < s.cout; o++) {
      // BN(conv(x)) = scale * conv(x) + (beta - mean * scale), scale = gamma / sqrt(var + eps)
      const scale = gamma[o] / Math.sqrt(variance[o] + BN_EPS);
      bias[o] = beta[o] - mean[o] * scale;
      for (let i = 0; i < perOut; i++) weight[o * perOut + i] = w[o * perOut + i] * scale;
    }
    folded.set(name, { weight, bias });
  }
  for (const [block, members] of heads) {
    // [cout_i, cin, 1, 1] stacked along cout: the rows of the weight matrix concatenate.
    const parts = members.map((m) => folded.get(`${block}.${m}`)!);
    const cout = members.reduce((sum, m) => sum + layers.get(`${block}.${m}`)!.cout, 0);
    const cin = layers.get(`${block}.${members[0]}`)!.cin;
    params.add(
      `${block}.heads.weight`,
      [cout, cin, 1, 1],
      concat(parts.map((p) => p.weight)),
      false,
    );
    params.add(`${block}.heads.bias`, [cout], concat(parts.map((p) => p.bias)), false);
  }
  const stacked = new Set([...heads].flatMap(([block, ms]) => ms.map((m) => `${block}.${m}`)));
  for (const [name, s] of layers) {
    if (stacked.has(name)) continue;
    const { weight, bias } = folded.get(name)!;
    params.add(`${name}.weight`, [s.cout, s.cin, s.kh, s.kw], weight, false);
    params.add(`${name}.bias`, [s.cout], bias, false);
  }
  return new FidInception(backend, params, dims, layers, heads);
}

function concat(arrays: Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

class FidInception implements InceptionNet {
  constructor(
    readonly backend: Backend,
    readonly params: ParamStore,
    readonly dims: InceptionDims,
    readonly layers: Map<string, ConvSpec>,
    readonly heads: Map<string, string[]>,
  ) {}

  /** BasicConv2d with BatchNorm folded in: relu(conv(x) + bias). */
  #basic(name: string, x: Tensor): Tensor {
    const b = this.backend;
    const s = this.layers.get(name)!;
    const w = this.params.get(`${name}.weight`);
    const bias = this.params.get(`${name}.bias`);
    // Rectangular kernels (1x7, 7x1) run as they are: the Backend contract covers them.
    return b.conv2d(x, w, bias, { stride: s.stride, padding: [s.ph, s.pw], activation: "relu" });
  }

  #seq(names: string[], x: Tensor): Tensor {
    for (const name of names) x = this.#basic(name, x);
    return x;
  }

  /**
   * The block's 1x1 heads ({@link inceptionHeads}) run as one conv, split back by name:
   * x [N, C, H, W] -> { branch1x1: [N, c1, H, W], ... } (channel slices of one result).
   */
  #heads(p: string, x: Tensor): Record<string, Tensor> {
    const b = this.backend;
    const w = this.params.get(`${p}.heads.weight`);
    const y = b.conv2d(x, w, this.params.get(`${p}.heads.bias`), { activation: "relu" });
    const [n, , h, wd] = y.shape;
    const out: Record<string, Tensor> = {};
    let offset = 0;
    for (const name of this.heads.get(p)!) {
      const c = this.layers.get(`${p}.${name}`)!.cout;
      out[name] = b.slice(y, [0, offset, 0, 0], [n, c, h, wd]);
      offset += c;
    }
    return out;
  }

  /**
   * branch_pool of the A, C and first E blocks: relu(bn(conv1x1(avgPool3x3(x)))). The 1x1 conv
   * (bias included) and the average pool are both linear and act on different axes, and the
   * pool's weights sum to 1 even where it ignores the padding (TensorFlow's average pool,
   * pytorch-fid's patch), so they commute: pooling after the conv pools 4-7x fewer channels.
   */
  #avgPoolBranch(p: string, x: Tensor): Tensor {
    const b = this.backend;
    const name = `${p}.branch_pool`;
    const w = this.params.get(`${name}.weight`);
    const y = b.conv2d(x, w, this.params.get(`${name}.bias`)); // [N, Cpool, H, W]
    return b.relu(b.avgPool2d(y, 3, 1, 1, false));
  }

  #mixedA(p: string, x: Tensor): Tensor {
    const h = this.#heads(p, x);
    return this.backend.cat([
      h.branch1x1,
      this.#basic(`${p}.branch5x5_2`, h.branch5x5_1),
      this.#seq([`${p}.branch3x3dbl_2`, `${p}.branch3x3dbl_3`], h.branch3x3dbl_1),
      this.#avgPoolBranch(p, x),
    ], 1);
  }

  #mixedB(p: string, x: Tensor): Tensor {
    return this.backend.cat([
      this.#basic(`${p}.branch3x3`, x),
      this.#seq([`${p}.branch3x3dbl_1`, `${p}.branch3x3dbl_2`, `${p}.branch3x3dbl_3`], x),
      this.backend.maxPool2d(x, 3, 2),
    ], 1);
  }

  #mixedC(p: string, x: Tensor): Tensor {
    const h = this.#heads(p, x);
    const dbl = [2, 3, 4, 5].map((i) => `${p}.branch7x7dbl_${i}`);
    return this.backend.cat([
      h.branch1x1,
      this.#seq([`${p}.branch7x7_2`, `${p}.branch7x7_3`], h.branch7x7_1),
      this.#seq(dbl, h.branch7x7dbl_1),
      this.#avgPoolBranch(p, x),
    ], 1);
  }

  #mixedD(p: string, x: Tensor): Tensor {
    const h = this.#heads(p, x);
    const tower = [2, 3, 4].map((i) => `${p}.branch7x7x3_${i}`);
    return this.backend.cat([
      this.#basic(`${p}.branch3x3_2`, h.branch3x3_1),
      this.#seq(tower, h.branch7x7x3_1),
      this.backend.maxPool2d(x, 3, 2),
    ], 1);
  }

  #mixedE(p: string, x: Tensor, maxPool: boolean): Tensor {
    const b = this.backend;
    const h = this.#heads(p, x);
    const b3 = h.branch3x3_1;
    const d3 = this.#basic(`${p}.branch3x3dbl_2`, h.branch3x3dbl_1);
    // pytorch-fid cats [3x3_2a, 3x3_2b] and [3x3dbl_3a, 3x3dbl_3b] first; one flat cat gives the
    // same channel order with one copy instead of three.
    return b.cat([
      h.branch1x1,
      this.#basic(`${p}.branch3x3_2a`, b3),
      this.#basic(`${p}.branch3x3_2b`, b3),
      this.#basic(`${p}.branch3x3dbl_3a`, d3),
      this.#basic(`${p}.branch3x3dbl_3b`, d3),
      // pytorch-fid's FIDInceptionE_2 (Mixed_7c) max-pools here, as the TF graph does.
      maxPool
        ? this.#basic(`${p}.branch_pool`, b.maxPool2d(x, 3, 1, 1))
        : this.#avgPoolBranch(p, x),
    ], 1);
  }

  blocks(x: Tensor, lastBlock = BLOCK_INDEX_BY_DIM[this.dims]): Tensor[] {
    return this.#run(x, lastBlock, true);
  }

  features(x: Tensor): Tensor {
    const index = BLOCK_INDEX_BY_DIM[this.dims];
    return this.backend.noGrad(() => this.#run(x, index, false)[0]);
  }

  /** Pooled outputs of blocks 0..lastBlock, or of lastBlock alone when not `everyBlock`. */
  #run(x: Tensor, lastBlock: number, everyBlock: boolean): Tensor[] {
    const b = this.backend;
    if (x.shape.length !== 4 || x.shape[1] !== 3) {
      throw new Error(`Inception expects images [N, 3, 299, 299], got [${x.shape}]`);
    }
    const out: Tensor[] = [];
    const pool = (block: number, t: Tensor) => { // [N, C, H, W] -> [N, C]
      if (everyBlock || block === lastBlock) out.push(b.mean(t, [2, 3]));
    };
    let h = this.#seq(["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"], x); // [N, 64, 147, 147]
    h = b.maxPool2d(h, 3, 2); // [N, 64, 73, 73]
    pool(0, h);
    if (lastBlock >= 1) {
      h = b.maxPool2d(this.#seq(["Conv2d_3b_1x1", "Conv2d_4a_3x3"], h), 3, 2); // [N, 192, 35, 35]
      pool(1, h);
    }
    if (lastBlock >= 2) {
      for (const p of ["Mixed_5b", "Mixed_5c", "Mixed_5d"]) h = this.#mixedA(p, h); // [N, 288, 35, 35]
      h = this.#mixedB("Mixed_6a", h); // [N, 768, 17, 17]
      for (const p of ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]) h = this.#mixedC(p, h);
      pool(2, h);
    }
    if (lastBlock >= 3) {
      h = this.#mixedD("Mixed_7a", h); // [N, 1280, 8, 8]
      h = this.#mixedE("Mixed_7b", h, false); // [N, 2048, 8, 8]
      h = this.#mixedE("Mixed_7c", h, true); // [N, 2048, 8, 8]
      pool(3, h); // adaptive average pool to 1x1
    }
    return out;
  }

  dispose(): void {
    this.params.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
