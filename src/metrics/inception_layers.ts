/**
 * The layer table of pytorch-fid's FID Inception-v3: every BasicConv2d with its channels, kernel,
 * stride and padding (torchvision's Inception3 names), the 1x1 convs each Mixed block stacks into
 * one, the released state_dict's names and shapes, and the feature sizes pytorch-fid offers.
 * Data only; inception.ts builds and runs the network from it.
 *
 * @module
 */

/** Feature sizes pytorch-fid offers, and the block each is read from. */
export const BLOCK_INDEX_BY_DIM = { 64: 0, 192: 1, 768: 2, 2048: 3 } as const;

/** A feature size pytorch-fid offers (`--dims`). */
export type InceptionDims = keyof typeof BLOCK_INDEX_BY_DIM;

/**
 * Whether `dims` is one of 64, 192, 768, 2048.
 *
 * @example
 * ```ts
 * import { isInceptionDims } from "./inception_layers.ts";
 * console.log(isInceptionDims(2048), isInceptionDims(100)); // true false
 * ```
 */
export function isInceptionDims(dims: number): dims is InceptionDims {
  return dims in BLOCK_INDEX_BY_DIM;
}

/** One BasicConv2d: conv [cout, cin, kh, kw] with stride and zero padding (ph, pw). */
export interface ConvSpec {
  /** Input channels. */
  cin: number;
  /** Output channels. */
  cout: number;
  /** Kernel height. */
  kh: number;
  /** Kernel width. */
  kw: number;
  /** Stride (both directions). */
  stride: number;
  /** Zero padding on top and bottom. */
  ph: number;
  /** Zero padding left and right. */
  pw: number;
}

function conv(cin: number, cout: number, k: number | [number, number], stride = 1, pad = 0) {
  const [kh, kw] = typeof k === "number" ? [k, k] : k;
  // Rectangular kernels pad only along their long side, "same" size.
  const [ph, pw] = typeof k === "number" ? [pad, pad] : [(kh - 1) / 2, (kw - 1) / 2];
  return { cin, cout, kh, kw, stride, ph, pw };
}

function blockA(cin: number, poolFeatures: number): Record<string, ConvSpec> {
  return {
    branch1x1: conv(cin, 64, 1),
    branch5x5_1: conv(cin, 48, 1),
    branch5x5_2: conv(48, 64, 5, 1, 2),
    branch3x3dbl_1: conv(cin, 64, 1),
    branch3x3dbl_2: conv(64, 96, 3, 1, 1),
    branch3x3dbl_3: conv(96, 96, 3, 1, 1),
    branch_pool: conv(cin, poolFeatures, 1),
  };
}

function blockB(cin: number): Record<string, ConvSpec> {
  return {
    branch3x3: conv(cin, 384, 3, 2),
    branch3x3dbl_1: conv(cin, 64, 1),
    branch3x3dbl_2: conv(64, 96, 3, 1, 1),
    branch3x3dbl_3: conv(96, 96, 3, 2),
  };
}

function blockC(cin: number, c7: number): Record<string, ConvSpec> {
  return {
    branch1x1: conv(cin, 192, 1),
    branch7x7_1: conv(cin, c7, 1),
    branch7x7_2: conv(c7, c7, [1, 7]),
    branch7x7_3: conv(c7, 192, [7, 1]),
    branch7x7dbl_1: conv(cin, c7, 1),
    branch7x7dbl_2: conv(c7, c7, [7, 1]),
    branch7x7dbl_3: conv(c7, c7, [1, 7]),
    branch7x7dbl_4: conv(c7, c7, [7, 1]),
    branch7x7dbl_5: conv(c7, 192, [1, 7]),
    branch_pool: conv(cin, 192, 1),
  };
}

function blockD(cin: number): Record<string, ConvSpec> {
  return {
    branch3x3_1: conv(cin, 192, 1),
    branch3x3_2: conv(192, 320, 3, 2),
    branch7x7x3_1: conv(cin, 192, 1),
    branch7x7x3_2: conv(192, 192, [1, 7]),
    branch7x7x3_3: conv(192, 192, [7, 1]),
    branch7x7x3_4: conv(192, 192, 3, 2),
  };
}

