/**
 * The grouped optimizer: torch.optim.AdamW / Adam / SGD semantics in float32 (PLAN-SPEC
 * "Optimizers"), with a learning rate and weight decay per parameter. tfjs optimizers have one
 * LR for every variable and no way to start one variable's state fresh, so this replaces them.
 *
 * The elementwise arithmetic follows torch 1.13's single-tensor kernels operation by operation
 * (same order, same float32 scalars) so a run matches PyTorch to float32 rounding; the scalar
 * bias corrections are computed in float64 as torch does in Python. On wasm the Adam/AdamW
 * and SGD updates run as one kernel each, doing exactly those operations (kernels/optimizer-step.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from '../core/plan.ts';
import { LayerwiseError, assertNever } from '../core/errors.ts';
import { fusedAdamStep, fusedSgdStep } from './kernels/optimizer-step.ts';

export interface OptimizerSettings {
  type: OptimizerName;
  betas: [number, number];
  eps: number;
  momentum: number;
  nesterov: boolean;
}

export interface ParamUpdate {
  /** Stable key of the parameter's state (its full weight name). */
  name: string;
  variable: tf.Variable;
  grad: tf.Tensor;
  /** This step's learning rate for the parameter: base LR × multiplier × schedule factor. */
  lr: number;
  weightDecay: number;
}

/** Per-parameter state; torch's `state[p]`. */
interface ParamState {
  /** Optimizer steps this parameter has taken since its state started. */
  steps: number;
  /** Adam's exp_avg, or SGD's momentum_buffer (absent for SGD without momentum). */
  first?: tf.Tensor;
  /** Adam's exp_avg_sq. */
  second?: tf.Tensor;
}

/** A deep copy of every parameter's state; owns its tensors until `disposeSnapshot`. */
export interface OptimizerSnapshot {
  readonly states: ReadonlyMap<string, Readonly<ParamState>>;
}

/** One parameter's state as plain float32 data, for a checkpoint (checkpoint.ts). */
export interface ParamStateData {
  steps: number;
  first?: { shape: number[]; values: Float32Array };
  second?: { shape: number[]; values: Float32Array };
}

/** Scalars every step reuses; created at the first step so they live on the chosen backend. */
interface Constants {
  beta1: tf.Scalar;
  oneMinusBeta1: tf.Scalar;
  beta2: tf.Scalar;
  oneMinusBeta2: tf.Scalar;
  eps: tf.Scalar;
  momentum: tf.Scalar;
}

export class GroupedOptimizer {
  private readonly settings: OptimizerSettings;
  private readonly states = new Map<string, ParamState>();
  private constants: Constants | undefined;

  constructor(settings: OptimizerSettings) {
    if (settings.type === 'sgd' && settings.nesterov && !(settings.momentum > 0)) {
      // torch refuses this too: Nesterov without momentum is plain SGD under a misleading name.
      throw new LayerwiseError('nesterov needs a momentum greater than 0', { field: 'training.nesterov' });
    }
    this.settings = { ...settings, betas: [settings.betas[0], settings.betas[1]] };
  }

  /** One optimizer step over the given params (only params that train this step). */
  step(updates: ParamUpdate[]): void {
    const c = this.constantsOnBackend();
    for (const u of updates) {
      let state = this.states.get(u.name);
      if (state === undefined) {
        state = { steps: 0 };
        this.states.set(u.name, state);
      }
      state.steps += 1;
      switch (this.settings.type) {
        case 'adamw':
        case 'adam':
          this.adamStep(u, state, c);
          break;
        case 'sgd':
          this.sgdStep(u, state, c);
          break;
        default:
          assertNever(this.settings.type, 'optimizer');
      }
    }
  }

  /** Forget a parameter's state (moments, step count): used when it is unfrozen again. */
  resetState(name: string): void {
    const state = this.states.get(name);
    if (state === undefined) return;
    disposeState(state);
    this.states.delete(name);
  }

  stepsTaken(name: string): number {
    return this.states.get(name)?.steps ?? 0;
  }

  /** Deep copy of all state (for the LR finder, which restores weights + state after). */
  snapshot(): OptimizerSnapshot {
    const states = new Map<string, ParamState>();
    for (const [name, state] of this.states) states.set(name, copyState(state));
    return { states };
  }

  /** Replace all state by a copy of the snapshot's; the snapshot stays usable. */
  restore(s: OptimizerSnapshot): void {
    for (const state of this.states.values()) disposeState(state);
    this.states.clear();
    for (const [name, state] of s.states) this.states.set(name, copyState(state));
  }

  /** Every parameter's state copied out of the backend: step count and moments, bit for bit. */
  exportState(): Map<string, ParamStateData> {
    const out = new Map<string, ParamStateData>();
    const data = (t: tf.Tensor | undefined) => (t === undefined ? undefined : { shape: [...t.shape], values: Float32Array.from(t.dataSync()) });
    for (const [name, state] of this.states) {
      const d: ParamStateData = { steps: state.steps };
      const first = data(state.first);
      const second = data(state.second);
      if (first) d.first = first;
      if (second) d.second = second;
      out.set(name, d);
    }
    return out;
  }

  /** Replace all state by `states` (from `exportState`, possibly in another process). */
  importState(states: ReadonlyMap<string, ParamStateData>): void {
    for (const state of this.states.values()) disposeState(state);
    this.states.clear();
    for (const [name, d] of states) {
      const state: ParamState = { steps: d.steps };
      if (d.first) state.first = tf.keep(tf.tensor(d.first.values, d.first.shape, 'float32'));
      if (d.second) state.second = tf.keep(tf.tensor(d.second.values, d.second.shape, 'float32'));
      this.states.set(name, state);
    }
  }

