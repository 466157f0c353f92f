// The whole service on AWS, one stack: the jobs queue with its dead-letter queue, the result queue,
// the reference and staging buckets, the settings secret with a generated signing key, the instance
// role (its worker policy is systemd/iam-policy.json), the producer policy, a launch template whose
// user data is infra/bootstrap/bootstrap.sh, an Auto Scaling group that tracks the backlog per
// instance, the alarms and a dashboard; with `-c tracing=on`, spans to X-Ray through the CloudWatch
// agent. docs/operations.md "Deploy on AWS" says how it is deployed and why.
import {
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  type StackProps,
} from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { Settings } from './settings.ts';
import { readBootstrap, userData } from './user-data.ts';
import { readPolicyFile, substitute } from './worker-policy.ts';

export interface EnrollmentWorkerStackProps extends StackProps {
  readonly settings: Settings;
}

/** The worker's defaults the queue must agree with (docs/architecture.md "Queue semantics", docs/operations.md "Configuration"). */
export const WORKER = {
  /** VISIBILITY_TIMEOUT_SECONDS: the heartbeat renews it every third of it while a job runs. */
  visibilityTimeoutSeconds: 60,
  /** MemoryHigh= of the shipped unit, in bytes: the memory alarm fires at 90% of it. */
  memoryHighBytes: 768 * 1024 * 1024,
  /** METRICS_PORT the instances serve /metrics on (loopback only: METRICS_HOST's default). */
  metricsPort: 9464,
  /** The scrape job's name: the one dimension of the worker's metrics in CloudWatch. */
  scrapeJob: 'enrollment-worker',
  /** Where the CloudWatch agent receives OTLP/HTTP traces (systemd/cloudwatch-agent.json). */
  otlpEndpoint: 'http://127.0.0.1:4318',
} as const;

export const MAX_RECEIVE_COUNT = 5;

export class EnrollmentWorkerStack extends Stack {
  readonly jobsQueue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly resultQueue: sqs.Queue;
  readonly referenceBucket: s3.Bucket;
  readonly stagingBucket: s3.Bucket;
  readonly secret: secretsmanager.Secret;
  readonly role: iam.Role;
  readonly workerPolicy: iam.ManagedPolicy;
  readonly producerPolicy: iam.ManagedPolicy;
  readonly alarms: Record<string, cloudwatch.Alarm>;

