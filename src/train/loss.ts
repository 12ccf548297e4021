// Cross-entropy and accuracy from logits, written with one-hot products rather than gathers: jax-js's jit cannot
// compile the scatter that a gather's gradient needs.
import { nn, np, type JaxArray } from './runtime/jax.ts';

/** Mean negative log-likelihood of integer targets y under logits [..., classes]. Consumes both. */
export function crossEntropy(logits: JaxArray, y: JaxArray, classes: number): JaxArray {
  const logp = nn.logSoftmax(logits, -1);
  return logp.mul(nn.oneHot(y, classes).astype(logp.dtype)).sum(-1).mean().mul(-1);
}

/** [sum of per-example NLL, number of correct argmax predictions]. Consumes both. */
export function lossAndCorrect(logits: JaxArray, y: JaxArray, classes: number): [JaxArray, JaxArray] {
  const pred = np.argmax(logits.ref, -1);
  const logp = nn.logSoftmax(logits, -1);
  const nll = logp.mul(nn.oneHot(y.ref, classes).astype(logp.dtype)).sum().mul(-1);
  const correct = np.equal(pred, y).astype(np.float32).sum();
  return [nll, correct];
}
