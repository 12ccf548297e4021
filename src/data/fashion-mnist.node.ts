// Reads Fashion-MNIST's gzipped IDX files from disk (Node only; decoding lives in fashion-mnist.ts).
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { fashionMnistFromIdx } from './fashion-mnist.ts';
import type { ImageSet } from './image-batches.ts';
import { fashionMnistDir, readDataFile } from './paths.node.ts';

const gunzipAsync = promisify(gunzip);

export type FashionMnistSplit = 'train' | 'test';

/** Loads the 60,000 training or 10,000 test examples. */
export async function loadFashionMnist(split: FashionMnistSplit, dir: string = fashionMnistDir()): Promise<ImageSet> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const hint = `Install it with 'apt-get install -y dataset-fashion-mnist', or set TESSERA_FASHION_MNIST to a folder with ${prefix}-*-ubyte.gz.`;
  const read = async (kind: string): Promise<Buffer> => gunzipAsync(await readDataFile(join(dir, `${prefix}-${kind}-ubyte.gz`), hint));
  const [images, labels] = await Promise.all([read('images-idx3'), read('labels-idx1')]);
  return fashionMnistFromIdx(images, labels, join(dir, `${prefix}-*`));
}
