// The shim loader only locates and opens: a copied checkout with a built shim stays fresh, an
// edited source makes it stale, and stale or missing shims are BackendUnavailableErrors that
// say to run `deno task build:native`, without building anything.
import assert from "node:assert/strict";
import { nativeLibraryPath, shimStatus, SOURCE_DIRS } from "../../native/shim_stamp.ts";

const ROOT = new URL("../../", import.meta.url);
const built = await shimStatus();

/** Copies a folder tree of plain files. */
async function copy(from: URL, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const src = new URL(
      entry.name + (entry.isDirectory ? "/" : ""),
      from.href.replace(/\/?$/, "/"),
    );
    if (entry.isDirectory) await copy(src, `${to}/${entry.name}`);
    else if (entry.isFile) await Deno.copyFile(src, `${to}/${entry.name}`);
  }
}

/** A checkout with src/backend/ and native/ (sources, plus build/ when `withBuild`). */
async function copyCheckout(withBuild: boolean): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dd-loader-" });
  await copy(new URL("src/backend", ROOT), `${dir}/src/backend`);
  await Deno.mkdir(`${dir}/native`);
  await Deno.copyFile(new URL("native/shim_stamp.ts", ROOT), `${dir}/native/shim_stamp.ts`);
  for (const sub of SOURCE_DIRS) await copy(new URL(`native/${sub}`, ROOT), `${dir}/native/${sub}`);
  if (withBuild) {
    await Deno.mkdir(`${dir}/native/build`);
    await Deno.copyFile(nativeLibraryPath(), nativeLibraryPath(`${dir}/native`));
    await Deno.copyFile(
      new URL("native/build/stamp.json", ROOT),
      `${dir}/native/build/stamp.json`,
    );
  }
  return dir;
}

/** Loads torch-cpu from `dir`'s copy in a fresh process; prints "LOADED" or the error. */
async function loadIn(dir: string): Promise<string> {
  const script = `
    import { createTorchBackend } from ${JSON.stringify(`file://${dir}/src/backend/torch.ts`)};
    try { (await createTorchBackend("cpu")).dispose(); console.log("LOADED"); }
    catch (e) { console.log(e.name + ": " + e.message); }`;
  const env = { ...Deno.env.toObject() };
  delete env.DENO_DIFFUSION_NATIVE;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test({
  name: "a copied checkout with the same sources and libtorch finds its shim fresh and loads it",
  ignore: !built.fresh,
  async fn() {
    const dir = await copyCheckout(true);
    try {
      assert.deepEqual(await shimStatus(`${dir}/native`), {
        path: nativeLibraryPath(`${dir}/native`),
        fresh: true,
        reason: "",
      });
      assert.equal(await loadIn(dir), "LOADED");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "an edited source makes the shim stale: unavailable, says to build, builds nothing",
  ignore: !built.fresh,
  async fn() {
    const dir = await copyCheckout(true);
    try {
      const lib = nativeLibraryPath(`${dir}/native`);
      const before = (await Deno.stat(lib)).mtime?.getTime();
      await Deno.writeTextFile(`${dir}/native/ops/gelu.cpp`, "// edited\n", { append: true });
      const status = await shimStatus(`${dir}/native`);
      assert.equal(status.fresh, false);
      assert.match(status.reason, /sources, flags or libtorch changed/);
      const text = await loadIn(dir);
      assert.match(text, /^BackendUnavailableError: backend torch-cpu is not available: /);
      assert.ok(text.includes("deno task build:native"), text);
      assert.ok(text.includes(lib), text);
      assert.equal((await Deno.stat(lib)).mtime?.getTime(), before, "the shim was rebuilt");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a checkout without a built shim is unavailable with the build command and paths tried", async () => {
  const dir = await copyCheckout(false);
  try {
    const text = await loadIn(dir);
    assert.match(text, /^BackendUnavailableError: backend torch-cpu is not available: /);
    assert.ok(text.includes("deno task build:native"), text);
    assert.ok(text.includes(nativeLibraryPath(`${dir}/native`)), text);
    assert.ok(text.includes("$DENO_DIFFUSION_NATIVE (unset)"), text);
    await assert.rejects(Deno.stat(`${dir}/native/build`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the loader module runs no process and sets no environment variable", async () => {
  const text = await Deno.readTextFile(new URL("src/backend/torch_ffi.ts", ROOT));
  assert.ok(
    !/Deno\.Command|Deno\.env\.set|native\/build\.ts/.test(text),
    "torch_ffi.ts builds or sets env",
  );
  const stamp = await Deno.readTextFile(new URL("native/shim_stamp.ts", ROOT));
  assert.ok(!/Deno\.Command|Deno\.env\.set/.test(stamp), "shim_stamp.ts builds or sets env");
});
