// `tessera export` and import: a GPT with a BPE tokenizer written as a Hugging Face GPT-2 directory, loaded back
// bit for bit, and loaded by plain PyTorch (scripts/fixtures/export_check.py), which must reproduce Tessera's logits
// within 1e-4 and decode the input ids to the same text. Also: corrupt exports fail with ExportError, files saved by
// transformers (prefixed names, lm_head, mask buffers) import, and a coordinator run's version exports.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GptSpec } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { decodeSafetensors, encodeSafetensors } from '../../src/core/safetensors.ts';
import type { Tensor } from '../../src/core/tensor.ts';
import { trainBpe } from '../../src/core/tokenizer/bpe-train.ts';
import { CharVocab } from '../../src/data/char-vocab.ts';
import { loadShakespeareText } from '../../src/data/shakespeare.node.ts';
import { exportRunVersion, readExport, writeExport } from '../../src/cli/commands/export.ts';
import { ExportError, importGpt } from '../../src/train/hf-export.ts';
import { gpt } from '../../src/train/models/gpt.ts';
import { initRuntime, jit, np, toDevice } from '../../src/train/runtime/jax.ts';
import { startCoordinator } from '../../src/server/http/serve.node.ts';
import { loadTask } from '../../src/device/tasks/registry.node.ts';
import type { BpeTask } from '../../src/device/tasks/shakespeare-bpe.node.ts';

const PYTHON = '/usr/bin/python3';
const CHECK = new URL('../../scripts/fixtures/export_check.py', import.meta.url).pathname;
const torchMissing = (() => {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (probe.error) return `${PYTHON} is not installed`;
  return probe.status === 0 ? false : `${PYTHON} has no torch/numpy: ${probe.stderr.trim().split('\n').pop()}`;
})();

const corpus = await loadShakespeareText();
const bpe = trainBpe(corpus.slice(0, 50_000), { vocabSize: 300 });
const spec = GptSpec.parse({ kind: 'gpt', vocabSize: bpe.vocabSize, context: 16, width: 32, heads: 4, layers: 2 });
// Away from the init (unit gains, zero biases) so every parameter matters to the logits.
const rng = new Rng(7);
const params = new Map<string, Tensor>([...gpt(spec).init(3)].map(([name, t]) => [
  name, { shape: t.shape, data: t.data.map((v) => v + 0.1 * rng.normal()) },
]));
const dir = mkdtempSync(join(tmpdir(), 'tessera-export-'));
writeExport(dir, spec, params, { kind: 'bpe', bpe });

