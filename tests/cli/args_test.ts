import assert from "node:assert/strict";
import { type CommandSpec, int, parseCommand, UsageError } from "../../src/cli/args.ts";

const SPEC: CommandSpec = {
  name: "demo",
  summary: "",
  usage: "demo [--n N]",
  flags: {
    n: { type: "string", help: "count" },
    seed: { type: "string", help: "seed", default: "0" },
    lr: { type: "string", help: "rate" },
    flag: { type: "boolean", help: "a switch" },
  },
};

Deno.test("a negative number after a flag is its value, so the range check names the flag", () => {
  const parsed = parseCommand(["--n", "-5"], SPEC);
  assert.equal(parsed.values.n, "-5");
  assert.throws(() => int(parsed, "n", 1), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /--n must be an integer >= 1, got '-5'/);
    assert.doesNotMatch(e.message, /ambiguous/);
    return true;
  });
  assert.equal(parseCommand(["--lr", "-1e-3"], SPEC).values.lr, "-1e-3");
  assert.equal(parseCommand(["--lr", "-.5"], SPEC).values.lr, "-.5");
});

Deno.test("a flag-like word after a string flag is still a missing value, not swallowed", () => {
  assert.throws(() => parseCommand(["--n", "--flag"], SPEC), UsageError);
});

Deno.test("an empty integer value is an error, not 0", () => {
  const parsed = parseCommand(["--seed", ""], SPEC);
  assert.throws(() => int(parsed, "seed", 0), /--seed must be an integer >= 0, got ''/);
  assert.throws(() => int(parseCommand(["--seed", "  "], SPEC), "seed", 0), /got ' {2}'/);
  assert.equal(int(parseCommand(["--seed", "7"], SPEC), "seed", 0), 7);
});
