/**
 * FID and KID between two folders of images, as pytorch-fid computes FID. Needs pytorch-fid's
 * Inception weights (--inception-weights-style lookup: DENO_DIFFUSION_INCEPTION, the cache,
 * or a download); without them it says where to get them.
 *
 *   deno run -A examples/score_fid.ts runs/example-gan/fid-samples ../shared/data/cifar10-jpg/test/frog
 *
 * @module
 */
import {
  computeActivations,
  decodeFiles,
  fidFromStatistics,
  kernelInceptionDistance,
  listImageFiles,
  loadInception,
  selectBackend,
  statisticsOf,
} from "../mod.ts";

const [folderA, folderB] = Deno.args;
if (!folderA || !folderB) {
  console.error("usage: deno run -A examples/score_fid.ts FOLDER_A FOLDER_B");
  Deno.exit(2);
}
using backend = await selectBackend({ log: console.error });
using net = await loadInception(backend, { log: console.error }).catch((e) => {
  console.error(e.message); // says where to get the weights and where to put them
  backend.dispose();
  Deno.exit(1);
});
const features = async (folder: string) => {
  const files = await listImageFiles(folder);
  return await computeActivations(backend, net, decodeFiles(files), { total: files.length });
};
const a = await features(folderA);
const b = await features(folderB);
const fid = fidFromStatistics(
  statisticsOf(a.data, a.n, a.dims),
  statisticsOf(b.data, b.n, b.dims),
);
const kid = kernelInceptionDistance(a, b, { backend });
console.log(JSON.stringify({ fid, kid: kid.kid, kid_std: kid.std, n_a: a.n, n_b: b.n }));
