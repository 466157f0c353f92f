// What a job costs in SQS and S3 requests at list prices. The request counts come from the fast
// endpoint (test/support/fast-aws.ts), which counts every call by action and bills SQS calls as SQS
// does (one request per call plus one per further 64 KiB of message payload).
//
// Prices: US East (N. Virginia), standard queues and S3 Standard, as listed in 2026 (BENCHMARKS.md
// says where they come from). No free tier, no volume tiers, no data transfer (same region: free).

export const PRICES = {
  /** SQS standard queue, per request (first 100 billion a month): $0.40 per million. */
  sqsPerRequest: 0.4 / 1e6,
  /** S3 Standard PUT, COPY, POST, LIST: $0.005 per 1,000. */
  s3PutClassPerRequest: 0.005 / 1e3,
  /** S3 Standard GET, SELECT and all other requests (HEAD included): $0.0004 per 1,000. */
  s3GetClassPerRequest: 0.0004 / 1e3,
  // DELETE is free.
} as const;

/** S3 actions as the fast endpoint names them, by price class. */
const S3_PUT_CLASS = new Set(['s3:PutObject', 's3:CopyObject', 's3:ListObjectsV2', 's3:CreateBucket']);
const S3_FREE = new Set(['s3:DeleteObject']);

export interface RequestsPerJob {
  /** Calls per job by action (`sqs:ReceiveMessage`, `s3:PutObject`, …). */
  calls: Record<string, number>;
  /** SQS requests per job as billed (64 KiB chunks), by action. */
  billedSqs: Record<string, number>;
  sqsCalls: number;
  sqsBilled: number;
  s3Calls: number;
  /** Dollars per million jobs: SQS, S3 and together. */
  dollarsPerMillionJobs: { sqs: number; s3: number; total: number };
}

const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);

/** Per-job requests and their cost, from counts taken over `jobs` jobs. */
export function requestsPerJob(calls: Readonly<Record<string, number>>, billed: Readonly<Record<string, number>>, jobs: number): RequestsPerJob {
  const perJob = (counts: Readonly<Record<string, number>>, prefix: string) =>
    Object.fromEntries(
      Object.entries(counts)
        .filter(([action]) => action.startsWith(prefix))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([action, n]) => [action, n / jobs]),
    );
  const sqsCalls = perJob(calls, 'sqs:');
  const s3Calls = perJob(calls, 's3:');
  const billedSqs = perJob(billed, 'sqs:');
  const sqsBilled = sum(Object.values(billedSqs));
  let s3Dollars = 0;
  for (const [action, n] of Object.entries(s3Calls)) {
    if (S3_FREE.has(action)) continue;
    s3Dollars += n * (S3_PUT_CLASS.has(action) ? PRICES.s3PutClassPerRequest : PRICES.s3GetClassPerRequest);
  }
  const sqsDollars = sqsBilled * PRICES.sqsPerRequest;
  return {
    calls: { ...sqsCalls, ...s3Calls },
    billedSqs,
    sqsCalls: sum(Object.values(sqsCalls)),
    sqsBilled,
    s3Calls: sum(Object.values(s3Calls)),
    dollarsPerMillionJobs: { sqs: sqsDollars * 1e6, s3: s3Dollars * 1e6, total: (sqsDollars + s3Dollars) * 1e6 },
  };
}

/** Counts now minus counts before, by key. */
export function countsSince(now: Readonly<Record<string, number>>, before: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) {
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** The mean of several runs' per-job requests (repeats of one level). */
export function meanRequests(runs: readonly RequestsPerJob[]): RequestsPerJob | null {
  if (runs.length === 0) return null;
  const mean = (pick: (r: RequestsPerJob) => number) => sum(runs.map(pick)) / runs.length;
  const meanMap = (pick: (r: RequestsPerJob) => Record<string, number>) => {
    const keys = [...new Set(runs.flatMap((r) => Object.keys(pick(r))))].sort();
    return Object.fromEntries(keys.map((k) => [k, mean((r) => pick(r)[k] ?? 0)]));
  };
  return {
    calls: meanMap((r) => r.calls),
    billedSqs: meanMap((r) => r.billedSqs),
    sqsCalls: mean((r) => r.sqsCalls),
    sqsBilled: mean((r) => r.sqsBilled),
    s3Calls: mean((r) => r.s3Calls),
    dollarsPerMillionJobs: {
      sqs: mean((r) => r.dollarsPerMillionJobs.sqs),
      s3: mean((r) => r.dollarsPerMillionJobs.s3),
      total: mean((r) => r.dollarsPerMillionJobs.total),
    },
  };
}
