// The synthesized template, asserted property by property where security or correctness depends on
// it; cdk-nag's AwsSolutions pack with nothing left unsuppressed; the app synthesized as `cdk synth`
// runs it. No account, no credentials, no network.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { addChecks, checkWithNag, suppressions } from '../lib/nag.ts';
import { DEFAULT_SETTINGS, settingsFrom, type Settings } from '../lib/settings.ts';
import { EnrollmentWorkerStack, MAX_RECEIVE_COUNT, WORKER } from '../lib/stack.ts';
import { readBootstrap, USER_DATA_LIMIT } from '../lib/user-data.ts';
import { PLACEHOLDERS, readPolicyFile } from '../lib/worker-policy.ts';

const exec = promisify(execFile);

type Json = Record<string, unknown>;

function synth(overrides: Partial<Settings> = {}, opts: { nag?: boolean } = {}) {
  const app = new App();
  const settings = { ...DEFAULT_SETTINGS, ...overrides };
  const stack = new EnrollmentWorkerStack(app, 'EnrollmentWorker', { settings });
  if (opts.nag !== false) checkWithNag(stack, settings.stagingPrefix);
  const template = Template.fromStack(stack);
  return { app, stack, template, settings };
}

const built = synth();
const { stack, template } = built;

const logicalId = (construct: { node: { defaultChild?: unknown } }): string =>
  stack.getLogicalId(construct.node.defaultChild as Parameters<Stack['getLogicalId']>[0]);

const resource = (id: string): Json => template.toJSON().Resources[id] as Json;
const props = (id: string): Json => resource(id).Properties as Json;

const jobsId = logicalId(stack.jobsQueue);
const dlqId = logicalId(stack.deadLetterQueue);
const resultId = logicalId(stack.resultQueue);
const referenceId = logicalId(stack.referenceBucket);
const stagingId = logicalId(stack.stagingBucket);

/** The one resource of a type whose properties match. */
function only(type: string, properties?: Json): [string, Json] {
  const found = Object.entries(template.findResources(type, properties ? { Properties: properties } : undefined));
  expect(found.map(([id]) => id), `${type} ${JSON.stringify(properties)}`).toHaveLength(1);
  const [id, body] = found[0]!;
  return [id, body.Properties as Json];
}

/** Every statement of the resource policy (queue or bucket policy) attached to a resource. */
function policyStatementsOf(type: 'AWS::SQS::QueuePolicy' | 'AWS::S3::BucketPolicy', id: string): Json[] {
  const policies = Object.values(template.findResources(type)).filter((p) => {
    const properties = p.Properties as Json;
    const target = type === 'AWS::SQS::QueuePolicy' ? properties.Queues : [properties.Bucket];
    return JSON.stringify(target).includes(`"${id}"`);
  });
  return policies.flatMap((p) => ((p.Properties as Json).PolicyDocument as { Statement: Json[] }).Statement);
}

function deniesInsecureTransport(statements: Json[]): boolean {
  return statements.some(
    (s) => s.Effect === 'Deny' && JSON.stringify(s.Principal) === JSON.stringify({ AWS: '*' }) && JSON.stringify(s.Condition) === JSON.stringify({ Bool: { 'aws:SecureTransport': 'false' } }),
  );
}

describe('queues', () => {
  it('the jobs queue dead-letters after 5 receives into a dead-letter queue that keeps 14 days', () => {
    expect(MAX_RECEIVE_COUNT).toBe(5);
    expect(props(jobsId).RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: 5 });
    expect(props(dlqId).MessageRetentionPeriod).toBe(14 * 24 * 3600);
    expect(props(dlqId).RedrivePolicy).toBeUndefined();
  });

  it("the visibility timeout is the worker's, which its heartbeat renews every third of it", () => {
    expect(props(jobsId).VisibilityTimeout).toBe(WORKER.visibilityTimeoutSeconds);
    // The instances' settings name the same figure (the heartbeat defaults to a third of it).
    expect(userDataText()).toContain(`export WORKER_VISIBILITY_TIMEOUT_SECONDS='${String(WORKER.visibilityTimeoutSeconds)}'`);
    expect(props(jobsId).ReceiveMessageWaitTimeSeconds).toBe(20);
  });

  it.each([
    ['jobs', () => jobsId],
    ['dead-letter', () => dlqId],
    ['result', () => resultId],
  ])('the %s queue is encrypted and refuses anything but TLS', (_name, id) => {
    expect(props(id()).SqsManagedSseEnabled).toBe(true);
    expect(deniesInsecureTransport(policyStatementsOf('AWS::SQS::QueuePolicy', id()))).toBe(true);
  });
});

