'use strict';

// The parts of serverless.yml that depend on the stage's params: the trigger wiring, the
// optional resources, the least-privilege IAM statements, and the Glue table, which comes
// from the Python definition that `vpcflow-partitioner init` uses (one source of truth).

const { execFileSync } = require('child_process');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');

async function params(resolveVariable) {
  const get = async (name) => {
    const value = await resolveVariable(`param:${name}`);
    return value === null || value === undefined ? '' : String(value);
  };
  const names = [
    'sourceBucket', 'flowLogPrefix', 'glueDatabase', 'glueTable', 'glueCatalogId', 'tableLayout',
    'tableFileFormat', 'tableHourly', 'tableFormat', 'createTable', 'createDatabase', 'trigger',
    'batchSize', 'batchWindow', 'maxConcurrency', 'cache', 'cacheTtlDays', 'schedule', 'reconcileDays',
    'createWorkgroup', 'athenaBytesCutoff', 'pointInTimeRecovery', 'alarmTopicArn', 'functionTimeout',
    'maxReceiveCount', 'ignoredAlarmThreshold', 'tableRefreshSeconds', 'tracing',
  ];
  const p = {};
  for (const name of names) p[name] = await get(name);
  const stage = await resolveVariable('sls:stage');
  const service = await resolveVariable('self:service');
  p.prefix = `${service}-${stage}`;
  p.trigger = p.trigger || 'sqs';
  if (!['sqs', 'eventbridge', 's3'].includes(p.trigger)) {
    throw new Error(`param trigger must be sqs, eventbridge or s3, not ${p.trigger}`);
  }
  p.usesQueue = p.trigger !== 's3';
  p.cacheOn = p.cache === 'true';
  p.flowLogPrefix = p.flowLogPrefix || 'AWSLogs/';
  return p;
}

const sub = (text) => ({ 'Fn::Sub': text });
const catalog = (p) => (p.glueCatalogId ? p.glueCatalogId : '${AWS::AccountId}');

