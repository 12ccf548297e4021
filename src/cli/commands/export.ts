// `tessera export`: writes a run's version (or, via `tessera train --export`, a locally trained model) as a Hugging
// Face GPT-2 directory: model.safetensors, config.json and the tokenizer (src/train/hf-export.ts says what each
// holds). readExport is the way back in. Only GPT models export: the format is GPT-2's.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { GptSpec, type ModelSpec } from '../../core/model-spec.ts';
import type { TensorRecord } from '../../core/tensor.ts';
import { CharVocab } from '../../data/char-vocab.ts';
import { loadShakespeareText } from '../../data/shakespeare.node.ts';
import { shakespeareBpeTask } from '../../device/tasks/shakespeare-bpe.node.ts';
import { sotuTask } from '../../device/tasks/sotu.node.ts';
import { decodeSafetensors } from '../../core/safetensors.ts';
import { ExportError, exportGpt, importGpt, type ExportFiles, type ExportTokenizer, type ImportedModel } from '../../train/hf-export.ts';

const FILES = ['model.safetensors', 'config.json', 'tokenizer.json', 'vocab.json'] as const;

/** Writes an export into `dir` (created if missing). A directory that already holds an export needs `force`. */
export function writeExport(dir: string, spec: GptSpec, params: TensorRecord, tokenizer: ExportTokenizer, force = false): ExportFiles {
  const files = exportGpt(spec, params, tokenizer);
  if (!force && existsSync(dir) && readdirSync(dir).some((f) => (FILES as readonly string[]).includes(f))) {
    throw new ExportError(`${dir} already holds an export; pass --force to overwrite it`);
  }
  mkdirSync(dir, { recursive: true });
  for (const name of FILES) {
    const content = files[name];
    if (content !== undefined) writeFileSync(join(dir, name), content);
  }
  return files;
}

/** Loads an export directory back into Tessera: the GPT spec, its parameters and the tokenizer. */
export function readExport(dir: string): ImportedModel {
  if (!existsSync(dir)) throw new ExportError(`${dir} does not exist`);
  const files: Partial<Record<(typeof FILES)[number], string | Uint8Array>> = {};
  for (const name of FILES) {
    const path = join(dir, name);
    if (existsSync(path)) files[name] = name === 'model.safetensors' ? new Uint8Array(readFileSync(path)) : readFileSync(path, 'utf8');
  }
  return importGpt(files as Partial<ExportFiles>);
}

/**
 * The tokenizer a run's task encodes text with, for the run's model: the task's own (the char vocabulary of Tiny
 * Shakespeare or of the State of the Union addresses, or the BPE vocabulary the shakespeare-bpe task trains
 * deterministically at the model's vocabulary size), so an export decodes exactly what the devices trained on.
 */
export async function taskTokenizer(task: string, model?: ModelSpec): Promise<ExportTokenizer> {
  switch (task) {
    case 'shakespeare': return { kind: 'char', chars: CharVocab.fromText(await loadShakespeareText()).chars };
    case 'sotu': return { kind: 'char', chars: sotuTask().vocab.chars };
    case 'shakespeare-bpe': {
      const { tokenizer } = await shakespeareBpeTask(model?.kind === 'gpt' ? { vocabSize: model.vocabSize } : {});
      if (model !== undefined && model.kind === 'gpt' && tokenizer.vocabSize !== model.vocabSize) {
        throw new ExportError(`the run's model has a vocabulary of ${model.vocabSize}, but the task's BPE trains to ${tokenizer.vocabSize} tokens`);
      }
      return { kind: 'bpe', bpe: tokenizer };
    }
    default: throw new ExportError(`task ${task} has no text tokenizer; only language-model (GPT) runs export`);
  }
}

export interface RunExportOptions {
  url: string;
  run: string;
  version: string;
  out: string;
  force?: boolean;
}

/** Fetches a run's version from a coordinator and writes it as an export. Returns the version exported. */
export async function exportRunVersion(opts: RunExportOptions): Promise<{ version: number; spec: GptSpec }> {
  const get = async (path: string): Promise<Response> => {
    const res = await fetch(new URL(path, opts.url));
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
      throw new ExportError(`${path}: ${res.status} ${body.error?.message ?? res.statusText}`);
    }
    return res;
  };
  const run = encodeURIComponent(opts.run);
  const summary = (await (await get(`/v1/runs/${run}`)).json()) as { task: string; model: unknown };
  const spec = GptSpec.safeParse(summary.model);
  if (!spec.success) throw new ExportError(`run ${opts.run} trains a ${(summary.model as { kind?: string }).kind ?? 'non-GPT'} model; only GPT models export as GPT-2`);
  const info = (await (await get(`/v1/runs/${run}/versions/${encodeURIComponent(opts.version)}`)).json()) as { version: number };
  // By number, not "head": the head may move between the two requests. What the run serves (the EMA of versions for
  // a run with continual.ema), not necessarily what its devices train from.
  const bytes = new Uint8Array(await (await get(`/v1/runs/${run}/versions/${info.version}/served`)).arrayBuffer());
  const params = decodeSafetensors(bytes).tensors;
  writeExport(opts.out, spec.data, params, await taskTokenizer(summary.task, spec.data), opts.force);
  return { version: info.version, spec: spec.data };
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a run\'s version as a Hugging Face GPT-2 directory (model.safetensors, config.json, tokenizer); see also `tessera train --export`')
    .requiredOption('--run <id>', 'the run')
    .option('--version <v>', 'version number or "head"', 'head')
    .option('--url <url>', 'the coordinator', 'http://127.0.0.1:8787')
    .requiredOption('--out <dir>', 'directory to write')
    .option('--force', 'overwrite an export already in --out', false)
    .action(async (opts: RunExportOptions) => {
      const { version, spec } = await exportRunVersion(opts);
      console.log(`exported run ${opts.run} version ${version} (GPT ${spec.layers}x${spec.width}, vocabulary ${spec.vocabSize}) to ${opts.out}`);
    });
}
