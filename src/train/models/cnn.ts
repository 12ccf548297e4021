// Small convolutional classifier: strided 'SAME' convolutions with ReLU (strides downsample instead of pooling, which
// keeps every op differentiable under jit), then dense layers. NCHW activations, OIHW kernels as in PyTorch.
import { lax, nn, type JaxArray, type Params } from '../runtime/jax.ts';
import { applyDense, denseSpecs } from './dense.ts';
import { initTensors, type Init } from './init.ts';
import type { Model } from './model.ts';
import type { CnnSpec } from '../../core/model-spec.ts';


export function cnn(spec: CnnSpec): Model {
  const specs: Array<readonly [string, readonly number[], Init]> = [];
  let [c, h, w] = [spec.channels, spec.height, spec.width];
  spec.conv.forEach((layer, i) => {
    const bound = 1 / Math.sqrt(c * layer.kernel * layer.kernel);
    specs.push([`conv.${i}.weight`, [layer.out, c, layer.kernel, layer.kernel], { kind: 'uniform', bound }]);
    specs.push([`conv.${i}.bias`, [layer.out], { kind: 'uniform', bound }]);
    [c, h, w] = [layer.out, Math.ceil(h / layer.stride), Math.ceil(w / layer.stride)];
  });
  const flat = c * h * w;
  const dims = [flat, ...spec.hidden, spec.classes];
  specs.push(...denseSpecs(dims));
  return {
    shapes: specs.map(([n, s]) => [n, s] as const),
    classes: spec.classes,
    decayed: new Set(specs.filter(([, s]) => s.length >= 2).map(([n]) => n)),
    inputShape: (b) => [b, spec.channels * spec.height * spec.width],
    targetShape: (b) => [b],
    init: (seed) => initTensors(specs, seed),
    logits(p: Params, x: JaxArray): JaxArray {
      const batch = x.shape[0]!;
      let a = x.reshape([batch, spec.channels, spec.height, spec.width]);
      spec.conv.forEach((layer, i) => {
        const bias = p[`conv.${i}.bias`]!.reshape([1, layer.out, 1, 1]);
        a = nn.relu(lax.conv(a, p[`conv.${i}.weight`]!, [layer.stride, layer.stride], 'SAME').add(bias));
      });
      return applyDense(p, a.reshape([batch, flat]), dims.length - 1);
    },
  };
}
