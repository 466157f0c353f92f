// Tracing with export off (the default): no SDK runs, but the producer's context is passed through
// to the log fields and the outgoing messages, and a malformed header is warned about once.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import { createTracing } from '../../src/worker/tracing.ts';
import { ENV, QUEUE } from './config-fixtures.ts';
import { memoryLogger, sqsMessage, stringAttribute } from './helpers.ts';

const OFF = parseConfig(ENV).tracing;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('createTracing with export off', () => {
  it("passes the producer's context through: its trace id for the logs, its traceparent for the outcome", async () => {
    // Prepare
    const { log } = memoryLogger();
    const tracing = await createTracing(OFF, QUEUE, log);

    // Act
    const job = tracing.forMessage(sqsMessage({ MessageAttributes: { traceparent: stringAttribute(TRACEPARENT), tracestate: stringAttribute('a=b') } }));

    // Assess
    expect(tracing).toMatchObject({ exporting: false, calls: undefined });
    expect(job.logFields).toEqual({ trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(job.outgoing).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true, traceState: 'a=b' });
    expect(job.run(() => 42)).toBe(42);
  });

  it('gives a message without a trace no fields and nothing to pass on', async () => {
    const job = (await createTracing(OFF, QUEUE, memoryLogger().log)).forMessage(sqsMessage());
    expect(job.logFields).toEqual({});
    expect(job.outgoing).toBeUndefined();
  });

  it('warns once per process per kind of malformed header, naming the header but not its value', async () => {
    // Prepare
    const { log, lines } = memoryLogger();
    const tracing = await createTracing(OFF, QUEUE, log);

    // Act
    for (let i = 0; i < 3; i += 1) tracing.forMessage(sqsMessage({ MessageAttributes: { traceparent: stringAttribute(`secret-${i}`) } }));
    tracing.forMessage(sqsMessage({ Attributes: { AWSTraceHeader: 'Root=junk' } }));

    // Assess
    expect(lines().map((l) => [l.level, l.header])).toEqual([
      ['warn', 'traceparent'],
      ['warn', 'AWSTraceHeader'],
    ]);
    expect(JSON.stringify(lines())).not.toContain('secret-');
  });
});