function glueTableResources(p) {
  const location = `s3://${p.sourceBucket}/${p.flowLogPrefix}`;
  const python = process.env.VPCFLOW_PYTHON || 'python3';
  const args = [
    '-m', 'vpcflow_partitioner.ops.deploy',
    '--database', p.glueDatabase, '--table', p.glueTable, '--location', location,
    '--layout', p.tableLayout || 'multi-account', '--file-format', p.tableFileFormat || 'text',
    '--hourly', p.tableHourly || 'false', '--create-database', p.createDatabase || 'true',
  ];
  if (p.tableFormat) args.push('--format', p.tableFormat);
  const out = execFileSync(python, args, {
    cwd: ROOT,
    env: { ...process.env, PYTHONPATH: path.join(ROOT, 'functions') },
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

function deadLetterQueue(p) {
  return {
    Type: 'AWS::SQS::Queue',
    Properties: {
      QueueName: `${p.prefix}-dlq`,
      MessageRetentionPeriod: 1209600,
      // SSE-SQS: S3 cannot be granted the AWS-managed aws/sqs KMS key, so a bucket could not send.
      SqsManagedSseEnabled: true,
    },
  };
}

function queueResources(p) {
  const r = {};
  r.EventsQueue = {
    Type: 'AWS::SQS::Queue',
    Properties: {
      QueueName: `${p.prefix}-events`,
      // Lambda's guidance: a visibility timeout of at least six times the function timeout.
      VisibilityTimeout: 6 * Number(p.functionTimeout || 60),
      MessageRetentionPeriod: 345600,
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': ['EventsDeadLetterQueue', 'Arn'] },
        maxReceiveCount: Number(p.maxReceiveCount || 5),
      },
    },
  };
  const statements = [];
  if (p.trigger === 'sqs') {
    statements.push({
      Sid: 'S3SendsObjectCreated',
      Effect: 'Allow',
      Principal: { Service: 's3.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: { 'Fn::GetAtt': ['EventsQueue', 'Arn'] },
      Condition: {
        ArnLike: { 'aws:SourceArn': sub(`arn:\${AWS::Partition}:s3:::${p.sourceBucket}`) },
        StringEquals: { 'aws:SourceAccount': sub('${AWS::AccountId}') },
      },
    });
  } else {
    statements.push({
      Sid: 'EventBridgeSendsObjectCreated',
      Effect: 'Allow',
      Principal: { Service: 'events.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: { 'Fn::GetAtt': ['EventsQueue', 'Arn'] },
      Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': ['ObjectCreatedRule', 'Arn'] } } },
    });
    r.ObjectCreatedRule = {
      Type: 'AWS::Events::Rule',
      Properties: {
        Name: `${p.prefix}-object-created`,
        Description: 'S3 Object Created events for the flow-log prefix',
        EventPattern: {
          source: ['aws.s3'],
          'detail-type': ['Object Created'],
          detail: { bucket: { name: [p.sourceBucket] }, object: { key: [{ prefix: p.flowLogPrefix }] } },
        },
        Targets: [{ Id: 'events-queue', Arn: { 'Fn::GetAtt': ['EventsQueue', 'Arn'] } }],
      },
    };
  }
  r.EventsQueuePolicy = {
    Type: 'AWS::SQS::QueuePolicy',
    Properties: {
      Queues: [{ Ref: 'EventsQueue' }],
      PolicyDocument: { Version: '2012-10-17', Statement: statements },
    },
  };
  return r;
}

function cacheResources(p) {
  return {
    PartitionCache: {
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        TableName: `${p.prefix}-partition-cache`,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
        SSESpecification: { SSEEnabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: p.pointInTimeRecovery === 'true' },
      },
    },
  };
}

function workgroupResources(p) {
  return {
    AthenaResultsBucket: {
      Type: 'AWS::S3::Bucket',
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
        },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LifecycleConfiguration: { Rules: [{ Id: 'expire-query-results', Status: 'Enabled', ExpirationInDays: 30 }] },
      },
    },
    AthenaWorkGroup: {
      Type: 'AWS::Athena::WorkGroup',
      Properties: {
        Name: `${p.prefix}-flowlogs`,
        Description: 'Queries over VPC Flow Logs partitioned by vpcflow-partitioner',
        State: 'ENABLED',
        WorkGroupConfiguration: {
          EnforceWorkGroupConfiguration: true,
          PublishCloudWatchMetricsEnabled: true,
          BytesScannedCutoffPerQuery: Number(p.athenaBytesCutoff || 10737418240),
          ResultConfiguration: {
            OutputLocation: sub('s3://${AthenaResultsBucket}/results/'),
            EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
          },
        },
      },
    },
  };
}

function alarmResources(p) {
  const actions = p.alarmTopicArn ? [p.alarmTopicArn] : [];
  const alarm = (props) => ({
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      ActionsEnabled: actions.length > 0, AlarmActions: actions, OKActions: actions,
      TreatMissingData: 'notBreaching', EvaluationPeriods: 1, Period: 300, Statistic: 'Sum',
      ComparisonOperator: 'GreaterThanThreshold', ...props,
    },
  });
  const metric = (name) => ({
    Namespace: 'VpcFlowPartitioner', MetricName: name, Dimensions: [{ Name: 'service', Value: 'vpcflow-partitioner' }],
  });
  const r = {
    FunctionErrorsAlarm: alarm({
      AlarmName: `${p.prefix}-function-errors`,
      AlarmDescription: 'on_object_created or on_schedule failed (configuration errors fail every time)',
      Namespace: 'AWS/Lambda', MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: `${p.prefix}-on-object-created` }], Threshold: 0,
    }),
    ScheduleErrorsAlarm: alarm({
      AlarmName: `${p.prefix}-sweep-errors`, AlarmDescription: 'the scheduled sweep failed',
      Namespace: 'AWS/Lambda', MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: `${p.prefix}-on-schedule` }], Threshold: 0,
    }),
    UnpartitionableAlarm: alarm({
      AlarmName: `${p.prefix}-objects-unpartitionable`,
      AlarmDescription: 'flow-log objects the table cannot represent (an hour key over daily folders, a table above account folders): fix the table',
      ...metric('ObjectsUnpartitionable'), Threshold: 0,
    }),
    IgnoredSurgeAlarm: alarm({
      AlarmName: `${p.prefix}-objects-ignored-surge`,
      AlarmDescription: 'many objects ignored: the table Location, SOURCE_BUCKETS or the notification prefix is probably wrong',
      ...metric('ObjectsIgnored'), Threshold: Number(p.ignoredAlarmThreshold || 100),
      EvaluationPeriods: 3,
    }),
  };
  {
    r.DeadLetterQueueAlarm = alarm({
      AlarmName: `${p.prefix}-dlq-not-empty`,
      AlarmDescription: 'events gave up after maxReceiveCount tries: fix the cause, then `vpcflow-partitioner replay --queue-url <dlq>`',
      Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Statistic: 'Maximum',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['EventsDeadLetterQueue', 'QueueName'] } }],
      Threshold: 0,
    });
  }
  return r;
}

