// What training a model costs a device: memory (to pick a submodel that fits) and arithmetic (to scale a device's
// measured speed from the run's model to a submodel). Estimates, deliberately simple and conservative: they decide
// between submodels that differ by about 4x in size (the width ladder halves every dimension), so a model within
// tens of percent is enough, and the safety factor absorbs the runtime's temporaries and allocator slack.
import type { CnnSpec, GptSpec, ModelSpec } from '../model-spec.ts';
import { cnnFeatureMap, parameterCount } from '../submodel/shapes.ts';

export interface MemoryModel {
  /**
   * Optimizer state in float32 copies of the parameters: AdamW keeps two moments (Loshchilov & Hutter, ICLR 2019),
   * momentum-free SGD none. Defaults to 2.
   */
  readonly optimizerSlots?: number;
  /** Multiplies the estimate (temporaries, fragmentation, the runtime itself). Defaults to 1.5. */
  readonly safetyFactor?: number;
}

export interface MemoryEstimate {
  readonly params: number;
  /** Weights, gradients and optimizer moments, float32. */
  readonly stateBytes: number;
  /** Activations kept for the backward pass, for the whole batch. */
  readonly activationBytes: number;
  /** (stateBytes + activationBytes) * safetyFactor, in MiB. */
  readonly totalMiB: number;
}

const MIB = 1024 * 1024;

/** Memory to train `spec` with batches of `batchSize` examples. */
export function trainingMemory(spec: ModelSpec, batchSize: number, model: MemoryModel = {}): MemoryEstimate {
  const { optimizerSlots = 2, safetyFactor = 1.5 } = model;
  const params = parameterCount(spec);
  // One float32 each for the weight and its gradient, plus the optimizer's moments.
  const stateBytes = params * 4 * (2 + optimizerSlots);
  const activationBytes = activationFloatsPerExample(spec) * batchSize * 4;
  return { params, stateBytes, activationBytes, totalMiB: ((stateBytes + activationBytes) * safetyFactor) / MIB };
}

/**
 * Floats the backward pass keeps per example. GPT, per token and block: about 16 C for the LayerNorms, q|k|v, the
 * attention output, the projections and the MLP's 4C pre- and post-GELU (Korthikanti et al., "Reducing Activation
 * Recomputation in Large Transformer Models", 2022, count 34 sbh bytes in 16-bit, i.e. 17 floats per channel) plus the
 * attention scores and their softmax, 2 H T; then the logits and their softmax, 2 V per token. MLP and CNN: every
 * layer's output before and after its nonlinearity.
 */
export function activationFloatsPerExample(spec: ModelSpec): number {
  switch (spec.kind) {
    case 'gpt': {
      const { context: T, width: C, heads: H, layers: L, vocabSize: V } = spec;
      return T * (C + L * (16 * C + 2 * H * T) + 2 * V);
    }
    case 'mlp': return spec.inputs + 2 * (spec.hidden.reduce((a, b) => a + b, 0) + spec.classes);
    case 'cnn': return cnnActivations(spec);
  }
}

function cnnActivations(spec: CnnSpec): number {
  let [h, w] = [spec.height, spec.width];
  let floats = spec.channels * h * w;
  for (const layer of spec.conv) {
    [h, w] = [Math.ceil(h / layer.stride), Math.ceil(w / layer.stride)];
    floats += 2 * layer.out * h * w;
  }
  return floats + 2 * (spec.hidden.reduce((a, b) => a + b, 0) + spec.classes);
}

/**
 * Multiply-accumulates of one forward pass over one example. Training costs about three times this (the backward
 * pass computes two products per forward one: Kaplan et al., "Scaling Laws for Neural Language Models", 2020, C = 6N
 * per token), a factor that cancels when comparing two models, which is what this is for.
 */
export function forwardMacsPerExample(spec: ModelSpec): number {
  switch (spec.kind) {
    case 'gpt': return gptMacs(spec);
    case 'mlp': {
      const dims = [spec.inputs, ...spec.hidden, spec.classes];
      return dims.slice(1).reduce((s, d, i) => s + dims[i]! * d, 0);
    }
    case 'cnn': {
      let [c, h, w] = [spec.channels, spec.height, spec.width];
      let macs = 0;
      for (const layer of spec.conv) {
        [h, w] = [Math.ceil(h / layer.stride), Math.ceil(w / layer.stride)];
        macs += layer.out * c * layer.kernel * layer.kernel * h * w;
        c = layer.out;
      }
      const map = cnnFeatureMap(spec);
      const dims = [c * map.height * map.width, ...spec.hidden, spec.classes];
      return macs + dims.slice(1).reduce((s, d, i) => s + dims[i]! * d, 0);
    }
  }
}

function gptMacs(spec: GptSpec): number {
  const { context: T, width: C, layers: L, vocabSize: V, mlpRatio } = spec;
  // Per token and block: q|k|v and the output projection (4 C^2), the MLP (2 C F), scores and the weighted sum over
  // all T positions (2 T C: the causal mask is applied to a full T x T product). Embedding (a one-hot matmul in our
  // GPT) and the tied output head: V C each.
  return T * (L * (4 * C * C + 2 * C * mlpRatio * C + 2 * T * C) + 2 * V * C);
}
