/**
 * FID and KID between two folders of images (or pytorch-fid .npz statistics for FID alone), as
 * pytorch-fid computes FID. Needs pytorch-fid's Inception weights: pass them with
 * --inception-weights PATH (else DENO_DIFFUSION_INCEPTION, the cache, or a download); without
 * them it says where to get them.
 *
 *   deno run -A examples/score_fid.ts --inception-weights pt_inception-2015-12-05-6726825d.pth \
 *     runs/example-gan/fid-samples ../shared/data/cifar10-jpg/test/frog
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fidBetweenFolders } from "../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { "inception-weights": { type: "string" } },
  allowPositionals: true,
});
const [folderA, folderB] = positionals;
if (!folderA || !folderB || positionals.length !== 2) {
  console.error(
    "usage: deno run -A examples/score_fid.ts [--inception-weights PATH] FOLDER_A FOLDER_B",
  );
  Deno.exit(2);
}
const bothFolders = ![folderA, folderB].some((p) => p.toLowerCase().endsWith(".npz"));
try {
  const r = await fidBetweenFolders(folderA, folderB, {
    weights: values["inception-weights"],
    kid: bothFolders,
    log: console.error,
  });
  console.log(JSON.stringify({ fid: r.fid, kid: r.kid, kid_std: r.kidStd, n_a: r.nA, n_b: r.nB }));
} catch (e) {
  console.error((e as Error).message); // says where to get the weights and where to put them
  Deno.exit(1);
}