module.exports.resources = async ({ resolveVariable }) => {
  const p = await params(resolveVariable);
  let resources = { ...alarmResources(p) };
  // Every mode has a DLQ: the queue's redrive target, or the function's on-failure
  // destination for direct S3 invocations (Lambda retries those twice, then gives up).
  resources.EventsDeadLetterQueue = deadLetterQueue(p);
  if (p.usesQueue) resources = { ...resources, ...queueResources(p) };
  if (p.cacheOn) resources = { ...resources, ...cacheResources(p) };
  if (p.createWorkgroup === 'true') resources = { ...resources, ...workgroupResources(p) };
  if (p.createTable === 'true') resources = { ...resources, ...glueTableResources(p) };
  const outputs = {};
  if (p.usesQueue) outputs.EventsQueueArn = { Value: { 'Fn::GetAtt': ['EventsQueue', 'Arn'] } };
  outputs.DeadLetterQueueUrl = { Value: { Ref: 'EventsDeadLetterQueue' } };
  if (p.createWorkgroup === 'true') outputs.AthenaWorkGroup = { Value: { Ref: 'AthenaWorkGroup' } };
  return { Resources: resources, Outputs: outputs };
};

module.exports.events = async ({ resolveVariable }) => {
  const p = await params(resolveVariable);
  if (p.trigger === 's3') {
    return [{
      s3: {
        bucket: p.sourceBucket,
        event: 's3:ObjectCreated:*',
        rules: [{ prefix: p.flowLogPrefix }],
        existing: true,
      },
    }];
  }
  return [{
    sqs: {
      arn: { 'Fn::GetAtt': ['EventsQueue', 'Arn'] },
      batchSize: Number(p.batchSize || 10),
      maximumBatchingWindow: Number(p.batchWindow || 0),
      functionResponseType: 'ReportBatchItemFailures',
      // Caps concurrent invocations so that a burst of new objects cannot throttle Glue.
      maximumConcurrency: Number(p.maxConcurrency || 5),
    },
  }];
};

module.exports.destinations = async ({ resolveVariable }) => {
  const p = await params(resolveVariable);
  if (p.usesQueue) return {};
  // `vpcflow-partitioner replay --queue-url <dlq>` reads these on-failure records too.
  return { onFailure: { type: 'sqs', arn: { 'Fn::GetAtt': ['EventsDeadLetterQueue', 'Arn'] } } };
};

// Tracing off is PassThrough, written out: a stack that had Active tracing is switched back.
module.exports.tracingMode = async ({ resolveVariable }) => {
  const p = await params(resolveVariable);
  return p.tracing === 'true' ? 'Active' : 'PassThrough';
};

module.exports.environment = async ({ resolveVariable }) => {
  const p = await params(resolveVariable);
  const env = {
    GLUE_DATABASE: p.glueDatabase,
    GLUE_TABLE: p.glueTable,
    SOURCE_BUCKETS: p.sourceBucket,
    RECONCILE_DAYS: p.reconcileDays || '2',
    CACHE_TTL_DAYS: p.cacheTtlDays || '35',
    TABLE_REFRESH_SECONDS: p.tableRefreshSeconds || '300',
    TRACING: p.tracing === 'true' ? 'true' : 'false',
    POWERTOOLS_SERVICE_NAME: 'vpcflow-partitioner',
    POWERTOOLS_METRICS_NAMESPACE: 'VpcFlowPartitioner',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
  if (p.glueCatalogId) env.GLUE_CATALOG_ID = p.glueCatalogId;
  if (p.cacheOn) env.CACHE_TABLE = { Ref: 'PartitionCache' };
  return env;
};

module.exports.statements = async ({ resolveVariable }) => {
  const p = await params(resolveVariable);
  const glue = (what) => sub(`arn:\${AWS::Partition}:glue:\${AWS::Region}:${catalog(p)}:${what}`);
  const statements = [
    {
      Sid: 'GlueTablePartitions',
      Effect: 'Allow',
      Action: ['glue:GetTable', 'glue:GetPartition', 'glue:GetPartitions', 'glue:BatchGetPartition', 'glue:BatchCreatePartition'],
      Resource: [glue('catalog'), glue(`database/${p.glueDatabase}`), glue(`table/${p.glueDatabase}/${p.glueTable}`)],
    },
    {
      // on_schedule walks date folders; the function never reads an object.
      Sid: 'ListFlowLogFolders',
      Effect: 'Allow',
      Action: ['s3:ListBucket'],
      Resource: sub(`arn:\${AWS::Partition}:s3:::${p.sourceBucket}`),
      Condition: { StringLike: { 's3:prefix': [`${p.flowLogPrefix}*`, p.flowLogPrefix] } },
    },
  ];
  if (p.cacheOn) {
    statements.push({
      Sid: 'PartitionCache',
      Effect: 'Allow',
      Action: ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem'],
      Resource: { 'Fn::GetAtt': ['PartitionCache', 'Arn'] },
    });
  }
  return statements;
};
