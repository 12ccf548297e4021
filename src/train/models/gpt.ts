// Decoder-only transformer (GPT-2 layout: pre-norm blocks, learned positions, tied input/output embedding, tanh
// GELU). Parameter names and [in, out] weight layout follow Hugging Face's GPT-2 so exported weights map one to one.
import { nn, np, type JaxArray, type Params } from '../runtime/jax.ts';
import { initTensors, type Init } from './init.ts';
import type { Model } from './model.ts';
import type { GptSpec } from '../../core/model-spec.ts';


export function gpt(spec: GptSpec): Model {
  const { vocabSize: V, context: T, width: C, heads: H, layers: L, mlpRatio } = spec;
  const D = C / H;
  const F = mlpRatio * C;
  const std: Init = { kind: 'normal', std: 0.02 };
  // GPT-2 scales the residual projections by 1/sqrt(2L) so the residual stream's variance does not grow with depth.
  const projStd: Init = { kind: 'normal', std: 0.02 / Math.sqrt(2 * L) };
  const one: Init = { kind: 'const', value: 1 };
  const zero: Init = { kind: 'const', value: 0 };
  const specs: Array<readonly [string, readonly number[], Init]> = [
    ['wte.weight', [V, C], std],
    ['wpe.weight', [T, C], { kind: 'normal', std: 0.01 }],
    ['ln_f.weight', [C], one],
    ['ln_f.bias', [C], zero],
  ];
  for (let l = 0; l < L; l++) {
    const p = `h.${l}.`;
    specs.push(
      [`${p}ln_1.weight`, [C], one], [`${p}ln_1.bias`, [C], zero],
      [`${p}attn.c_attn.weight`, [C, 3 * C], std], [`${p}attn.c_attn.bias`, [3 * C], zero],
      [`${p}attn.c_proj.weight`, [C, C], projStd], [`${p}attn.c_proj.bias`, [C], zero],
      [`${p}ln_2.weight`, [C], one], [`${p}ln_2.bias`, [C], zero],
      [`${p}mlp.c_fc.weight`, [C, F], std], [`${p}mlp.c_fc.bias`, [F], zero],
      [`${p}mlp.c_proj.weight`, [F, C], projStd], [`${p}mlp.c_proj.bias`, [C], zero],
    );
  }
  // Additive causal mask: 0 where a position may attend, a large negative number above the diagonal.
  const maskData = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;

  const layerNorm = (x: JaxArray, g: JaxArray, b: JaxArray) => nn.standardize(x, -1, { epsilon: 1e-5 }).mul(g).add(b);
  const linear = (x: JaxArray, w: JaxArray, b: JaxArray) => np.matmul(x, w).add(b);

  return {
    shapes: specs.map(([n, s]) => [n, s] as const),
    classes: V,
    decayed: new Set(specs.filter(([n, s]) => s.length === 2 && n !== 'wpe.weight').map(([n]) => n)),
    inputShape: (b) => [b, T],
    targetShape: (b) => [b, T],
    init: (seed) => initTensors(specs, seed),
    logits(p: Params, idx: JaxArray): JaxArray {
      const [B, t] = idx.shape as [number, number];
      if (t !== T) throw new RangeError(`gpt: sequence length ${t} must equal the context ${T}`);
      const wte = p['wte.weight']!;
      // The embedding lookup is a one-hot matmul: jax-js's jit cannot compile the scatter that gather's gradient needs.
      let x = np.matmul(nn.oneHot(idx, V).astype(wte.dtype), wte.ref).add(p['wpe.weight']!);
      const mask = np.array(maskData, { shape: [1, 1, T, T] }).astype(wte.dtype);
      for (let l = 0; l < L; l++) {
        const w = (n: string) => p[`h.${l}.${n}`]!;
        const qkv = linear(layerNorm(x.ref, w('ln_1.weight'), w('ln_1.bias')), w('attn.c_attn.weight'), w('attn.c_attn.bias'))
          .reshape([B, T, 3, H, D]);
        const q = qkv.ref.slice([], [], 0).transpose([0, 2, 1, 3]);
        const k = qkv.ref.slice([], [], 1).transpose([0, 2, 3, 1]);
        const v = qkv.slice([], [], 2).transpose([0, 2, 1, 3]);
        const att = nn.softmax(np.matmul(q, k).mul(1 / Math.sqrt(D)).add(mask.ref), -1);
        const y = np.matmul(att, v).transpose([0, 2, 1, 3]).reshape([B, T, C]);
        x = x.add(linear(y, w('attn.c_proj.weight'), w('attn.c_proj.bias')));
        const h = nn.gelu(linear(layerNorm(x.ref, w('ln_2.weight'), w('ln_2.bias')), w('mlp.c_fc.weight'), w('mlp.c_fc.bias')), { approximate: true });
        x = x.add(linear(h, w('mlp.c_proj.weight'), w('mlp.c_proj.bias')));
      }
      mask.dispose();
      x = layerNorm(x, p['ln_f.weight']!, p['ln_f.bias']!);
      return np.matmul(x, wte.transpose());
    },
  };
}
