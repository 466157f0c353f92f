/**
 * Runs @vladmandic/face-api's Node WebAssembly build on @tensorflow/tfjs-core alone, in this thread.
 *
 * That build does `require("@tensorflow/tfjs")`: the union package, which brings tfjs-layers,
 * tfjs-data, tfjs-converter and the WebGL backend — ~240 MB more in node_modules, none of it used
 * by a face detector. What face-api uses of it is tfjs-core's ops plus tfjs-core's "chained ops"
 * (`tensor.as3D(…)`, `tensor.div(…)`: methods that the union package adds to the Tensor class and
 * tfjs-core's own bundles leave out). So this module
 *   1. adds the chained ops to tfjs-core's Tensor class, each calling the tfjs-core op of the same
 *      name with the tensor first (as tfjs' own chained-op files do), and
 *   2. resolves "@tensorflow/tfjs" to "@tensorflow/tfjs-core" for this thread only
 *      (`module.registerHooks`: synchronous, in-thread hooks; a worker's hooks are not the main
 *      thread's).
 * If face-api ever calls something this misses, detection throws a TypeError at once — on the
 * first call, which `check`'s probe and the tests make — not a wrong answer.
 */
import { createRequire, registerHooks } from 'node:module';

export type Tf = typeof import('@tensorflow/tfjs-core');

const require = createRequire(import.meta.url);

/** Chained ops that call the tfjs-core op of the same name with the tensor as first argument. */
const SAME_NAME_OPS = [
  'abs', 'add', 'all', 'any', 'argMax', 'argMin', 'batchNorm', 'cast', 'clipByValue', 'conv2d',
  'depthwiseConv2d', 'div', 'equal', 'exp', 'expandDims', 'floor', 'gather', 'greater',
  'greaterEqual', 'leakyRelu', 'less', 'lessEqual', 'log', 'matMul', 'max', 'maximum', 'mean', 'min',
  'minimum', 'mul', 'neg', 'pad', 'pow', 'prelu', 'relu', 'reshape', 'round', 'rsqrt', 'sigmoid',
  'slice', 'softmax', 'sqrt', 'square', 'squeeze', 'sub', 'sum', 'tanh', 'tile', 'transpose', 'unstack',
] as const;

function addChainedOps(tf: Tf): void {
  const proto = tf.Tensor.prototype as unknown as Record<string, unknown>;
  const ops = tf as unknown as Record<string, unknown>;
  const define = (name: string, method: (this: InstanceType<Tf['Tensor']>, ...args: never[]) => unknown) => {
    if (proto[name] === undefined) proto[name] = method;
  };
  for (const name of SAME_NAME_OPS) {
    const op = ops[name];
    if (typeof op !== 'function') throw new Error(`@tensorflow/tfjs-core has no op ${name}`);
    define(name, function (...args) {
      return (op as (...a: unknown[]) => unknown)(this, ...args);
    });
  }
  define('as1D', function () {
    return tf.reshape(this, [this.size]);
  });
  define('as2D', function (...[rows, columns]: number[]) {
    return tf.reshape(this, [rows as number, columns as number]);
  });
  define('as3D', function (...[rows, columns, depth]: number[]) {
    return tf.reshape(this, [rows as number, columns as number, depth as number]);
  });
  define('as4D', function (...[rows, columns, depth, depth2]: number[]) {
    return tf.reshape(this, [rows as number, columns as number, depth as number, depth2 as number]);
  });
  define('toFloat', function () {
    return tf.cast(this, 'float32');
  });
  define('toInt', function () {
    return tf.cast(this, 'int32');
  });
}

let loaded: Tf | undefined;

/** tfjs-core, ready for face-api's Node WebAssembly build to be required in this thread. */
export function tfjsCoreForFaceApi(): Tf {
  if (loaded !== undefined) return loaded;
  const tf = require('@tensorflow/tfjs-core') as Tf;
  addChainedOps(tf);
  registerHooks({
    resolve(specifier, context, nextResolve) {
      return nextResolve(specifier === '@tensorflow/tfjs' ? '@tensorflow/tfjs-core' : specifier, context);
    },
  });
  loaded = tf;
  return tf;
}