describe('buckets', () => {
  it.each([
    ['reference', () => referenceId],
    ['staging', () => stagingId],
  ])('the %s bucket blocks public access, enforces TLS and ownership, and is encrypted', (_name, id) => {
    const p = props(id());
    expect(p.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(p.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    expect(p.BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] });
    expect(deniesInsecureTransport(policyStatementsOf('AWS::S3::BucketPolicy', id()))).toBe(true);
  });

  it('the reference bucket has no lifecycle rule at all, and is kept when the stack is deleted', () => {
    expect(props(referenceId).LifecycleConfiguration).toBeUndefined();
    expect(resource(referenceId).DeletionPolicy).toBe('Retain');
    expect(resource(referenceId).UpdateReplacePolicy).toBe('Retain');
  });

  it('staged uploads under the staging prefix expire after the given days', () => {
    const { template: t, stack: s } = synth({ stagingExpiryDays: 3, stagingPrefix: 'in/coming/' });
    const staging = t.toJSON().Resources[s.getLogicalId(s.stagingBucket.node.defaultChild as never)] as Json;
    expect((staging.Properties as Json).LifecycleConfiguration).toEqual({
      Rules: [{ Id: 'expire-staged-uploads', Prefix: 'in/coming/', ExpirationInDays: 3, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }],
    });
  });

  it('with encryption=kms, both buckets use the stack\'s key, and the role and producers get exactly what SSE-KMS needs of it', () => {
    const { template: t, stack: s } = synth({ encryption: 'kms' });
    const [keyId, key] = Object.entries(t.findResources('AWS::KMS::Key'))[0]!;
    expect((key.Properties as Json).EnableKeyRotation).toBe(true);
    for (const bucket of [s.referenceBucket, s.stagingBucket]) {
      const p = (t.toJSON().Resources[s.getLogicalId(bucket.node.defaultChild as never)] as Json).Properties as Json;
      expect(p.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] } } }],
      });
    }
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: [{ Sid: 'ReadAndWriteEncryptedObjects', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: { 'Fn::GetAtt': [keyId, 'Arn'] } }] },
      Roles: [{ Ref: s.getLogicalId(s.role.node.defaultChild as never) }],
    });
    t.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([{ Sid: 'EncryptStagedImages', Effect: 'Allow', Action: 'kms:GenerateDataKey', Resource: { 'Fn::GetAtt': [keyId, 'Arn'] } }]) },
    });
    // The key policy delegates to the account's IAM, which is how those grants take effect.
    expect(JSON.stringify((key.Properties as Json).KeyPolicy)).toContain(':root');
  });
});

describe('the settings secret', () => {
  it('holds a generated JOB_SIGNING_KEY of 64 characters under the name the worker and its policy use', () => {
    const [, secret] = only('AWS::SecretsManager::Secret');
    expect(secret.Name).toBe('EnrollmentWorker/settings');
    expect(secret.GenerateSecretString).toEqual({ SecretStringTemplate: '{}', GenerateStringKey: 'JOB_SIGNING_KEY', PasswordLength: 64, ExcludePunctuation: true });
    expect(userDataText()).toContain("export WORKER_SECRETS_MANAGER_SECRET_NAME='EnrollmentWorker/settings'");
  });
});

