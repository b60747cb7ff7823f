/**
 * tfjs's gradient tape opened and closed by two calls instead of one closure.
 *
 * `tf.variableGrads(f)` records the ops of `f` while `f` runs and differentiates afterwards, so
 * `f` must run synchronously inside it. The tfjs-webgpu worker (webgpu_worker.ts) receives a
 * loss function's ops one request at a time from another thread and must stay free to `await`
 * GPU reads between them, so it cannot sit inside a closure: it opens the tape here
 * ({@link OpenTape}), runs the ops as they arrive, and asks for the gradients once the loss
 * exists. The engine state touched (`gradientDepth`, `activeTape`, the saved tensors of each
 * tape node) is the one `engine.gradients` itself uses: with the depth already 1 when
 * `gradients` starts its own tape, the engine keeps the nodes recorded so far, differentiates
 * through them, and leaves the clean-up (done by the engine when the depth returns to 0) to
 * {@link OpenTape.close}. `tfjs.ts`'s `noGrad` parks the same two fields.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";

/** The parts of the engine state the tape lives in (public fields of tfjs's EngineState). */
interface TapeState {
  gradientDepth: number;
  activeTape: { saved?: tf.Tensor[] }[] | null;
}

function engineState(): TapeState {
  return tf.engine().state as unknown as TapeState;
}

/**
 * A recording gradient tape. Ops run after the constructor and before {@link gradients} or
 * {@link close} are recorded, exactly as inside `tf.variableGrads`.
 *
 * @example
 * ```ts
 * import * as tf from "npm:@tensorflow/tfjs@4.22.0";
 * import { OpenTape } from "./tfjs_tape.ts";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1, -2, 3]));
 * const tape = new OpenTape();
 * const loss = tf.sum(tf.mul(w, w)); // recorded
 * const [grad] = tape.gradients(loss, [w]);
 * console.log(grad?.arraySync()); // [2, -4, 6]
 * ```
 */
export class OpenTape {
  #open = true;

  /** Starts recording. Throws when a tape is already recording (gradients do not nest here). */
  constructor() {
    const state = engineState();
    if (state.gradientDepth !== 0) {
      throw new Error("a gradient tape is already recording; valueAndGrad calls cannot nest");
    }
    state.activeTape = [];
    state.gradientDepth = 1;
  }

  /** Whether the tape still records (neither {@link gradients} nor {@link close} ran). */
  get open(): boolean {
    return this.#open;
  }

  /**
   * d loss / d v for each of `vars` (null where `loss` does not depend on it), then closes the
   * tape. `loss` must be a scalar made while the tape recorded.
   */
  gradients(loss: tf.Tensor, vars: readonly tf.Variable[]): (tf.Tensor | null)[] {
    if (!this.#open) throw new Error("the gradient tape was already closed");
    try {
      // The closure hands back the loss already recorded: the engine opens its own tape level
      // on top of ours (depth 1 -> 2 keeps the nodes) and differentiates the whole tape.
      const { grads } = tf.engine().gradients(() => loss, [...vars], undefined, true);
      return grads.map((g) => g ?? null);
    } finally {
      this.close();
    }
  }

  /** Stops recording and frees what the tape saved for the backward pass. Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    const state = engineState();
    for (const node of state.activeTape ?? []) {
      for (const t of node.saved ?? []) t.dispose();
    }
    state.activeTape = null;
    state.gradientDepth = 0;
  }
}

/**
 * Suspends recording until the returned function is called (the tape state is parked and then
 * restored), for ops that must not become tape nodes: `noGrad` sections and the transposes of
 * a read.
 *
 * @example
 * ```ts
 * import { pauseTape } from "./tfjs_tape.ts";
 * const resume = pauseTape();
 * try {
 *   // ops here are not recorded
 * } finally {
 *   resume();
 * }
 * ```
 */
export function pauseTape(): () => void {
  const state = engineState();
  const [depth, tape] = [state.gradientDepth, state.activeTape];
  state.gradientDepth = 0;
  return () => {
    state.gradientDepth = depth;
    state.activeTape = tape;
  };
}