  disposeSnapshot(s: OptimizerSnapshot): void {
    for (const state of s.states.values()) disposeState(state);
  }

  dispose(): void {
    for (const state of this.states.values()) disposeState(state);
    this.states.clear();
    if (this.constants !== undefined) {
      for (const t of Object.values(this.constants)) t.dispose();
      this.constants = undefined;
    }
  }

  // torch 1.13 _single_tensor_adamw / _single_tensor_adam.
  private adamStep(u: ParamUpdate, state: ParamState, c: Constants): void {
    const [beta1, beta2] = this.settings.betas;
    const biasCorrection1 = 1 - beta1 ** state.steps;
    const biasCorrection2 = 1 - beta2 ** state.steps;
    const negStepSize = -(u.lr / biasCorrection1);
    const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
    const decoupled = this.settings.type === 'adamw';
    const { first, second } = state;
    const fused = fusedAdamStep(u.variable, u.grad, first, second, {
      beta1, oneMinusBeta1: 1 - beta1, beta2, oneMinusBeta2: 1 - beta2, eps: this.settings.eps, negStepSize,
      biasCorrection2Sqrt,
      keep: decoupled && u.lr * u.weightDecay !== 0 ? 1 - u.lr * u.weightDecay : undefined,
      l2: !decoupled && u.weightDecay !== 0 ? u.weightDecay : undefined,
    });
    if (fused !== undefined) {
      const [p, m, v] = fused;
      u.variable.assign(p);
      p.dispose();
      first?.dispose();
      second?.dispose();
      state.first = m;
      state.second = v;
      return;
    }
    const next = tf.tidy(() => {
      let p: tf.Tensor = u.variable;
      let g: tf.Tensor = u.grad;
      // torch multiplies by exactly 1 when there is no decay; skipping it changes no bit.
      if (decoupled && u.lr * u.weightDecay !== 0) p = tf.mul(p, 1 - u.lr * u.weightDecay);
      if (!decoupled && u.weightDecay !== 0) g = tf.add(g, tf.mul(p, u.weightDecay));
      // Fresh state is zeros, and 0·β + x is exactly x: the first step skips the zeros.
      const m = first === undefined ? tf.mul(g, c.oneMinusBeta1) : tf.add(tf.mul(first, c.beta1), tf.mul(g, c.oneMinusBeta1));
      const gg = tf.mul(tf.mul(g, c.oneMinusBeta2), g);
      const v = second === undefined ? gg : tf.add(tf.mul(second, c.beta2), gg);
      const denom = tf.add(tf.div(tf.sqrt(v), biasCorrection2Sqrt), c.eps);
      u.variable.assign(tf.add(p, tf.div(tf.mul(m, negStepSize), denom)));
      return { m, v };
    });
    first?.dispose();
    second?.dispose();
    state.first = next.m;
    state.second = next.v;
  }

  // torch 1.13 _single_tensor_sgd with dampening 0.
  private sgdStep(u: ParamUpdate, state: ParamState, c: Constants): void {
    const { momentum, nesterov } = this.settings;
    const previous = state.first;
    const fused = fusedSgdStep(u.variable, u.grad, previous, {
      lr: u.lr,
      l2: u.weightDecay !== 0 ? u.weightDecay : undefined,
      momentum: momentum !== 0 ? momentum : undefined,
      nesterov,
    });
    if (fused !== undefined) {
      const [p, buf] = fused;
      u.variable.assign(p);
      p.dispose();
      previous?.dispose();
      if (buf !== undefined) state.first = buf;
      else delete state.first;
      return;
    }
    const buffer = tf.tidy(() => {
      const p: tf.Tensor = u.variable;
      let d: tf.Tensor = u.weightDecay !== 0 ? tf.add(u.grad, tf.mul(p, u.weightDecay)) : u.grad;
      let buf: tf.Tensor | undefined;
      if (momentum !== 0) {
        // The first momentum step copies d_p (torch.clone): the caller may dispose its gradient.
        buf = previous === undefined ? tf.clone(d) : tf.add(tf.mul(previous, c.momentum), d);
        d = nesterov ? tf.add(d, tf.mul(buf, c.momentum)) : buf;
      }
      u.variable.assign(tf.add(p, tf.mul(d, -u.lr)));
      return buf;
    });
    previous?.dispose();
    if (buffer !== undefined) state.first = buffer;
    else delete state.first;
  }

  private constantsOnBackend(): Constants {
    if (this.constants === undefined) {
      const [beta1, beta2] = this.settings.betas;
      // tf.keep: a caller may step inside its own tidy, which must not take these with it.
      this.constants = {
        beta1: tf.keep(tf.scalar(beta1)),
        oneMinusBeta1: tf.keep(tf.scalar(1 - beta1)),
        beta2: tf.keep(tf.scalar(beta2)),
        oneMinusBeta2: tf.keep(tf.scalar(1 - beta2)),
        eps: tf.keep(tf.scalar(this.settings.eps)),
        momentum: tf.keep(tf.scalar(this.settings.momentum)),
      };
    }
    return this.constants;
  }
}

function copyState(state: Readonly<ParamState>): ParamState {
  const copy: ParamState = { steps: state.steps };
  if (state.first !== undefined) copy.first = tf.keep(tf.clone(state.first));
  if (state.second !== undefined) copy.second = tf.keep(tf.clone(state.second));
  return copy;
}

function disposeState(state: ParamState): void {
  state.first?.dispose();
  state.second?.dispose();
}
