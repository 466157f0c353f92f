import { describe, expect, it } from 'vitest';
import { MAX_VISIBILITY_SECONDS, receiveCountOf, retryDelaySeconds, type RetryPolicy } from '../../src/worker/retry.ts';

const POLICY: RetryPolicy = { baseSeconds: 10, maxSeconds: 900 };
const LOWEST = () => 0;
const HIGHEST = () => 1;

describe('retryDelaySeconds', () => {
  it.each([
    [1, 10],
    [2, 20],
    [3, 40],
    [4, 80],
    [5, 160],
    [6, 320],
    [7, 640],
  ])('after receive %i the nominal delay is %i s', (receiveCount, nominal) => {
    // Act
    const highest = retryDelaySeconds(receiveCount, POLICY, HIGHEST);
    const lowest = retryDelaySeconds(receiveCount, POLICY, LOWEST);

    // Assess: equal jitter, between half the nominal delay and all of it.
    expect(highest).toBe(nominal);
    expect(lowest).toBe(nominal / 2);
  });

  it('never shrinks as the receive count grows', () => {
    // Act
    const delays = Array.from({ length: 40 }, (_, i) => retryDelaySeconds(i + 1, POLICY, () => 0.5));

    // Assess
    delays.slice(1).forEach((delay, i) => expect(delay).toBeGreaterThanOrEqual(delays[i] ?? Infinity));
    expect(delays[39]).toBeGreaterThan(delays[0] ?? Infinity);
  });

  it('is capped by maxSeconds', () => {
    // Act
    const highest = retryDelaySeconds(8, POLICY, HIGHEST);
    const lowest = retryDelaySeconds(8, POLICY, LOWEST);

    // Assess
    expect(highest).toBe(900);
    expect(lowest).toBe(450);
  });

  it('is capped by the 12-hour SQS visibility limit even when maxSeconds is larger', () => {
    // Act
    const highest = retryDelaySeconds(30, { baseSeconds: 10, maxSeconds: 100_000 }, HIGHEST);
    const lowest = retryDelaySeconds(30, { baseSeconds: 10, maxSeconds: 100_000 }, LOWEST);

    // Assess
    expect(MAX_VISIBILITY_SECONDS).toBe(43_200);
    expect(highest).toBe(43_200);
    expect(lowest).toBe(21_600);
  });

  it('stays at the cap for absurd receive counts', () => {
    // Act
    const delay = retryDelaySeconds(1_000_000, POLICY, HIGHEST);

    // Assess
    expect(delay).toBe(900);
  });

  it('is zero when the base is zero, for any receive count', () => {
    // Prepare
    const policy = { baseSeconds: 0, maxSeconds: 900 };

    // Act
    const delays = [1, 2, 50, 1025, 2000, 1_000_000].map((count) => retryDelaySeconds(count, policy, HIGHEST));

    // Assess
    expect(delays).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('is zero when the cap is zero', () => {
    // Act
    const delay = retryDelaySeconds(2000, { baseSeconds: 0, maxSeconds: 0 }, HIGHEST);

    // Assess
    expect(delay).toBe(0);
  });

  it.each([[Number.NaN], [0], [-3], [Number.POSITIVE_INFINITY], [Number.NEGATIVE_INFINITY], [0.5]])(
    'treats a garbage receive count (%d) as the first receive',
    (receiveCount) => {
      // Act
      const delay = retryDelaySeconds(receiveCount, POLICY, HIGHEST);

      // Assess
      expect(delay).toBe(10);
    },
  );

  it('rounds a fractional receive count down', () => {
    // Act
    const delay = retryDelaySeconds(2.9, POLICY, HIGHEST);

    // Assess
    expect(delay).toBe(20);
  });

  it('returns whole seconds, never sooner than half the nominal delay', () => {
    // Prepare: an odd nominal delay (5 s), so half of it is not whole.
    const policy = { baseSeconds: 5, maxSeconds: 900 };

    // Act
    const delays = [0, 0.1, 0.5, 0.9, 0.999999].map((r) => retryDelaySeconds(1, policy, () => r));

    // Assess
    delays.forEach((delay) => {
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(2.5);
      expect(delay).toBeLessThanOrEqual(5);
    });
    expect(delays[0]).toBe(3);
    expect(delays[4]).toBe(5);
  });

  it('uses Math.random by default, within the jitter bounds', () => {
    // Act
    const delays = Array.from({ length: 200 }, () => retryDelaySeconds(3, POLICY));

    // Assess
    delays.forEach((delay) => {
      expect(delay).toBeGreaterThanOrEqual(20);
      expect(delay).toBeLessThanOrEqual(40);
    });
  });
});

describe('receiveCountOf', () => {
  it.each([
    ['1', 1],
    ['3', 3],
    ['250', 250],
  ])('reads ApproximateReceiveCount %j as %i', (value, expected) => {
    // Act
    const count = receiveCountOf({ Attributes: { ApproximateReceiveCount: value } });

    // Assess
    expect(count).toBe(expected);
  });

  it.each([['abc'], ['0'], ['-2'], ['2.5'], [''], ['Infinity']])('reads a garbage count %j as 1', (value) => {
    // Act
    const count = receiveCountOf({ Attributes: { ApproximateReceiveCount: value } });

    // Assess
    expect(count).toBe(1);
  });

  it('is 1 when SQS did not send the attribute', () => {
    // Act
    const counts = [receiveCountOf({}), receiveCountOf({ Attributes: {} }), receiveCountOf({ Attributes: { SentTimestamp: '1700000000000' } })];

    // Assess
    expect(counts).toEqual([1, 1, 1]);
  });
});