/** A CloudFormation value of the worker policy, read back into the file's placeholders. */
function placeholderText(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Json;
  if (Array.isArray(v['Fn::Join'])) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(placeholderText).join(separator);
  }
  const names: Record<string, string> = {
    'AWS::Region': 'REGION',
    'AWS::AccountId': 'ACCOUNT_ID',
    [referenceId]: 'REFERENCE_BUCKET',
    [stagingId]: 'STAGING_BUCKET',
  };
  const queues: Record<string, string> = { [jobsId]: 'JOBS_QUEUE', [dlqId]: 'DEAD_LETTER_QUEUE', [resultId]: 'RESULT_QUEUE' };
  if (typeof v.Ref === 'string' && names[v.Ref]) return names[v.Ref]!;
  const getAtt = v['Fn::GetAtt'] as [string, string] | undefined;
  if (getAtt && getAtt[1] === 'QueueName' && queues[getAtt[0]]) return queues[getAtt[0]]!;
  throw new Error(`not a value the worker policy may hold: ${JSON.stringify(value)}`);
}

const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

/** A statement as the file writes it: Action and Resource as lists, placeholders for resources. */
function fileForm(statement: Json): Json {
  const { Action, Resource, ...rest } = statement;
  return { ...rest, Action: asList(Action), Resource: asList(Resource).map(placeholderText) };
}

describe('the instance role', () => {
  it('its worker policy is systemd/iam-policy.json, statement for statement, with this stack\'s resources in place of the placeholders', () => {
    const [, policy] = only('AWS::IAM::ManagedPolicy', { Description: Match.stringLikeRegexp('iam-policy.json') });
    const actual = (policy.PolicyDocument as { Statement: Json[] }).Statement.map(fileForm);
    const literal = (s: string) => s.replaceAll('STAGING_PREFIX', DEFAULT_SETTINGS.stagingPrefix).replaceAll('SECRET_NAME', 'EnrollmentWorker/settings');
    const expected = readPolicyFile().Statement.map((s) => {
      const { Action, Resource, Condition, ...rest } = s;
      return {
        ...rest,
        Action: asList(Action),
        Resource: asList(Resource).map((r) => literal(String(r))),
        ...(Condition ? { Condition: JSON.parse(literal(JSON.stringify(Condition))) as unknown } : {}),
      };
    });
    expect(actual).toEqual(expected);
    expect((policy.PolicyDocument as Json).Version).toBe(readPolicyFile().Version);
    expect(policy.Roles).toEqual([{ Ref: logicalId(stack.role) }]);
  });

  it('no placeholder of the policy file is left anywhere in the template', () => {
    const text = JSON.stringify(template.toJSON());
    for (const name of PLACEHOLDERS) expect(text).not.toMatch(new RegExp(`\\b${name}\\b`));
  });

  it("has the CloudWatch agent's and Session Manager's managed policies, named separately, and only EC2 may assume it", () => {
    const role = props(logicalId(stack.role));
    expect(role.ManagedPolicyArns).toEqual([
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/CloudWatchAgentServerPolicy']] },
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/AmazonSSMManagedInstanceCore']] },
    ]);
    expect(role.AssumeRolePolicyDocument).toEqual({ Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' } }], Version: '2012-10-17' });
    only('AWS::IAM::InstanceProfile', { Roles: [{ Ref: logicalId(stack.role) }] });
  });

  it('the bootstrap may read the release prefix and nothing else', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [{ Sid: 'ReadTheRelease', Effect: 'Allow', Action: 's3:GetObject', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::', { Ref: 'ReleaseBucket' }, '/', { Ref: 'ReleasePrefix' }, '*']] } }],
      },
    });
  });
});

describe('the producer policy', () => {
  it('sends to the jobs queue, puts under the staging prefix, reads the signing key; it is an output with the queue URLs and bucket names', () => {
    const [id, policy] = only('AWS::IAM::ManagedPolicy', { Description: Match.stringLikeRegexp('producers') });
    expect((policy.PolicyDocument as { Statement: Json[] }).Statement).toEqual([
      { Sid: 'SendJobs', Effect: 'Allow', Action: ['sqs:SendMessage', 'sqs:GetQueueUrl'], Resource: { 'Fn::GetAtt': [jobsId, 'Arn'] } },
      { Sid: 'StageImages', Effect: 'Allow', Action: 's3:PutObject', Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [stagingId, 'Arn'] }, '/uploads/*']] } },
      { Sid: 'ReadTheSigningKey', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: logicalId(stack.secret) } },
    ]);
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.ProducerPolicyArn?.Value).toEqual({ Ref: id });
    expect(outputs.JobsQueueUrl?.Value).toEqual({ Ref: jobsId });
    expect(outputs.ResultQueueUrl?.Value).toEqual({ Ref: resultId });
    expect(outputs.StagingBucketName?.Value).toEqual({ Ref: stagingId });
    expect(outputs.ReferenceBucketName?.Value).toEqual({ Ref: referenceId });
  });
});

