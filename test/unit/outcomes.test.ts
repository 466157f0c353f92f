import { describe, expect, it } from 'vitest';
import { failed, succeeded } from '../../src/job/contract.ts';
import { outcomeMessage } from '../../src/worker/outcomes.ts';
import { job } from './helpers.ts';

describe('outcomeMessage', () => {
  it('carries the status and the jobId as String attributes, for consumers that filter without parsing', () => {
    // Prepare
    const outcome = succeeded(job([{ kind: 'inline', data: 'AAAA' }], { jobId: 'job-3', userId: 'alice' }), 'm-3', []);

    // Act
    const message = outcomeMessage(outcome);

    // Assess
    expect(message.attributes).toEqual({
      status: { DataType: 'String', StringValue: 'succeeded' },
      jobId: { DataType: 'String', StringValue: 'job-3' },
    });
    expect(JSON.parse(message.body)).toEqual(outcome);
  });

  it('has no jobId attribute for a message whose jobId could not be read', () => {
    // Prepare
    const outcome = failed({ jobId: null, userId: null }, 'm-4', { code: 'INVALID_SIGNATURE', message: 'no Signature' });

    // Act
    const message = outcomeMessage(outcome);

    // Assess
    expect(message.attributes).toEqual({ status: { DataType: 'String', StringValue: 'failed' } });
  });
});
