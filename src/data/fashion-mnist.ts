// Fashion-MNIST (Xiao, Rasul and Vollgraf 2017) from its IDX bytes: 28x28 grey images of 10 clothing classes.
// Pure, so a browser that fetched and gunzipped the files can use it too.
import { IdxError } from './errors.ts';
import type { ImageSet } from './image-batches.ts';
import { parseIdxImageSet } from './idx.ts';

/** Class names in label order, from the dataset's README. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Decodes one split from its (already decompressed) images and labels files; pixels are scaled to [0, 1]. */
export function fashionMnistFromIdx(imageBytes: Uint8Array, labelBytes: Uint8Array, source?: string): ImageSet {
  const { n, height, width, pixels, labels } = parseIdxImageSet(imageBytes, labelBytes, source);
  if (height !== 28 || width !== 28) throw new IdxError(`Fashion-MNIST images are 28x28, got ${height}x${width}`, source);
  const classes = FASHION_MNIST_CLASSES.length;
  const bad = labels.findIndex((y) => y >= classes);
  if (bad >= 0) throw new IdxError(`label ${labels[bad]} at index ${bad} is not a class in [0, ${classes})`, source);
  const images = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) images[i] = pixels[i]! / 255;
  return { n, height, width, classes, classNames: FASHION_MNIST_CLASSES, images, labels };
}
