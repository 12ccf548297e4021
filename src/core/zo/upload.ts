// The coordinator's reading of a lease's upload when leases may be zeroth-order: a lease whose recipe carries `zo`
// takes only a (seed, scalar) update (wire.ts), replayed here into the dense delta it stands for, so every strategy
// folds it like any other update; any other lease takes what decodeUpdate takes. Failures are ProtocolErrors with
// code invalid_update, and nothing is kept from a refused upload.
import type { ParamLayout } from '../tensor.ts';
import type { CodecSpec } from '../codecs/spec.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { Recipe } from '../protocol/schemas.ts';
import { checkedNorm, decodeUpdate, type DecodedUpdate } from '../protocol/update-wire.ts';
import { mergeBySeed, replayDelta } from './mezo.ts';
import type { SeedStepUpdate } from './seed-step.ts';
import type { ZoSettings } from './settings.ts';
import { decodeZoUpdate, isZoUpdate, ZoWireError } from './wire.ts';

/** What a lease says about its upload's format: its codec, and its recipe (zo and the learning rate replayed with). */
export interface UploadTerms {
  codec?: CodecSpec | undefined;
  recipe?: Pick<Recipe, 'lr' | 'localSteps' | 'zo'> | undefined;
}

export function decodeLeaseUpload(bytes: Uint8Array, layout: ParamLayout, maxNorm: number, terms: UploadTerms): DecodedUpdate {
  const zo = terms.recipe?.zo;
  if (zo !== undefined) return decodeZoLeaseUpdate(bytes, layout, maxNorm, zo, terms.recipe!);
  if (isZoUpdate(bytes)) throw new ProtocolError('invalid_update', 'this lease is not zeroth-order, but the upload is a (seed, scalar) update');
  return decodeUpdate(bytes, layout, maxNorm, terms.codec);
}

/**
 * Decodes a (seed, scalar) upload against its lease and replays it: delta = -lr * sum_t g_t z(seed_t) with the
 * lease's learning rate (the device cannot choose its own step size). The pool must be the lease's, and there may be
 * at most the lease's localSteps distinct seeds, which bounds the coordinator's replay work (one pass over the
 * parameters per distinct seed) whatever a device sends.
 */
export function decodeZoLeaseUpdate(
  bytes: Uint8Array, layout: ParamLayout, maxNorm: number, zo: ZoSettings, recipe: Pick<Recipe, 'lr' | 'localSteps'>,
): DecodedUpdate {
  const invalid = (message: string) => new ProtocolError('invalid_update', message);
  if (!isZoUpdate(bytes)) throw invalid('this lease is zeroth-order: the upload must be a (seed, scalar) update ("TZO1"), not a dense one');
  let u;
  try {
    u = decodeZoUpdate(bytes);
  } catch (e) {
    if (e instanceof ZoWireError) throw invalid(`zeroth-order update is malformed (${e.reason}): ${e.message}`);
    throw e;
  }
  if (u.poolSize !== zo.poolSize || u.poolSeed !== zo.poolSeed) {
    throw invalid(`the update uses seed pool (K=${u.poolSize}, seed ${u.poolSeed}), the lease's is (K=${zo.poolSize}, seed ${zo.poolSeed})`);
  }
  const distinct = mergeBySeed(u.pairs).size;
  if (distinct > recipe.localSteps) throw invalid(`the update has ${distinct} distinct seeds, more than the lease's ${recipe.localSteps} steps`);
  const delta = replayDelta(layout.size, u.pairs, recipe.lr, zo);
  const norm = checkedNorm(delta, maxNorm);
  return { delta, norm, numExamples: u.numExamples, localSteps: u.localSteps, metrics: u.metrics };
}

/**
 * What a seed step (seed-step.ts) records of an upload that decodeLeaseUpload accepted: the inputs of its replay
 * (pairs, the lease's lr and pool) and of its weight (counts, base version). Undefined when the lease is not
 * zeroth-order. Decoding the few hundred bytes again is cheaper than widening DecodedUpdate for every codec.
 */
export function seedStepUpdateOf(bytes: Uint8Array, terms: UploadTerms, baseVersion: number): SeedStepUpdate | undefined {
  const zo = terms.recipe?.zo;
  if (zo === undefined || !isZoUpdate(bytes)) return undefined;
  const u = decodeZoUpdate(bytes);
  return { numExamples: u.numExamples, localSteps: u.localSteps, baseVersion, lr: terms.recipe!.lr, poolSize: zo.poolSize, poolSeed: zo.poolSeed, pairs: u.pairs };
}
