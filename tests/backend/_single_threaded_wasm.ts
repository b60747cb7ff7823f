/**
 * Imported first by the test files whose subject is tfjs-wasm's single-threaded build (the conv
 * worker serves only that one). The first initialisation in an isolate picks the build, and
 * `deno test` gives each test file its own isolate, so this picks it for the importing file
 * alone; the process environment, shared by all files, stays untouched.
 *
 * @module
 */
import { initWasm } from "../../src/backend/tfjs_threads.ts";

await initWasm(1);
