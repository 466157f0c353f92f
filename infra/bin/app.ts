// `npx cdk synth` / `npx cdk deploy`: the one stack, environment-agnostic (no account, no region,
// no lookups), with cdk-nag's AwsSolutions checks applied.
import { App } from 'aws-cdk-lib';
import { checkWithNag } from '../lib/nag.ts';
import { settingsFrom } from '../lib/settings.ts';
import { EnrollmentWorkerStack } from '../lib/stack.ts';

const app = new App();
const stackName = String(app.node.tryGetContext('stackName') ?? 'EnrollmentWorker');
const settings = settingsFrom((key) => app.node.tryGetContext(key));
const stack = new EnrollmentWorkerStack(app, stackName, {
  settings,
  description: 'enrollment-worker: SQS enrollment jobs to S3 reference images (infra/, docs/operations.md "Deploy on AWS")',
});
checkWithNag(stack, settings.stagingPrefix);
app.synth();
