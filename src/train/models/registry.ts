// The one place that turns a model spec (core/model-spec.ts) into a runnable Model.
import type { ModelSpec } from '../../core/model-spec.ts';
import { cnn } from './cnn.ts';
import { gpt } from './gpt.ts';
import { mlp } from './mlp.ts';
import type { Model } from './model.ts';

export function createModel(spec: ModelSpec): Model {
  switch (spec.kind) {
    case 'gpt': return gpt(spec);
    case 'mlp': return mlp(spec);
    case 'cnn': return cnn(spec);
  }
}
