/**
 * When a transiently failed message becomes visible again. The delay grows with the message's
 * receive count (exponential, capped) with "equal jitter", so a fleet that failed together does
 * not retry together, yet no retry comes sooner than half its nominal delay.
 */

export interface RetryPolicy {
  readonly baseSeconds: number;
  readonly maxSeconds: number;
}

/** SQS caps a message's visibility at 12 hours. */
export const MAX_VISIBILITY_SECONDS = 43_200;

export function retryDelaySeconds(receiveCount: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const attempt = Number.isFinite(receiveCount) && receiveCount >= 1 ? Math.floor(receiveCount) : 1;
  // The exponent is bounded so that 0 · 2^n never becomes 0 · Infinity (NaN) for absurd counts.
  const growth = 2 ** Math.min(attempt - 1, 32);
  const nominal = Math.min(policy.maxSeconds, policy.baseSeconds * growth, MAX_VISIBILITY_SECONDS);
  const half = nominal / 2;
  return Math.min(MAX_VISIBILITY_SECONDS, Math.ceil(half + random() * half));
}

/** The message's ApproximateReceiveCount, 1 when SQS did not say. */
export function receiveCountOf(message: { Attributes?: Partial<Record<string, string>> }): number {
  const count = Number(message.Attributes?.ApproximateReceiveCount);
  return Number.isInteger(count) && count >= 1 ? count : 1;
}