function launchTemplateData(): Json {
  const [, lt] = only('AWS::EC2::LaunchTemplate');
  return lt.LaunchTemplateData as Json;
}

/** The user data as text, with CloudFormation's references shown as ${Name}. */
function userDataText(): string {
  const encoded = launchTemplateData().UserData as { 'Fn::Base64': unknown };
  const text = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const o = v as Json;
    if (o['Fn::Join']) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(text).join(sep);
    }
    if (o.Ref) return `\${${String(o.Ref)}}`;
    if (o['Fn::GetAtt']) return `\${${(o['Fn::GetAtt'] as string[]).join('.')}}`;
    return JSON.stringify(v);
  };
  return text(encoded['Fn::Base64']);
}

describe('the launch template', () => {
  it('requires IMDSv2 with one hop, encrypts the root volume, and has no SSH key', () => {
    const data = launchTemplateData();
    expect(data.MetadataOptions).toEqual({ HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled', InstanceMetadataTags: 'disabled' });
    expect(data.BlockDeviceMappings).toEqual([{ DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeType: 'gp3', VolumeSize: 16, DeleteOnTermination: true } }]);
    expect(data.KeyName).toBeUndefined();
    expect(data.ImageId).toEqual({ Ref: 'ImageId' });
    const image = (template.toJSON().Parameters as Record<string, Json>).ImageId!;
    expect(image.Default).toBe('/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64');
  });

  it('the security group lets nothing in', () => {
    const [, sg] = only('AWS::EC2::SecurityGroup');
    expect(sg.SecurityGroupIngress).toBeUndefined();
    expect(sg.SecurityGroupEgress).toEqual([expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 })]);
    expect(Object.keys(template.findResources('AWS::EC2::SecurityGroupIngress'))).toEqual([]);
  });

  it('its user data is infra/bootstrap/bootstrap.sh as it is in the repo, after the environment it documents', () => {
    const text = userDataText();
    const script = readBootstrap();
    expect(text.endsWith(script.slice('#!/bin/bash\n'.length))).toBe(true);
    expect(text.startsWith('#!/bin/bash\n')).toBe(true);
    const exported = [...text.matchAll(/^export ([A-Z0-9_]+)=/gm)].map((m) => m[1]);
    for (const name of ['AWS_REGION', 'RELEASE_BUCKET', 'RELEASE_PREFIX', 'RELEASE_VERSION', 'NODE_TARBALL', 'LOG_GROUP', 'METRICS_LOG_GROUP', 'METRICS_NAMESPACE', 'CLOUDWATCH_AGENT']) {
      expect(exported).toContain(name);
      // Each variable the launch template sets is one the script reads.
      expect(script).toMatch(new RegExp(`\\$\\{?${name}\\b`));
    }
    for (const setting of ['AWS_REGION', 'SQS_QUEUE_URL', 'S3_BUCKET', 'STAGING_BUCKET', 'STAGING_PREFIX', 'RESULT_QUEUE_URL', 'SECRETS_MANAGER_SECRET_NAME', 'METRICS_PORT']) {
      expect(exported).toContain(`WORKER_${setting}`);
    }
    expect(text).toContain(`export WORKER_SQS_QUEUE_URL='\${${jobsId}}'`);
    expect(text).toContain("export CLOUDWATCH_AGENT='install'");
    // No credentials, ever.
    expect(text).not.toMatch(/AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|JOB_SIGNING_KEY=/);
    expect(Buffer.byteLength(text)).toBeLessThan(USER_DATA_LIMIT - 2048);
  });
});

