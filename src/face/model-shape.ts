/**
 * Lets a BlazeFace graph model take an input of any size. As shipped, its input is fixed (1×256×256×3)
 * and its four output reshapes name their anchor counts ([1, 512, 1], [1, 384, 16], …), though
 * every layer before them is a convolution, a pooling or a channel pad, which work on any size. So
 * the input's height and width become unknown (-1) and each reshape's anchor count -1 (whatever the
 * grid gives). Pure: it edits the model's JSON and a copy of its weights, and refuses a model whose
 * shape is not the one this was written for, rather than run it wrongly.
 */

/** The parts of a tfjs graph model's files read here. */
export interface GraphModelFiles {
  readonly modelTopology: { readonly node: ReadonlyArray<{ readonly name: string; readonly op: string; readonly input?: readonly string[]; readonly attr?: unknown }> };
  readonly weightSpecs: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[]; readonly dtype: string }>;
  readonly weightData: ArrayBuffer;
}

const BYTES_PER_VALUE: Readonly<Record<string, number>> = { float32: 4, int32: 4 };

/** The model's files with its input and output reshapes made size-free; the input files are left as they are. */
export function anySizeInput<T extends GraphModelFiles>(files: T): T {
  const nodes = files.modelTopology.node;
  const inputs = nodes.filter((n) => n.op === 'Placeholder');
  const reshapes = nodes.filter((n) => n.op === 'Reshape');
  if (inputs.length !== 1 || reshapes.length !== 4) {
    throw new Error(`expected one input and four output reshapes, found ${inputs.length} and ${reshapes.length}`);
  }
  const shapeNames = new Set(reshapes.map((n) => n.input?.[1]));
  const weightData = files.weightData.slice(0);
  const view = new DataView(weightData);
  let offset = 0;
  let patched = 0;
  for (const spec of files.weightSpecs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = BYTES_PER_VALUE[spec.dtype];
    if (bytes === undefined) throw new Error(`weight ${spec.name}: dtype ${spec.dtype} is not read here`);
    if (shapeNames.has(spec.name)) {
      // [1, anchors, values]: the anchors become "whatever the grid gives".
      if (spec.dtype !== 'int32' || count !== 3 || view.getInt32(offset, true) !== 1 || view.getInt32(offset + 4, true) < 1) {
        throw new Error(`reshape ${spec.name} is not [1, anchors, values]`);
      }
      view.setInt32(offset + 4, -1, true);
      patched += 1;
    }
    offset += count * bytes;
  }
  if (patched !== 4 || offset !== weightData.byteLength) {
    throw new Error(`expected four reshape shapes in ${weightData.byteLength} bytes of weights, found ${patched} in ${offset}`);
  }
  const anySize = { shape: { dim: [{ size: '1' }, { size: '-1' }, { size: '-1' }, { size: '3' }] } };
  const node = nodes.map((n) => (n.op === 'Placeholder' ? { ...n, attr: { ...(n.attr as object), shape: anySize } } : n));
  return { ...files, modelTopology: { ...files.modelTopology, node }, weightData };
}