describe('export and import', () => {
  it('writes the Hugging Face GPT-2 files', () => {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(config.model_type, 'gpt2', 'model_type');
    assert.deepEqual([config.vocab_size, config.n_positions, config.n_embd, config.n_layer, config.n_head, config.n_inner], [300, 16, 32, 2, 4, 128], 'sizes');
    const tensors = decodeSafetensors(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))));
    assert.equal(tensors.metadata.format, 'pt', 'transformers needs format=pt');
    assert.ok(tensors.tensors.has('h.1.attn.c_attn.weight'), 'hub GPT-2 parameter names');
    assert.equal(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).model.type, 'BPE', 'BPE tokenizer.json');
  });

  it('imports back exactly', () => {
    const back = readExport(dir);
    assert.deepEqual(back.spec, spec, 'same spec');
    assert.equal(back.params.size, params.size, 'same tensors');
    for (const [name, t] of params) assert.deepEqual(back.params.get(name), t, `${name} round-trips bit for bit`);
    assert.equal(back.tokenizer.kind, 'bpe', 'BPE tokenizer');
    if (back.tokenizer.kind === 'bpe') assert.deepEqual(back.tokenizer.bpe.merges, bpe.merges, 'same merges');
    assert.throws(() => writeExport(dir, spec, params, { kind: 'bpe', bpe }), ExportError, 'no silent overwrite');
  });

  it('PyTorch reproduces Tessera\'s logits within 1e-4', { skip: torchMissing }, async (t) => {
    const text = corpus.slice(60_000, 61_000);
    const all = bpe.encode(text);
    const rows = [Array.from(all.subarray(0, 16)), Array.from(all.subarray(16, 32))];
    await initRuntime();
    const model = gpt(spec);
    const logits = jit(model.logits)(toDevice(params), np.array(Int32Array.from(rows.flat()), { shape: [2, 16], dtype: np.int32 }));
    const ours = Float32Array.from((await logits.data()) as ArrayLike<number>);
    const py = spawnSync(PYTHON, [CHECK, dir], { input: JSON.stringify({ ids: rows }), encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(py.status, 0, `export_check.py failed: ${py.stderr}`);
    const out = JSON.parse(py.stdout) as { logits: number[]; shape: number[]; text: string[] };
    assert.deepEqual(out.shape, [2, 16, 300], 'logits shape');
    let worst = 0;
    for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - out.logits[i]!));
    t.diagnostic(`max |logit difference| ${worst.toExponential(2)} over ${ours.length} logits`);
    assert.ok(worst < 1e-4, `max |logit difference| ${worst.toExponential(2)}`);
    assert.deepEqual(out.text, rows.map((r) => bpe.decode(r)), 'Python decodes the ids with tokenizer.json to the same text');
  });

  it('reads what transformers saves: prefixed names, a tied lm_head, mask buffers', () => {
    const files = {
      'config.json': readFileSync(join(dir, 'config.json'), 'utf8'),
      'tokenizer.json': readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
    };
    const hf = new Map<string, Tensor>([...params].map(([n, t]) => [`transformer.${n}`, t]));
    hf.set('lm_head.weight', params.get('wte.weight')!);
    hf.set('transformer.h.0.attn.bias', { shape: [1, 1, 16, 16], data: new Float32Array(256) });
    const back = importGpt({ ...files, 'model.safetensors': encodeSafetensors(hf) });
    assert.deepEqual(back.params.get('h.0.attn.c_attn.weight'), params.get('h.0.attn.c_attn.weight'), 'prefix stripped');
    const untied = new Map(hf);
    untied.set('lm_head.weight', { shape: [300, 32], data: new Float32Array(300 * 32) });
    assert.throws(() => importGpt({ ...files, 'model.safetensors': encodeSafetensors(untied) }), /ties them/, 'untied head');
  });

  it('rejects corrupt exports with ExportError', () => {
    const good = {
      'config.json': readFileSync(join(dir, 'config.json'), 'utf8'),
      'model.safetensors': new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
      'tokenizer.json': readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
    };
    const config = JSON.parse(good['config.json']);
    const withConfig = (patch: object) => ({ ...good, 'config.json': JSON.stringify({ ...config, ...patch }) });
    const fewer = new Map(params);
    fewer.delete('h.1.mlp.c_fc.bias');
    const cases: Array<[string, object]> = [
      ['no config', { ...good, 'config.json': undefined }],
      ['no weights', { ...good, 'model.safetensors': undefined }],
      ['no tokenizer', { ...good, 'tokenizer.json': undefined }],
      ['config not JSON', { ...good, 'config.json': '{' }],
      ['another architecture', withConfig({ model_type: 'llama' })],
      ['erf GELU', withConfig({ activation_function: 'relu' })],
      ['other LayerNorm eps', withConfig({ layer_norm_epsilon: 1e-6 })],
      ['heads do not divide width', withConfig({ n_head: 5 })],
      ['config and weights disagree', withConfig({ n_layer: 3 })],
      ['vocabulary and tokenizer disagree', { ...good, 'config.json': JSON.stringify({ ...config, vocab_size: 301 }), 'model.safetensors': encodeSafetensors(new Map([...params, ['wte.weight', { shape: [301, 32], data: new Float32Array(301 * 32) }]])) }],
      ['missing tensor', { ...good, 'model.safetensors': encodeSafetensors(fewer) }],
      ['truncated weights', { ...good, 'model.safetensors': good['model.safetensors'].subarray(0, 1000) }],
      ['corrupt tokenizer', { ...good, 'tokenizer.json': '{"model": {"type": "BPE"}}' }],
      ['unsorted char vocabulary', { ...good, 'tokenizer.json': undefined, 'vocab.json': JSON.stringify({ type: 'char', chars: ['b', 'a'] }) }],
    ];
    for (const [what, files] of cases) assert.throws(() => importGpt(files), ExportError, what);
    assert.throws(() => readExport(join(dir, 'nope')), ExportError, 'missing directory');
  });
});