describe('the Auto Scaling group', () => {
  it('spans the given subnets, from the launch template\'s latest version, collecting group metrics', () => {
    const [, group] = only('AWS::AutoScaling::AutoScalingGroup');
    expect(group.VPCZoneIdentifier).toEqual({ Ref: 'SubnetIds' });
    expect(group.MinSize).toEqual({ Ref: 'MinSize' });
    expect(group.MaxSize).toEqual({ Ref: 'MaxSize' });
    expect((group.LaunchTemplate as Json).Version).toEqual({ 'Fn::GetAtt': [expect.any(String), 'LatestVersionNumber'] });
    expect(group.MetricsCollection).toEqual([{ Granularity: '1Minute', Metrics: expect.arrayContaining(['GroupInServiceInstances', 'GroupMaxSize']) }]);
  });

  it('a new release rolls the group one instance at a time', () => {
    const [id] = only('AWS::AutoScaling::AutoScalingGroup');
    expect(resource(id).UpdatePolicy).toEqual({ AutoScalingRollingUpdate: expect.objectContaining({ MaxBatchSize: 1, MinInstancesInService: 1 }) });
  });

  it('tracks the backlog per instance by metric math: visible jobs ÷ in-service instances, at the target parameter', () => {
    const [groupId] = only('AWS::AutoScaling::AutoScalingGroup');
    const [, policy] = only('AWS::AutoScaling::ScalingPolicy');
    expect(policy.PolicyType).toBe('TargetTrackingScaling');
    expect(policy.AutoScalingGroupName).toEqual({ Ref: groupId });
    const config = policy.TargetTrackingConfiguration as Json;
    expect(config.TargetValue).toEqual({ Ref: 'BacklogPerInstanceTarget' });
    expect(config.CustomizedMetricSpecification).toEqual({
      Metrics: [
        {
          Id: 'visible',
          MetricStat: { Metric: { Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [jobsId, 'QueueName'] } }] }, Stat: 'Sum' },
          ReturnData: false,
        },
        {
          Id: 'inservice',
          MetricStat: { Metric: { Namespace: 'AWS/AutoScaling', MetricName: 'GroupInServiceInstances', Dimensions: [{ Name: 'AutoScalingGroupName', Value: { Ref: groupId } }] }, Stat: 'Average' },
          ReturnData: false,
        },
        { Id: 'backlog', Expression: 'visible / inservice', Label: 'Visible jobs per in-service instance', ReturnData: true },
      ],
    });
  });
});

describe('alarms', () => {
  const [topicId] = only('AWS::SNS::Topic');
  const alarms = () => template.findResources('AWS::CloudWatch::Alarm');

  it('any message in the dead-letter queue alarms, to the topic', () => {
    const [, alarm] = only('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateNumberOfMessagesVisible', Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlqId, 'QueueName'] } }] });
    expect(alarm).toMatchObject({ Namespace: 'AWS/SQS', Statistic: 'Maximum', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1, AlarmActions: [{ Ref: topicId }] });
  });

  it('every alarm goes to the topic and treats missing data as not breaching (an idle queue does not alarm)', () => {
    const all = Object.values(alarms()).map((a) => a.Properties as Json);
    expect(all).toHaveLength(6);
    for (const a of all) {
      expect(a.TreatMissingData).toBe('notBreaching');
      expect(a.AlarmActions).toEqual([{ Ref: topicId }]);
    }
  });

  it('the oldest job, no success while jobs wait, a stuck slot, the group at its maximum for 15 minutes, memory near MemoryHigh', () => {
    only('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateAgeOfOldestMessage', Threshold: DEFAULT_SETTINGS.oldestJobAlarmSeconds });
    only('AWS::CloudWatch::Alarm', { MetricName: 'enrollment_slots_stuck', Namespace: 'EnrollmentWorker/EnrollmentWorker', Threshold: 0 });
    only('AWS::CloudWatch::Alarm', { MetricName: 'process_resident_memory_bytes', Threshold: Math.floor(768 * 1024 * 1024 * 0.9) });
    const math = Object.values(alarms())
      .map((a) => a.Properties as Json)
      .filter((a) => a.Metrics);
    const expression = (a: Json) => (a.Metrics as Json[]).find((m) => m.Expression)?.Expression;
    const noSuccess = math.find((a) => expression(a) === 'IF(visible > 0 AND FILL(succeeded, 0) <= 0, 1, 0)');
    expect(noSuccess?.EvaluationPeriods).toBe(DEFAULT_SETTINGS.noSuccessAlarmMinutes);
    const atMax = math.find((a) => expression(a) === 'IF(inservice >= maxsize, 1, 0)');
    expect(atMax).toMatchObject({ EvaluationPeriods: 15, Threshold: 1 });
    expect(JSON.stringify(atMax)).toContain('GroupMaxSize');
  });

  it('the email subscription exists only when an address is given', () => {
    const [, sub] = Object.entries(template.findResources('AWS::SNS::Subscription'))[0]!;
    expect(sub.Condition).toBe('HasAlarmEmail');
  });
});

