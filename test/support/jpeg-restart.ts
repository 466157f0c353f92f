// Restart intervals for test JPEGs. sharp cannot write them (libvips can, sharp does not expose
// it), so this re-codes the entropy-coded data of a baseline, interleaved-or-grey, Huffman-coded
// JPEG with the same tables and a DRI segment: every `interval` MCUs the bit stream is padded with
// 1-bits, an RSTn marker is written and the DC predictions restart from 0. The coefficients are
// untouched, so the image decodes to the same pixels (the corpus checks it). Only for tables that
// code every DC category — sharp's standard ones (optimiseCoding: false) do.
import { walkJpeg } from '../../src/image/images.ts';

interface HuffmanTable {
  /** Decoding (JPEG Annex F.2.2.3). */
  readonly maxcode: Int32Array;
  readonly valptr: Int32Array;
  readonly mincode: Int32Array;
  readonly values: Uint8Array;
  /** Encoding: value → [code, length]. */
  readonly codes: Map<number, readonly [number, number]>;
}

function huffmanTable(counts: Uint8Array, values: Uint8Array): HuffmanTable {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  const codes = new Map<number, readonly [number, number]>();
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length += 1) {
    const n = counts[length - 1] ?? 0;
    valptr[length] = k;
    mincode[length] = code;
    for (let i = 0; i < n; i += 1) codes.set(values[k + i] ?? 0, [code + i, length]);
    code += n;
    k += n;
    maxcode[length] = n > 0 ? code - 1 : -1;
    code <<= 1;
  }
  return { maxcode, valptr, mincode, values, codes };
}

/** Entropy-coded bytes with their stuffing removed, read MSB first. */
function bitsOf(data: Buffer): () => number {
  const bytes: number[] = [];
  for (let i = 0; i < data.length; i += 1) {
    const b = data[i] ?? 0;
    bytes.push(b);
    if (b === 0xff) i += 1; // skip the stuffed 0x00
  }
  let position = 0;
  return () => {
    const b = bytes[position >> 3] ?? 0xff; // past the end: 1-bits, as a decoder would pad
    const bit = (b >> (7 - (position & 7))) & 1;
    position += 1;
    return bit;
  };
}

function decodeSymbol(table: HuffmanTable, next: () => number): number {
  let code = next();
  let length = 1;
  while (length <= 16 && code > (table.maxcode[length] ?? -1)) {
    code = (code << 1) | next();
    length += 1;
  }
  if (length > 16) throw new Error('bad Huffman code in a test JPEG');
  return table.values[(table.valptr[length] ?? 0) + code - (table.mincode[length] ?? 0)] ?? 0;
}

const receive = (bits: number, next: () => number) => {
  let v = 0;
  for (let i = 0; i < bits; i += 1) v = (v << 1) | next();
  return v;
};
const extend = (v: number, bits: number) => (bits > 0 && v < 1 << (bits - 1) ? v - (1 << bits) + 1 : v);
const category = (v: number) => (v === 0 ? 0 : 32 - Math.clz32(Math.abs(v)));

class BitWriter {
  readonly out: number[] = [];
  private acc = 0;
  private count = 0;
  write(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i -= 1) {
      this.acc = (this.acc << 1) | ((value >> i) & 1);
      this.count += 1;
      if (this.count === 8) {
        this.out.push(this.acc);
        if (this.acc === 0xff) this.out.push(0x00);
        this.acc = 0;
        this.count = 0;
      }
    }
  }
  /** Pads the last byte with 1-bits. */
  align(): void {
    if (this.count > 0) this.write(0xff >> this.count, 8 - this.count);
  }
  marker(marker: number): void {
    this.out.push(0xff, marker);
  }
}

interface Component {
  readonly id: number;
  readonly h: number;
  readonly v: number;
}