  constructor(scope: Construct, id: string, props: EnrollmentWorkerStackProps) {
    super(scope, id, props);
    const { settings } = props;

    // --- Deployment-time parameters (`cdk deploy --parameters Name=value`) ---------------------------
    const vpcId = new CfnParameter(this, 'VpcId', {
      type: 'AWS::EC2::VPC::Id',
      description: 'The VPC of the instances (its subnets need a route to SQS, S3, Secrets Manager, CloudWatch and SSM: a NAT gateway or VPC endpoints)',
    });
    const subnetIds = new CfnParameter(this, 'SubnetIds', {
      type: 'List<AWS::EC2::Subnet::Id>',
      description: 'Private subnets of that VPC, one per Availability Zone to spread over',
    });
    const releaseBucket = new CfnParameter(this, 'ReleaseBucket', {
      type: 'String',
      allowedPattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
      description: 'The bucket holding the release tarball and its SHA256SUMS (npm run release)',
    });
    const releasePrefix = new CfnParameter(this, 'ReleasePrefix', {
      type: 'String',
      default: 'releases/',
      allowedPattern: '^([A-Za-z0-9._-]+/)*$',
      description: 'The key prefix of the release files in that bucket (empty, or ending with /)',
    });
    const releaseVersion = new CfnParameter(this, 'ReleaseVersion', {
      type: 'String',
      allowedPattern: '^[0-9]+\\.[0-9]+\\.[0-9]+([-+][0-9A-Za-z.+-]+)?$',
      description: 'The release to run: enrollment-worker-<version>-linux-<arch>.tar.gz under the prefix. A new value rolls the group',
    });
    const nodeTarball = new CfnParameter(this, 'NodeTarball', {
      type: 'String',
      default: '',
      allowedPattern: '^(node-v24\\.[0-9]+\\.[0-9]+-linux-(x64|arm64)\\.tar\\.(gz|xz))?$',
      description: "An official Node.js 24 tarball under the release prefix, verified by nodejs.org's SHASUMS256.txt beside it; empty: the distribution's nodejs24 package (Amazon Linux 2023)",
    });
    const imageId = new CfnParameter(this, 'ImageId', {
      type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      default: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64',
      description: 'The AMI, as an SSM parameter: Amazon Linux 2023 (arm64: al2023-ami-kernel-default-arm64, with a Graviton instance type and an arm64 release)',
    });
    const instanceType = new CfnParameter(this, 'InstanceType', {
      type: 'String',
      default: 'c7i.large',
      allowedPattern: '^[a-z][a-z0-9-]*\\.[a-z0-9]+$',
      description: 'The instance type (its architecture must match the AMI and the release)',
    });
    const minSize = new CfnParameter(this, 'MinSize', { type: 'Number', default: 1, minValue: 1, description: 'Instances at rest (at least one: the backlog per instance needs one to divide by)' });
    const maxSize = new CfnParameter(this, 'MaxSize', { type: 'Number', default: 10, minValue: 2, description: 'Instances at most (at least 2: a rolling update keeps one in service while it adds the next)' });
    const backlogTarget = new CfnParameter(this, 'BacklogPerInstanceTarget', {
      type: 'Number',
      default: 1500,
      minValue: 1,
      description: 'Visible jobs per in-service instance the group keeps to: jobs/s per instance x acceptable latency in s (BENCHMARKS.md "Scale on paper": 50 jobs/s x 30 s)',
    });
    const alarmEmail = new CfnParameter(this, 'AlarmEmail', {
      type: 'String',
      default: '',
      allowedPattern: '^([^\\s@\']+@[^\\s@\']+)?$',
      description: 'An address subscribed to the alarm topic (it must confirm); empty: none',
    });

    // --- Encryption at rest ------------------------------------------------------------------------
    const key =
      settings.encryption === 'kms'
        ? new kms.Key(this, 'DataKey', {
            description: 'enrollment-worker: the reference and staging buckets',
            enableKeyRotation: true,
            removalPolicy: RemovalPolicy.RETAIN,
          })
        : undefined;
    const bucketEncryption = key
      ? { encryption: s3.BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true }
      : { encryption: s3.BucketEncryption.S3_MANAGED };

    // --- Queues ------------------------------------------------------------------------------------
    const queueDefaults = {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    } as const;
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      ...queueDefaults,
      retentionPeriod: Duration.days(14),
    });
    this.jobsQueue = new sqs.Queue(this, 'JobsQueue', {
      ...queueDefaults,
      // What the worker asks for at every receive and renews by heartbeat (a third of it); the
      // queue's own default matters for any other consumer and for `enrollment-worker check`.
      visibilityTimeout: Duration.seconds(WORKER.visibilityTimeoutSeconds),
      // Long polls by default, as the worker does.
      receiveMessageWaitTime: Duration.seconds(20),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    this.resultQueue = new sqs.Queue(this, 'ResultQueue', { ...queueDefaults, retentionPeriod: Duration.days(4) });

    // --- Buckets -----------------------------------------------------------------------------------
    const bucketDefaults = {
      ...bucketEncryption,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    } as const;
    // The references decide whose face unlocks an account: no lifecycle rule that deletes anything,
    // and kept when the stack is deleted.
    this.referenceBucket = new s3.Bucket(this, 'ReferenceBucket', {
      ...bucketDefaults,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.stagingBucket = new s3.Bucket(this, 'StagingBucket', {
      ...bucketDefaults,
      lifecycleRules: [
        {
          id: 'expire-staged-uploads',
          prefix: settings.stagingPrefix,
          expiration: Duration.days(settings.stagingExpiryDays),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: false,
    });

    // --- The settings secret: JOB_SIGNING_KEY, generated (docs/producers.md "Signed jobs") -------------------
    const secretName = `${this.stackName}/settings`;
    this.secret = new secretsmanager.Secret(this, 'SettingsSecret', {
      secretName,
      description: 'enrollment-worker settings (JSON): JOB_SIGNING_KEY, read by the worker and by producers that sign jobs',
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'JOB_SIGNING_KEY',
        passwordLength: 64,
        excludePunctuation: true,
      },
    });

    // --- The instance role ------------------------------------------------------------------------
    this.role = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'enrollment-worker instances: the worker policy (systemd/iam-policy.json), the release download, CloudWatch agent, Session Manager',
    });
    this.workerPolicy = new iam.ManagedPolicy(this, 'WorkerPolicy', {
      description: 'systemd/iam-policy.json with this stack\'s resources',
      document: iam.PolicyDocument.fromJson(
        substitute(readPolicyFile(), {
          REGION: Aws.REGION,
          ACCOUNT_ID: Aws.ACCOUNT_ID,
          JOBS_QUEUE: this.jobsQueue.queueName,
          DEAD_LETTER_QUEUE: this.deadLetterQueue.queueName,
          RESULT_QUEUE: this.resultQueue.queueName,
          REFERENCE_BUCKET: this.referenceBucket.bucketName,
          STAGING_BUCKET: this.stagingBucket.bucketName,
          STAGING_PREFIX: settings.stagingPrefix,
          SECRET_NAME: secretName,
        }),
      ),
      roles: [this.role],
    });
    // What the bootstrap script reads: the release files (and a Node tarball beside them).
    new iam.Policy(this, 'BootstrapPolicy', {
      roles: [this.role],
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadTheRelease',
          actions: ['s3:GetObject'],
          resources: [`arn:${Aws.PARTITION}:s3:::${releaseBucket.valueAsString}/${releasePrefix.valueAsString}*`],
        }),
      ],
    });
    // The CloudWatch agent (logs, the scraped metrics) and Session Manager (no SSH): AWS's own
    // managed policies, attached by name so what they grant stays AWS's to maintain.
    this.role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('CloudWatchAgentServerPolicy'));
    this.role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'));
    // With tracing on, the agent (not the worker, which calls no X-Ray API) sends the spans to X-Ray.
    const tracing = settings.tracing === 'on';
    if (tracing) this.role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('AWSXRayDaemonWriteAccess'));
    const instanceProfile = new iam.CfnInstanceProfile(this, 'InstanceProfile', { roles: [this.role.roleName] });

    // --- The producer policy: what upstream services attach to their own roles -------------------
    this.producerPolicy = new iam.ManagedPolicy(this, 'ProducerPolicy', {
      description: 'enrollment-worker producers: send jobs, stage images, read the signing key',
      statements: [
        new iam.PolicyStatement({ sid: 'SendJobs', actions: ['sqs:SendMessage', 'sqs:GetQueueUrl'], resources: [this.jobsQueue.queueArn] }),
        new iam.PolicyStatement({ sid: 'StageImages', actions: ['s3:PutObject'], resources: [this.stagingBucket.arnForObjects(`${settings.stagingPrefix}*`)] }),
        new iam.PolicyStatement({ sid: 'ReadTheSigningKey', actions: ['secretsmanager:GetSecretValue'], resources: [this.secret.secretArn] }),
      ],
    });

    if (key) {
      // SSE-KMS: the worker decrypts staged images and encrypts references; producers encrypt
      // staged uploads. The key policy delegates to IAM (CDK's default: the account, which is how
      // a producer's role, unknown here, can be granted it), and the grants name this one key and
      // only the actions SSE-KMS needs: GenerateDataKey to put, Decrypt to get.
      new iam.Policy(this, 'WorkerKmsPolicy', {
        roles: [this.role],
        statements: [new iam.PolicyStatement({ sid: 'ReadAndWriteEncryptedObjects', actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] })],
      });
      this.producerPolicy.addStatements(
        new iam.PolicyStatement({ sid: 'EncryptStagedImages', actions: ['kms:GenerateDataKey'], resources: [key.keyArn] }),
      );
    }

    // --- Logs and the alarm topic -----------------------------------------------------------------
    const logGroup = new logs.LogGroup(this, 'WorkerLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The CloudWatch agent publishes the scraped metrics as embedded-metric-format log events here.
    const metricsLogGroup = new logs.LogGroup(this, 'WorkerMetricsLogs', {
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const metricsNamespace = `EnrollmentWorker/${this.stackName}`;

    const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'enrollment-worker alarms', enforceSSL: true });
    const hasEmail = new CfnCondition(this, 'HasAlarmEmail', { expression: Fn.conditionNot(Fn.conditionEquals(alarmEmail.valueAsString, '')) });
    const subscription = new sns.CfnSubscription(this, 'AlarmEmailSubscription', {
      topicArn: topic.topicArn,
      protocol: 'email',
      endpoint: alarmEmail.valueAsString,
    });
    subscription.cfnOptions.condition = hasEmail;

    // --- The instances ----------------------------------------------------------------------------
    const securityGroup = new ec2.CfnSecurityGroup(this, 'InstanceSecurityGroup', {
      vpcId: vpcId.valueAsString,
      groupDescription: 'enrollment-worker instances: no inbound; HTTPS out (AWS APIs, package repositories)',
      securityGroupEgress: [{ ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidrIp: '0.0.0.0/0', description: 'HTTPS: SQS, S3, Secrets Manager, STS, CloudWatch, SSM, dnf' }],
    });

    const script = userData(readBootstrap(), {
      AWS_REGION: Aws.REGION,
      RELEASE_BUCKET: releaseBucket.valueAsString,
      RELEASE_PREFIX: releasePrefix.valueAsString,
      RELEASE_VERSION: releaseVersion.valueAsString,
      NODE_TARBALL: nodeTarball.valueAsString,
      LOG_GROUP: logGroup.logGroupName,
      METRICS_LOG_GROUP: metricsLogGroup.logGroupName,
      METRICS_NAMESPACE: metricsNamespace,
      CLOUDWATCH_AGENT: 'install',
      // The worker's settings file: every WORKER_<NAME> becomes NAME=value.
      WORKER_AWS_REGION: Aws.REGION,
      WORKER_SQS_QUEUE_URL: this.jobsQueue.queueUrl,
      WORKER_S3_BUCKET: this.referenceBucket.bucketName,
      WORKER_STAGING_BUCKET: this.stagingBucket.bucketName,
      WORKER_STAGING_PREFIX: settings.stagingPrefix,
      WORKER_RESULT_QUEUE_URL: this.resultQueue.queueUrl,
      WORKER_SECRETS_MANAGER_SECRET_NAME: secretName,
      WORKER_DELETE_STAGED_SOURCES: 'true',
      WORKER_VISIBILITY_TIMEOUT_SECONDS: String(WORKER.visibilityTimeoutSeconds),
      WORKER_METRICS_PORT: String(WORKER.metricsPort),
      // The CloudWatch agent receives OTLP/HTTP on this address (systemd/cloudwatch-agent.json);
      // named by address, as the agent binds it, rather than as localhost.
      ...(tracing
        ? {
            WORKER_OTEL_TRACES_EXPORTER: 'otlp',
            WORKER_OTEL_EXPORTER_OTLP_ENDPOINT: WORKER.otlpEndpoint,
            WORKER_OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
            WORKER_OTEL_TRACES_SAMPLER_ARG: String(settings.tracingSampleRatio),
          }
        : {}),
    });

    const launchTemplate = new ec2.CfnLaunchTemplate(this, 'LaunchTemplate', {
      launchTemplateData: {
        imageId: imageId.valueAsString,
        instanceType: instanceType.valueAsString,
        iamInstanceProfile: { arn: instanceProfile.attrArn },
        securityGroupIds: [securityGroup.attrGroupId],
        // IMDSv2 only, and one hop: a container on the instance cannot reach the role's credentials.
        metadataOptions: { httpTokens: 'required', httpPutResponseHopLimit: 1, httpEndpoint: 'enabled', instanceMetadataTags: 'disabled' },
        blockDeviceMappings: [
          { deviceName: '/dev/xvda', ebs: { encrypted: true, volumeType: 'gp3', volumeSize: 16, deleteOnTermination: true } },
        ],
        userData: Fn.base64(script),
        tagSpecifications: [{ resourceType: 'instance', tags: [{ key: 'Name', value: `${this.stackName}-worker` }] }],
      },
    });

    const group = new autoscaling.CfnAutoScalingGroup(this, 'WorkerGroup', {
      minSize: minSize.valueAsString,
      maxSize: maxSize.valueAsString,
      vpcZoneIdentifier: subnetIds.valueAsList,
      launchTemplate: { launchTemplateId: launchTemplate.ref, version: launchTemplate.attrLatestVersionNumber },
      // GroupInServiceInstances is the divisor of the backlog per instance; GroupMaxSize the alarm's.
      metricsCollection: [{ granularity: '1Minute', metrics: ['GroupInServiceInstances', 'GroupMaxSize', 'GroupDesiredCapacity', 'GroupPendingInstances', 'GroupTerminatingInstances'] }],
      notificationConfigurations: [
        { topicArn: topic.topicArn, notificationTypes: ['autoscaling:EC2_INSTANCE_LAUNCH', 'autoscaling:EC2_INSTANCE_LAUNCH_ERROR', 'autoscaling:EC2_INSTANCE_TERMINATE', 'autoscaling:EC2_INSTANCE_TERMINATE_ERROR'] },
      ],
      // Scale-in never needs to wait for a job: SIGTERM drains (docs/operations.md "Deploy on AWS").
      terminationPolicies: ['OldestLaunchTemplate', 'Default'],
      tags: [{ key: 'Name', value: `${this.stackName}-worker`, propagateAtLaunch: true }],
    });
    // A new release (or AMI, or any launch template change) rolls the group one instance at a time,
    // keeping at least MinSize in service.
    group.cfnOptions.updatePolicy = {
      autoScalingRollingUpdate: {
        maxBatchSize: 1,
        minInstancesInService: 1,
        pauseTime: 'PT4M',
        suspendProcesses: ['HealthCheck', 'ReplaceUnhealthy', 'AZRebalance', 'AlarmNotification', 'ScheduledActions'],
      },
    };

    // --- Scaling: target tracking on the backlog per instance (metric math) ------------------------
    // AWS's guidance for SQS workers: visible jobs ÷ in-service instances, held at a target that is
    // an instance's jobs/s times the acceptable latency. CDK's L2 scaling construct refuses metric
    // math; the L1 policy takes it. No metric publisher of our own.
    new autoscaling.CfnScalingPolicy(this, 'BacklogPerInstance', {
      autoScalingGroupName: group.ref,
      policyType: 'TargetTrackingScaling',
      targetTrackingConfiguration: {
        targetValue: backlogTarget.valueAsNumber,
        customizedMetricSpecification: {
          metrics: [
            {
              id: 'visible',
              metricStat: {
                metric: { namespace: 'AWS/SQS', metricName: 'ApproximateNumberOfMessagesVisible', dimensions: [{ name: 'QueueName', value: this.jobsQueue.queueName }] },
                stat: 'Sum',
              },
              returnData: false,
            },
            {
              id: 'inservice',
              metricStat: {
                metric: { namespace: 'AWS/AutoScaling', metricName: 'GroupInServiceInstances', dimensions: [{ name: 'AutoScalingGroupName', value: group.ref }] },
                stat: 'Average',
              },
              returnData: false,
            },
            { id: 'backlog', expression: 'visible / inservice', label: 'Visible jobs per in-service instance', returnData: true },
          ],
        },
      },
    });

    // --- Alarms: to the topic; an idle queue does not alarm (missing data is not breaching) --------
    const minute = Duration.minutes(1);
    const sqsMetric = (queue: sqs.Queue, name: string) =>
      new cloudwatch.Metric({ namespace: 'AWS/SQS', metricName: name, dimensionsMap: { QueueName: queue.queueName }, statistic: 'Maximum', period: minute });
    const groupMetric = (name: string) =>
      new cloudwatch.Metric({ namespace: 'AWS/AutoScaling', metricName: name, dimensionsMap: { AutoScalingGroupName: group.ref }, statistic: 'Average', period: minute });
    const workerMetric = (name: string, statistic: string) =>
      new cloudwatch.Metric({ namespace: metricsNamespace, metricName: name, dimensionsMap: { job: WORKER.scrapeJob }, statistic, period: minute });

    const visible = sqsMetric(this.jobsQueue, 'ApproximateNumberOfMessagesVisible');
    const oldest = sqsMetric(this.jobsQueue, 'ApproximateAgeOfOldestMessage');
    const deadLettered = sqsMetric(this.deadLetterQueue, 'ApproximateNumberOfMessagesVisible');
    const succeeded = workerMetric('enrollment_jobs_succeeded_total', 'Sum');
    const stuck = workerMetric('enrollment_slots_stuck', 'Maximum');
    const memory = workerMetric('process_resident_memory_bytes', 'Maximum');
    const inService = groupMetric('GroupInServiceInstances');
    const groupMax = groupMetric('GroupMaxSize');
    const backlogPerInstance = new cloudwatch.MathExpression({ expression: 'visible / inservice', usingMetrics: { visible: visible.with({ statistic: 'Sum' }), inservice: inService }, label: 'backlog per instance', period: minute });

    const notBreaching = cloudwatch.TreatMissingData.NOT_BREACHING;
    const alarm = (id: string, props: cloudwatch.AlarmProps) => {
      const a = new cloudwatch.Alarm(this, id, { treatMissingData: notBreaching, ...props });
      a.addAlarmAction(new cloudwatchActions.SnsAction(topic));
      a.addOkAction(new cloudwatchActions.SnsAction(topic));
      return a;
    };
    this.alarms = {
      oldestJob: alarm('OldestJobAlarm', {
        alarmDescription: `The oldest job has waited more than ${String(settings.oldestJobAlarmSeconds)} s: the group does not keep up (or is at its maximum), or the workers fail to take jobs`,
        metric: oldest,
        threshold: settings.oldestJobAlarmSeconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
      }),
      deadLetter: alarm('DeadLetterAlarm', {
        alarmDescription: 'A job is in the dead-letter queue: each is a failed enrollment (docs/producers.md "Error codes"); read it, fix the cause, redrive or re-issue',
        metric: deadLettered,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
      }),
      noSuccess: alarm('NoSuccessAlarm', {
        alarmDescription: `No job succeeded for ${String(settings.noSuccessAlarmMinutes)} minutes while jobs were waiting`,
        metric: new cloudwatch.MathExpression({
          expression: 'IF(visible > 0 AND FILL(succeeded, 0) <= 0, 1, 0)',
          usingMetrics: { visible, succeeded },
          label: 'jobs waiting, none succeeding',
          period: minute,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: settings.noSuccessAlarmMinutes,
      }),
      stuckSlot: alarm('StuckSlotAlarm', {
        alarmDescription: 'A worker slot is stuck past its job deadline (docs/operations.md "Operate": /healthz 503, enrollment_slots_stuck)',
        metric: stuck,
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 5,
      }),
      groupAtMax: alarm('GroupAtMaximumAlarm', {
        alarmDescription: 'The group has been at its maximum size for 15 minutes: raise MaxSize, or find what slows the workers',
        metric: new cloudwatch.MathExpression({ expression: 'IF(inservice >= maxsize, 1, 0)', usingMetrics: { inservice: inService, maxsize: groupMax }, label: 'at maximum', period: minute }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 15,
      }),
      memory: alarm('MemoryNearHighAlarm', {
        alarmDescription: 'A worker process is above 90% of MemoryHigh= (768M): the limits and the budget do not match (docs/images.md "Memory")',
        metric: memory,
        threshold: Math.floor(WORKER.memoryHighBytes * 0.9),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 5,
      }),
    };

    new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${this.stackName}-enrollment-worker`,
      widgets: [
        [
          new cloudwatch.GraphWidget({ title: 'Jobs waiting and backlog per instance', left: [visible], right: [backlogPerInstance], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Oldest job (s)', left: [oldest], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Dead-lettered jobs', left: [deadLettered], width: 8 }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Jobs succeeded per minute', left: [succeeded], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Instances in service / maximum', left: [inService, groupMax], width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Stuck slots; resident memory (bytes)', left: [stuck], right: [memory], width: 8 }),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(this.alarms), width: 24 })],
      ],
    });

    // --- Outputs: what upstream needs ------------------------------------------------------------
    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('JobsQueueUrl', this.jobsQueue.queueUrl, 'Producers send jobs here');
    output('ResultQueueUrl', this.resultQueue.queueUrl, 'Outcomes of every job (docs/producers.md "Outcomes")');
    output('DeadLetterQueueUrl', this.deadLetterQueue.queueUrl, 'Failed jobs');
    output('ReferenceBucketName', this.referenceBucket.bucketName, 'References: users/<id>/ref_<12 hex>.<ext>');
    output('StagingBucketName', this.stagingBucket.bucketName, `Producers stage large images under ${settings.stagingPrefix}`);
    output('StagingPrefix', settings.stagingPrefix, 'The staging key prefix');
    output('SettingsSecretArn', this.secret.secretArn, 'The settings secret; JOB_SIGNING_KEY signs jobs');
    output('ProducerPolicyArn', this.producerPolicy.managedPolicyArn, "Attach to a producer's role: send jobs, stage images, read the signing key");
    output('AlarmTopicArn', topic.topicArn, 'Alarms and group launch errors');
    output('WorkerGroupName', group.ref, 'The Auto Scaling group (instance refresh, scaling activity)');
    output('WorkerLogGroupName', logGroup.logGroupName, "The workers' journal");
  }
}