describe('tessera export from a coordinator run', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-export-run-'));
  const running = startCoordinator({ dataDir, port: 0, adminToken: 'admin-token-for-tests-0123456789', evaluate: false, web: false, log: () => {} });
  after(async () => (await running).close());
  const createRun = async (url: string, config: object): Promise<string> => {
    const res = await fetch(`${url}/v1/runs`, {
      method: 'POST', headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify(config),
    });
    assert.equal(res.status, 201, `run creation failed: ${await res.clone().text()}`);
    return ((await res.json()) as { runId: string }).runId;
  };

  it('writes the head version with the task\'s char vocabulary', async () => {
    const srv = await running;
    const model = { kind: 'gpt', vocabSize: 65, context: 8, width: 16, heads: 2, layers: 1, mlpRatio: 4 };
    const runId = await createRun(srv.url, { name: 'export-test', task: 'shakespeare', model });
    const out = join(dataDir, 'export');
    const { version } = await exportRunVersion({ url: srv.url, run: runId, version: 'head', out });
    assert.equal(version, 0, 'the head of a new run');
    const weights = decodeSafetensors(new Uint8Array(await (await fetch(`${srv.url}/v1/runs/${runId}/versions/0/weights`)).arrayBuffer())).tensors;
    const back = readExport(out);
    assert.deepEqual(back.spec, model, 'the run\'s model');
    for (const [name, t] of weights) assert.deepEqual(back.params.get(name), t, `${name} as the coordinator serves it`);
    assert.equal(back.tokenizer.kind, 'char', 'char vocabulary');
    if (back.tokenizer.kind === 'char') assert.equal(CharVocab.fromJSON({ type: 'char', chars: back.tokenizer.chars }).size, 65, '65 characters, a valid CharVocab');
    await assert.rejects(exportRunVersion({ url: srv.url, run: 'no-such-run', version: 'head', out: join(dataDir, 'x') }), ExportError, 'unknown run');
  });

  it('writes a BPE run with the BPE vocabulary its devices train on', { timeout: 60_000 }, async () => {
    const srv = await running;
    const model = { kind: 'gpt', vocabSize: 320, context: 8, width: 16, heads: 2, layers: 1, mlpRatio: 4 };
    const runId = await createRun(srv.url, { name: 'export-bpe', task: 'shakespeare-bpe', model });
    const out = join(dataDir, 'export-bpe');
    await exportRunVersion({ url: srv.url, run: runId, version: 'head', out });
    const back = readExport(out);
    assert.deepEqual(back.spec, model);
    assert.equal(back.tokenizer.kind, 'bpe', 'tokenizer.json, not a char vocabulary');
    // The devices' tokens: the task the run's devices load for this model (loadTask), encoding the same text.
    const task = await loadTask('shakespeare-bpe', GptSpec.parse(model));
    const text = 'ROMEO:\nBut, soft! what light through yonder window breaks?';
    assert.ok(back.tokenizer.kind === 'bpe' && 'tokenizer' in task, 'the BPE task has a tokenizer');
    assert.deepEqual(back.tokenizer.bpe.encode(text), (task as BpeTask).tokenizer.encode(text), 'same ids as the devices');
  });
});