/** `jpeg` with a restart marker every `interval` MCUs. */
export function withRestartInterval(jpeg: Buffer, interval: number): Buffer {
  const dc = new Map<number, HuffmanTable>();
  const ac = new Map<number, HuffmanTable>();
  let components: Component[] = [];
  let width = 0;
  let height = 0;
  const segments: { marker: number; start: number; end: number }[] = [];
  walkJpeg(jpeg, 0, (marker, start, end) => segments.push({ marker, start, end }));
  const parts: Buffer[] = [];
  for (const { marker, start, end } of segments) {
    if (marker === 0xc4) {
      let at = start + 4;
      while (at < end) {
        const tc = (jpeg[at] ?? 0) >> 4;
        const th = (jpeg[at] ?? 0) & 15;
        const counts = jpeg.subarray(at + 1, at + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        const table = huffmanTable(counts, jpeg.subarray(at + 17, at + 17 + total));
        (tc === 0 ? dc : ac).set(th, table);
        at += 17 + total;
      }
    }
    if (marker === 0xc2 || marker === 0xdd) throw new Error('withRestartInterval: baseline JPEGs without restarts only');
    if (marker === 0xc0 || marker === 0xc1) {
      height = jpeg.readUInt16BE(start + 5);
      width = jpeg.readUInt16BE(start + 7);
      const n = jpeg[start + 9] ?? 0;
      components = Array.from({ length: n }, (_, i) => {
        const at = start + 10 + 3 * i;
        return { id: jpeg[at] ?? 0, h: (jpeg[at + 1] ?? 0) >> 4, v: (jpeg[at + 1] ?? 0) & 15 };
      });
    }
    if (marker !== 0xda) {
      parts.push(jpeg.subarray(start, end));
      continue;
    }
    const headerLength = jpeg.readUInt16BE(start + 2);
    const ns = jpeg[start + 4] ?? 0;
    const scan = Array.from({ length: ns }, (_, i) => {
      const id = jpeg[start + 5 + 2 * i] ?? 0;
      const tables = jpeg[start + 6 + 2 * i] ?? 0;
      const component = components.find((c) => c.id === id);
      const dcTable = dc.get(tables >> 4);
      const acTable = ac.get(tables & 15);
      if (!component || !dcTable || !acTable) throw new Error('withRestartInterval: scan names an unknown component or table');
      return { component, dcTable, acTable };
    });
    const hmax = Math.max(...components.map((c) => c.h));
    const vmax = Math.max(...components.map((c) => c.v));
    // One component in the scan: blocks are MCUs (non-interleaved order). Several: interleaved MCUs.
    const first = scan[0];
    if (!first) throw new Error('withRestartInterval: empty scan');
    const blocksPerMcu = ns === 1 ? [{ ...first, count: 1 }] : scan.map((s) => ({ ...s, count: s.component.h * s.component.v }));
    const mcus =
      ns === 1
        ? Math.ceil(Math.ceil((width * first.component.h) / hmax) / 8) * Math.ceil(Math.ceil((height * first.component.v) / vmax) / 8)
        : Math.ceil(width / (8 * hmax)) * Math.ceil(height / (8 * vmax));

    const next = bitsOf(jpeg.subarray(start + 2 + headerLength, end));
    const writer = new BitWriter();
    const predictions = new Map<number, number>();
    const newPredictions = new Map<number, number>();
    const put = (table: HuffmanTable, value: number) => {
      const code = table.codes.get(value);
      if (!code) throw new Error(`withRestartInterval: no code for ${value}`);
      writer.write(code[0], code[1]);
    };
    for (let mcu = 0; mcu < mcus; mcu += 1) {
      if (mcu > 0 && mcu % interval === 0) {
        writer.align();
        writer.marker(0xd0 + ((mcu / interval - 1) % 8));
        newPredictions.clear();
      }
      for (const { component, dcTable, acTable, count } of blocksPerMcu) {
        for (let b = 0; b < count; b += 1) {
          const t = decodeSymbol(dcTable, next);
          const value = (predictions.get(component.id) ?? 0) + extend(receive(t, next), t);
          predictions.set(component.id, value);
          const diff = value - (newPredictions.get(component.id) ?? 0);
          newPredictions.set(component.id, value);
          const s = category(diff);
          put(dcTable, s);
          writer.write(diff < 0 ? (diff - 1) & ((1 << s) - 1) : diff, s);
          for (let k = 1; k < 64; ) {
            const rs = decodeSymbol(acTable, next);
            const size = rs & 15;
            put(acTable, rs);
            if (size === 0) {
              if (rs !== 0xf0) break; // EOB
              k += 16;
              continue;
            }
            writer.write(receive(size, next), size);
            k += (rs >> 4) + 1;
          }
        }
      }
    }
    writer.align();
    const dri = Buffer.from([0xff, 0xdd, 0x00, 0x04, interval >> 8, interval & 0xff]);
    parts.push(dri, jpeg.subarray(start, start + 2 + headerLength), Buffer.from(writer.out));
  }
  return Buffer.concat(parts);
}
