// The producer's trace context as a message carries it (docs/operations.md "Tracing"): W3C traceparent and
// tracestate first, X-Ray's AWSTraceHeader otherwise; anything malformed is reported and ignored.
import { describe, expect, it } from 'vitest';
import { formatTraceparent, parseAwsTraceHeader, parseTraceparent, producerContextOf, traceAttributes } from '../../src/job/trace-context.ts';
import { sqsMessage, stringAttribute } from './helpers.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const XRAY = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';

describe('parseTraceparent', () => {
  it('reads a version 00 traceparent, its sampled flag and its tracestate', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'congo=t61rcWkgMzE')).toEqual({ traceId: TRACE, spanId: SPAN, sampled: true, traceState: 'congo=t61rcWkgMzE', source: 'traceparent' });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.sampled).toBe(false);
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-03`)?.sampled).toBe(true);
  });

  it('reads a later version by its first four fields', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-what-comes-next`)?.traceId).toBe(TRACE);
  });

  it.each([
    ['empty', ''],
    ['not hex', `00-${TRACE.replace('4', 'g')}-${SPAN}-01`],
    ['upper-case', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with more fields', `00-${TRACE}-${SPAN}-01-extra`],
    ['no flags', `00-${TRACE}-${SPAN}`],
  ])('refuses %s', (_, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it('drops a tracestate that is too long or not printable, and keeps the traceparent', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'a'.repeat(513))).toMatchObject({ traceId: TRACE, traceState: undefined });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'a=\n')).toMatchObject({ traceId: TRACE, traceState: undefined });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(','))?.traceState).toBeUndefined();
  });
});

describe('parseAwsTraceHeader', () => {
  it("maps X-Ray's root to the W3C trace id: its epoch and random parts joined", () => {
    expect(parseAwsTraceHeader(XRAY)).toEqual({ traceId: '5759e988bd862e3fe1be46a994272793', spanId: '53995c3f42cd8ad8', sampled: true, traceState: undefined, source: 'AWSTraceHeader' });
  });

  it('reads the fields in any order, with a sampled flag other than 1 as not sampled', () => {
    expect(parseAwsTraceHeader('Sampled=0;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a:1')).toMatchObject({ traceId: '5759e988bd862e3fe1be46a994272793', sampled: false });
    expect(parseAwsTraceHeader('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8')?.sampled).toBe(false);
  });

  it.each([
    ['no parent (nothing to parent a span by)', 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1'],
    ['a root of another version', 'Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8'],
    ['a short root', 'Root=1-5759e98-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8'],
    ['a short parent', 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad'],
    ['garbage', 'Root=garbage'],
  ])('refuses %s', (_, value) => {
    expect(parseAwsTraceHeader(value)).toBeUndefined();
  });
});

describe('producerContextOf', () => {
  it('prefers a valid traceparent to AWSTraceHeader', () => {
    const message = sqsMessage({ MessageAttributes: { traceparent: stringAttribute(`00-${TRACE}-${SPAN}-01`) }, Attributes: { AWSTraceHeader: XRAY } });
    expect(producerContextOf(message)).toEqual({ context: expect.objectContaining({ traceId: TRACE, source: 'traceparent' }), malformed: undefined });
  });

  it('falls back to AWSTraceHeader past a malformed traceparent, and says which was malformed', () => {
    const message = sqsMessage({ MessageAttributes: { traceparent: stringAttribute('00-nope') }, Attributes: { AWSTraceHeader: XRAY } });
    expect(producerContextOf(message)).toEqual({ context: expect.objectContaining({ traceId: '5759e988bd862e3fe1be46a994272793', source: 'AWSTraceHeader' }), malformed: 'traceparent' });
  });

  it('reports a malformed AWSTraceHeader, and reads nothing from a message with no trace', () => {
    expect(producerContextOf(sqsMessage({ Attributes: { AWSTraceHeader: 'Root=1-x' } }))).toEqual({ context: undefined, malformed: 'AWSTraceHeader' });
    expect(producerContextOf(sqsMessage({}))).toEqual({ context: undefined, malformed: undefined });
  });

  it('ignores a traceparent that is not a String attribute', () => {
    const message = sqsMessage({ MessageAttributes: { traceparent: { DataType: 'Binary', BinaryValue: new Uint8Array([1]) } } });
    expect(producerContextOf(message).context).toBeUndefined();
  });
});

describe('traceAttributes', () => {
  it('writes traceparent, and tracestate only when there is one', () => {
    expect(traceAttributes({ traceId: TRACE, spanId: SPAN, sampled: false, traceState: 'a=b' })).toEqual({
      traceparent: { DataType: 'String', StringValue: `00-${TRACE}-${SPAN}-00` },
      tracestate: { DataType: 'String', StringValue: 'a=b' },
    });
    expect(Object.keys(traceAttributes({ traceId: TRACE, spanId: SPAN, sampled: true }))).toEqual(['traceparent']);
    expect(traceAttributes(undefined)).toEqual({});
  });

  it('reads back what it writes', () => {
    const context = { traceId: TRACE, spanId: SPAN, sampled: true };
    expect(parseTraceparent(formatTraceparent(context))).toMatchObject(context);
  });
});
