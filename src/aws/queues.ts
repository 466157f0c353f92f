/**
 * What the worker reads about a queue, in one place for start-up and `check`: its ARN, its
 * visibility timeout and its redrive policy (where failed jobs go, and after how many receives).
 */
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';

export interface RedrivePolicy {
  /** The dead-letter queue, when the policy names one as an SQS ARN. */
  readonly deadLetterQueue: { readonly account: string; readonly name: string } | undefined;
  readonly maxReceiveCount: number | undefined;
}

export interface QueueAttributes {
  readonly arn: string | undefined;
  readonly visibilityTimeoutSeconds: number | undefined;
  /** Undefined without a policy, or when it is not JSON (then `redriveMalformed`). */
  readonly redrive: RedrivePolicy | undefined;
  readonly redriveMalformed: boolean;
}

/** arn:aws:sqs:REGION:ACCOUNT:NAME → its account and name. */
export function parseQueueArn(arn: string): { account: string; name: string } | undefined {
  const parts = arn.split(':');
  if (parts.length !== 6 || parts[0] !== 'arn' || parts[2] !== 'sqs') return undefined;
  const [, , , , account, name] = parts;
  return account && name ? { account, name } : undefined;
}

/** The RedrivePolicy attribute's JSON; undefined when it is not JSON. */
export function parseRedrivePolicy(text: string): RedrivePolicy | undefined {
  let raw: { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const max = Number(raw.maxReceiveCount);
  return {
    deadLetterQueue: typeof raw.deadLetterTargetArn === 'string' ? parseQueueArn(raw.deadLetterTargetArn) : undefined,
    maxReceiveCount: Number.isInteger(max) && max > 0 ? max : undefined,
  };
}

export async function queueAttributes(sqs: SQSClient, queueUrl: string): Promise<QueueAttributes> {
  const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn', 'VisibilityTimeout', 'RedrivePolicy'] }));
  const visibility = Number(Attributes.VisibilityTimeout);
  const redrive = Attributes.RedrivePolicy ? parseRedrivePolicy(Attributes.RedrivePolicy) : undefined;
  return {
    arn: Attributes.QueueArn,
    // Number(undefined) is NaN: a missing attribute is undefined here too.
    visibilityTimeoutSeconds: Number.isFinite(visibility) ? visibility : undefined,
    redrive,
    redriveMalformed: Attributes.RedrivePolicy !== undefined && redrive === undefined,
  };
}