describe('cdk-nag AwsSolutions', () => {
  const findings = (s: Stack) => [
    ...Annotations.fromStack(s).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ...Annotations.fromStack(s).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
  ];

  it.each([
    ['S3-managed keys', {}],
    ['a KMS key and another staging prefix', { encryption: 'kms', stagingPrefix: 'in/' } as Partial<Settings>],
  ])('finds nothing unsuppressed, with %s', (_name, overrides) => {
    const s = synth(overrides).stack;
    expect(findings(s).map((f) => `${f.id}: ${String(f.entry.data)}`)).toEqual([]);
  });

  it('would find what the suppressions answer, each with its reason', () => {
    const app = new App();
    const s = new EnrollmentWorkerStack(app, 'Unsuppressed', { settings: DEFAULT_SETTINGS });
    // The checks without the suppressions: the same rules fire, so the suppressions are needed.
    addChecks(s);
    const fired = new Set(findings(s).map((f) => String(f.entry.data).split(':')[0]!.replace(/\[.*$/, '')));
    const suppressed = new Set(Object.values(suppressions('uploads/')).flat().map((x) => x.id));
    expect([...fired].sort()).toEqual([...suppressed].sort());
    for (const x of Object.values(suppressions('uploads/')).flat()) expect(x.reason.length).toBeGreaterThan(40);
  });
});

describe('settings', () => {
  it('context values are read and checked', () => {
    expect(settingsFrom(() => undefined)).toEqual(DEFAULT_SETTINGS);
    const ctx: Record<string, unknown> = { encryption: 'kms', stagingPrefix: 'a/b/', stagingExpiryDays: '30' };
    expect(settingsFrom((k) => ctx[k])).toMatchObject({ encryption: 'kms', stagingPrefix: 'a/b/', stagingExpiryDays: 30 });
    expect(() => settingsFrom((k) => ({ encryption: 'none' })[k])).toThrow(/encryption must be s3 or kms/);
    expect(() => settingsFrom((k) => ({ stagingPrefix: 'uploads' })[k])).toThrow(/stagingPrefix/);
    expect(() => settingsFrom((k) => ({ stagingPrefix: '../x/' })[k])).toThrow(/stagingPrefix/);
    expect(() => settingsFrom((k) => ({ stagingExpiryDays: '0' })[k])).toThrow(/stagingExpiryDays/);
  });
});

describe('cdk synth', () => {
  it('the app synthesizes with its defaults, no account and no lookups, into one template', async () => {
    const out = await mkdtemp(join(tmpdir(), 'infra-synth-'));
    try {
      await exec(process.execPath, [resolve(import.meta.dirname, '..', 'bin', 'app.ts')], {
        cwd: resolve(import.meta.dirname, '..'),
        env: { ...process.env, CDK_OUTDIR: out, CDK_CONTEXT_JSON: JSON.stringify({}) },
      });
      const files = await readdir(out);
      expect(files).toContain('EnrollmentWorker.template.json');
      const synthesized = JSON.parse(await readFile(join(out, 'EnrollmentWorker.template.json'), 'utf8')) as Json;
      expect(Object.keys(synthesized.Resources as Json).length).toBeGreaterThan(20);
      const manifest = await readFile(join(out, 'manifest.json'), 'utf8');
      expect(manifest).toContain('aws://unknown-account/unknown-region');
      // A context lookup (fromLookup) would be listed as missing context, needing an account.
      expect((JSON.parse(manifest) as Json).missing).toBeUndefined();
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