function blockE(cin: number): Record<string, ConvSpec> {
  return {
    branch1x1: conv(cin, 320, 1),
    branch3x3_1: conv(cin, 384, 1),
    branch3x3_2a: conv(384, 384, [1, 3]),
    branch3x3_2b: conv(384, 384, [3, 1]),
    branch3x3dbl_1: conv(cin, 448, 1),
    branch3x3dbl_2: conv(448, 384, 3, 1, 1),
    branch3x3dbl_3a: conv(384, 384, [1, 3]),
    branch3x3dbl_3b: conv(384, 384, [3, 1]),
    branch_pool: conv(cin, 192, 1),
  };
}

/**
 * Every BasicConv2d of the network by its state_dict prefix, in state_dict order.
 *
 * @example
 * ```ts
 * import { inceptionLayers } from "./inception_layers.ts";
 * console.log(inceptionLayers().get("Mixed_6b.branch7x7_2")); // { cin: 128, cout: 128, kh: 1, kw: 7, ... }
 * ```
 */
export function inceptionLayers(): Map<string, ConvSpec> {
  const layers = new Map<string, ConvSpec>([
    ["Conv2d_1a_3x3", conv(3, 32, 3, 2)],
    ["Conv2d_2a_3x3", conv(32, 32, 3)],
    ["Conv2d_2b_3x3", conv(32, 64, 3, 1, 1)],
    ["Conv2d_3b_1x1", conv(64, 80, 1)],
    ["Conv2d_4a_3x3", conv(80, 192, 3)],
  ]);
  const blocks: [string, Record<string, ConvSpec>][] = [
    ["Mixed_5b", blockA(192, 32)],
    ["Mixed_5c", blockA(256, 64)],
    ["Mixed_5d", blockA(288, 64)],
    ["Mixed_6a", blockB(288)],
    ["Mixed_6b", blockC(768, 128)],
    ["Mixed_6c", blockC(768, 160)],
    ["Mixed_6d", blockC(768, 160)],
    ["Mixed_6e", blockC(768, 192)],
    ["Mixed_7a", blockD(768)],
    ["Mixed_7b", blockE(1280)],
    ["Mixed_7c", blockE(2048)],
  ];
  for (const [block, convs] of blocks) {
    for (const [branch, spec] of Object.entries(convs)) layers.set(`${block}.${branch}`, spec);
  }
  return layers;
}

/**
 * The 1x1 convs of each Mixed block that read the block's input. They run as one conv with
 * their weights stacked along the output channels (`<block>.heads`): one pass over the input
 * and one wider matrix product instead of two or three narrow ones.
 *
 * @example
 * ```ts
 * import { inceptionHeads } from "./inception_layers.ts";
 * console.log(inceptionHeads().get("Mixed_7a")); // ["branch3x3_1", "branch7x7x3_1"]
 * ```
 */
export function inceptionHeads(): Map<string, string[]> {
  const a = ["branch1x1", "branch5x5_1", "branch3x3dbl_1"];
  const c = ["branch1x1", "branch7x7_1", "branch7x7dbl_1"];
  const e = ["branch1x1", "branch3x3_1", "branch3x3dbl_1"];
  return new Map([
    ["Mixed_5b", a],
    ["Mixed_5c", a],
    ["Mixed_5d", a],
    ["Mixed_6b", c],
    ["Mixed_6c", c],
    ["Mixed_6d", c],
    ["Mixed_6e", c],
    ["Mixed_7a", ["branch3x3_1", "branch7x7x3_1"]],
    ["Mixed_7b", e],
    ["Mixed_7c", e],
  ]);
}

/**
 * Names and shapes of pytorch-fid's state_dict (`pt_inception-2015-12-05-6726825d.pth`),
 * without the `num_batches_tracked` counters and the 1008-way `fc` classifier, which the
 * features do not use.
 *
 * @example
 * ```ts
 * import { inceptionStateDictShapes } from "./inception_layers.ts";
 * console.log(inceptionStateDictShapes().get("Conv2d_1a_3x3.conv.weight")); // [32, 3, 3, 3]
 * ```
 */
export function inceptionStateDictShapes(): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const [name, s] of inceptionLayers()) {
    shapes.set(`${name}.conv.weight`, [s.cout, s.cin, s.kh, s.kw]);
    for (const p of ["weight", "bias", "running_mean", "running_var"]) {
      shapes.set(`${name}.bn.${p}`, [s.cout]);
    }
  }
  return shapes;
}
