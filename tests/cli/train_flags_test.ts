import { deepEqual, ok } from "node:assert/strict";
import { MODEL_FLAGS, TRAIN_SPEC } from "../../src/cli/train_flags.ts";
import { helpText } from "../../src/cli/args.ts";

Deno.test("every flag that defines the model is a flag of train, so --resume can refuse it", () => {
  const flags = Object.keys(TRAIN_SPEC.flags);
  deepEqual(MODEL_FLAGS.filter((f) => !flags.includes(f)), []);
  deepEqual(new Set(MODEL_FLAGS).size, MODEL_FLAGS.length);
});

Deno.test("train's --help lists every flag with its help text", () => {
  const help = helpText(TRAIN_SPEC);
  for (const [name, spec] of Object.entries(TRAIN_SPEC.flags)) {
    ok(help.includes(`--${name}`), `--${name} missing from the help`);
    ok(spec.help.length > 0, `--${name} has no help text`);
  }
});
