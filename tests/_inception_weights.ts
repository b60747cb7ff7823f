/**
 * Random FID Inception weights in exactly the layout of pytorch-fid's
 * pt_inception-2015-12-05-6726825d.pth (~95 MB, too big to commit), made at test time by
 * tests/fixtures/make_fid_fixtures.py with Debian's python3-torch. Without PyTorch the tests that
 * need them FAIL with this message; they are not optional.
 *
 * @module
 */

/** The Python that has torch (`DENO_DIFFUSION_TORCH_PYTHON`, default Debian's). */
export const TORCH_PYTHON = Deno.env.get("DENO_DIFFUSION_TORCH_PYTHON") ?? "/usr/bin/python3";

const SCRIPT = new URL("./fixtures/make_fid_fixtures.py", import.meta.url).pathname;

/**
 * Runs the fixture script into `dir` (created): weights.pth, images.bin and reference.json (the
 * PyTorch re-implementation's outputs at every block). Returns the weights' path.
 */
export async function makeInceptionFixture(dir: string): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const run = await new Deno.Command(TORCH_PYTHON, {
    args: [SCRIPT, "inception", dir],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new Error(`cannot run ${TORCH_PYTHON} (${e.message}): install python3-torch`);
  });
  if (!run.success) {
    throw new Error(
      `${TORCH_PYTHON} ${SCRIPT} inception failed; these tests need PyTorch there ` +
        `(Debian: apt-get install python3-torch):\n${new TextDecoder().decode(run.stderr)}`,
    );
  }
  return `${dir}/weights.pth`;
}
