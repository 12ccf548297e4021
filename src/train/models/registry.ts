// Model specs as they appear in run configs, validated, and the one place that turns a spec into a Model.
import { z } from 'zod';
import { cnn, CnnSpec } from './cnn.ts';
import { gpt, GptSpec } from './gpt.ts';
import { mlp, MlpSpec } from './mlp.ts';
import type { Model } from './model.ts';

export const ModelSpec = z.union([GptSpec, MlpSpec, CnnSpec]);
export type ModelSpec = z.infer<typeof ModelSpec>;

export function createModel(spec: ModelSpec): Model {
  switch (spec.kind) {
    case 'gpt': return gpt(spec);
    case 'mlp': return mlp(spec);
    case 'cnn': return cnn(spec);
  }
}
