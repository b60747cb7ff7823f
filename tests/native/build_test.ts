import assert from "node:assert/strict";
import {
  compileArgs,
  findLibtorch,
  type LibtorchLocation,
  nativeLibraryPath,
  staleReason,
} from "../../native/build.ts";

const tried: string[] = [];
const where = await findLibtorch(tried);

Deno.test("compileArgs() passes the ABI, include and library dirs and keeps CUDA linked", () => {
  const loc: LibtorchLocation = {
    source: "$LIBTORCH",
    includeDirs: ["/opt/libtorch/include", "/opt/libtorch/include/torch/csrc/api/include"],
    libDir: "/opt/libtorch/lib",
    cxx11Abi: 0,
    cuda: true,
  };
  const args = compileArgs(loc, "/tmp/out.so");
  assert.ok(args.includes("-D_GLIBCXX_USE_CXX11_ABI=0"));
  assert.ok(args.includes("-I/opt/libtorch/include/torch/csrc/api/include"));
  assert.ok(args.includes("-Wl,-rpath,/opt/libtorch/lib"));
  const noAsNeeded = args.indexOf("-Wl,--no-as-needed");
  assert.ok(noAsNeeded >= 0 && noAsNeeded < args.indexOf("-ltorch_cuda"));
  assert.equal(args[args.indexOf("-o") + 1], "/tmp/out.so");
  assert.ok(!compileArgs({ ...loc, cuda: false }, "x").includes("-ltorch_cuda"));
});

Deno.test("findLibtorch() reports every place it looked when nothing is found", () => {
  if (where) {
    assert.ok(where.includeDirs.length > 0 && where.libDir.length > 0);
  } else {
    assert.ok(tried.some((t) => t.includes("$LIBTORCH")), tried.join("; "));
    assert.ok(tried.some((t) => t.includes("python3")), tried.join("; "));
  }
});

Deno.test({
  name: "staleReason() notices a changed libtorch location",
  ignore: where === null,
  async fn() {
    // Point at a libtorch location whose flags differ: the existing stamp no longer matches.
    const other = { ...where!, libDir: "/definitely/not/here" };
    const reason = await staleReason(other);
    assert.ok(reason !== null, `expected stale for ${nativeLibraryPath()}`);
  },
});
