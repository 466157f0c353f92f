// cdk-nag's AwsSolutions pack over the stack, with every suppression, what it applies to and why,
// in one place. The app applies it at synthesis (an unsuppressed finding is an error there and
// fails `cdk synth`); the tests assert that nothing is left unsuppressed.
import { Aspects, type Stack } from 'aws-cdk-lib';
// cdk-nag is CommonJS whose exports Node's ESM loader cannot list: take them off the module.
import nag from 'cdk-nag';

const { AwsSolutionsChecks, NagSuppressions } = nag;

type Suppression = { id: string; reason: string; appliesTo?: string[] };

/** Suppressions by construct path under the stack. */
export function suppressions(stagingPrefix: string): Record<string, Suppression[]> {
  return {
    'InstanceRole/Resource': [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          "The CloudWatch agent and Session Manager need AWS's CloudWatchAgentServerPolicy and AmazonSSMManagedInstanceCore, and with tracing=on the agent's X-Ray export AWSXRayDaemonWriteAccess, attached by name (as their documentation says) and kept current by AWS; the worker's own grants are the customer managed WorkerPolicy (systemd/iam-policy.json)",
        appliesTo: [
          'Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy',
          'Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore',
          'Policy::arn:<AWS::Partition>:iam::aws:policy/AWSXRayDaemonWriteAccess',
        ],
      },
    ],
    'WorkerPolicy/Resource': [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'systemd/iam-policy.json (docs/operations.md "IAM"): the worker writes references only under users/ of the reference bucket (their names are made per job), and reads and deletes staged images only under the staging prefix (producers choose their names)',
        appliesTo: ['Resource::arn:aws:s3:::<ReferenceBucket7BB82C12>/users/*', `Resource::arn:aws:s3:::<StagingBucket9644C37C>/${stagingPrefix}*`],
      },
    ],
    'ProducerPolicy/Resource': [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'Producers put staged images only under the staging prefix, with names of their own choosing',
        appliesTo: [`Resource::<StagingBucket9644C37C.Arn>/${stagingPrefix}*`],
      },
    ],
    'BootstrapPolicy/Resource': [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'The bootstrap script reads the release tarball, its SHA256SUMS and a Node.js tarball, all under the release prefix the deployer names',
        appliesTo: ['Resource::arn:<AWS::Partition>:s3:::<ReleaseBucket>/<ReleasePrefix>*'],
      },
    ],
    'ResultQueue/Resource': [
      {
        id: 'AwsSolutions-SQS3',
        reason: "The result queue is read by upstream consumers: a dead-letter queue for what they cannot handle is theirs to add, with their own maxReceiveCount",
      },
    ],
    'ReferenceBucket/Resource': [
      {
        id: 'AwsSolutions-S1',
        reason: 'Server access logs would need a third bucket; the audit of who read or wrote a reference is CloudTrail data events, an account-wide choice (docs/operations.md "Deploy on AWS")',
      },
    ],
    'StagingBucket/Resource': [
      {
        id: 'AwsSolutions-S1',
        reason: 'Staged uploads are transient (expired by lifecycle); access to them is audited, where wanted, by CloudTrail data events like the reference bucket',
      },
    ],
    'SettingsSecret/Resource': [
      {
        id: 'AwsSolutions-SMG4',
        reason:
          'JOB_SIGNING_KEY is shared with the producers, so it is rotated by the two-key procedure of docs/producers.md "Signed jobs" (JOB_SIGNING_KEY_PREVIOUS, reload, move the producers, drop the old key), which an automatic single-step rotation would break',
      },
    ],
  };
}

/** The AwsSolutions checks alone (the tests use it to show the suppressions answer real findings). */
export function addChecks(stack: Stack): void {
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: false }));
}

export function checkWithNag(stack: Stack, stagingPrefix: string): void {
  addChecks(stack);
  for (const [path, list] of Object.entries(suppressions(stagingPrefix))) {
    NagSuppressions.addResourceSuppressionsByPath(stack, `/${stack.node.path}/${path}`, list);
  }
}
