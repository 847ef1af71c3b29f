'use strict';

// The parts of serverless.yml that depend on the stage's params: their validation, the trigger
// wiring, the optional resources, one least-privilege role per function, the alarms and where
// they go. The Glue table and the routing (S3 notification filters, EventBridge pattern) come
// from Python (`python -m vpcflow_partitioner.ops.deploy`): the definitions `init` and `doctor`
// use, one source of truth.
//
// A param that is missing or wrong never throws here (osls would print it three times inside
// Node stacks): `problems` lists them, and deploy/validate.js refuses to package with one line.

const { execFileSync } = require('child_process');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const BOOLEANS = [
  'createTable', 'createDatabase', 'cache', 'tableHourly', 'tracing', 'createWorkgroup', 'pointInTimeRecovery',
  'partitionIndex',
];
// [name, minimum, maximum]: the documented ranges of what each number configures.
const NUMBERS = [
  ['batchSize', 1, 10000], // SQS event source: 1 to 10,000 records
  ['batchWindow', 0, 300], // MaximumBatchingWindowInSeconds: 0 to 300
  ['maxConcurrency', 2, 1000], // SQS ScalingConfig.MaximumConcurrency: 2 to 1,000
  ['maxReceiveCount', 1, 1000], // RedrivePolicy.maxReceiveCount: 1 to 1,000
  ['functionTimeout', 1, 900], // Lambda: at most 900 s
  ['cacheTtlDays', 1, 3650],
  ['reconcileDays', 1, 366],
  ['tableRefreshSeconds', 0, 86400],
  ['athenaBytesCutoff', 10000000, Number.MAX_SAFE_INTEGER], // Athena: at least 10 MB
  ['outsideTableAlarmThreshold', 0, Number.MAX_SAFE_INTEGER],
  ['queueAgeAlarmSeconds', 60, 1209600],
  ['backfillConcurrency', 2, 1000], // SQS ScalingConfig.MaximumConcurrency: 2 to 1,000
  ['backfillTimeout', 1, 900], // Lambda: at most 900 s (the queue's visibility timeout is 6x)
  // Lambda: 128 MB to 10,240 MB, CPU in proportion: "at 1,769 MB, a function has the equivalent
  // of one vCPU" ("Configure Lambda function memory", Lambda guide).
  ['backfillMemory', 128, 10240],
];
const NAMES = [
  'sourceBucket', 'flowLogPrefix', 'tableLocation', 'glueDatabase', 'glueTable', 'glueCatalogId',
  'tableLayout', 'tableFileFormat', 'tableHourly', 'tableFormat', 'createTable', 'createDatabase',
  'trigger', 'batchSize', 'batchWindow', 'maxConcurrency', 'cache', 'cacheTtlDays', 'schedule',
  'reconcileDays', 'createWorkgroup', 'athenaBytesCutoff', 'pointInTimeRecovery', 'alarmTopicArn',
  'alarmEmail', 'functionTimeout', 'maxReceiveCount', 'outsideTableAlarmThreshold', 'queueAgeAlarmSeconds',
  'tableRefreshSeconds', 'tracing', 'powertoolsVersion', 'powertoolsLayerArn', 'logRetentionDays',
  'tables', 'partitionIndex', 'backfillConcurrency', 'backfillTimeout', 'backfillMemory', 'inventoryBucket',
];
// Lambda's quota: "Environment variables: 4 KB, for all environment variables associated with
// the function, in aggregate" (Lambda developer guide, "Lambda quotas"). Counted here as the
// JSON of the variables (names, values and the quotes between them: more than their bare
// bytes), so that a stage refused here is never one Lambda would have taken.
const ENVIRONMENT_LIMIT = 4096;
// `tables` entries: [catalog:]database.table, the catalog a 12-digit account id, the names as
// Glue stores them (lowercase letters, digits, _ and -).
const TABLE_ENTRY = /^(?:(\d{12}):)?([a-z0-9_-]{1,255})\.([a-z0-9_-]{1,255})$/;
// The partition index `init --partition-index` creates: its name and the table property that
// makes Athena use it (Glue developer guide, "Creating partition indexes").
const INDEX_NAME = 'vpcflow_partitioner_date';
const DATE_KEYS = ['date', 'dt', 'year', 'month', 'day'];
const MAX_INDEX_KEYS = 3;
// CloudWatch Logs retention: the values PutRetentionPolicy accepts.
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
// Lambda function names: at most 64 characters; ours are <service>-<stage>-on-object-created.
const LONGEST_NAME_SUFFIX = '-on-object-created';
const DEFAULT_PREFIX = 'AWSLogs/';
const EXAMPLE = 'make deploy STAGE=prod PARAMS="--param=sourceBucket=acme-flow-logs"';

const sub = (text) => ({ 'Fn::Sub': text });
const getAtt = (name, attribute = 'Arn') => ({ 'Fn::GetAtt': [name, attribute] });

// Parsing and validation. osls resolves in phases, and an early phase may not resolve params
// yet (it rejects with MISSING_VARIABLE_DEPENDENCY): only a finished result is kept.
let loading;
function config(resolveVariable) {
  if (!loading) {
    loading = load(resolveVariable);
    loading.catch(() => { loading = undefined; });
  }
  return loading;
}

async function load(resolveVariable) {
  const p = {};
  for (const name of NAMES) {
    const value = await resolveVariable(`param:${name}`);
    p[name] = value === null || value === undefined ? '' : String(value).trim();
  }
  const stage = await resolveVariable('sls:stage');
  p.region = String(await resolveVariable('self:provider.region'));
  p.prefix = `${await resolveVariable('self:service')}-${stage}`;
  // Athena and Glue names: lowercase letters, digits and underscores (Glue lowercases what it
  // stores, and IAM ARNs must name what it stores).
  if (!p.glueDatabase) p.glueDatabase = `flowlogs_${stage.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
  const problems = validate(p);
  derive(p);
  if (problems.length === 0) {
    const size = Buffer.byteLength(JSON.stringify(environmentOf(p, `${p.prefix}-partition-cache`)));
    if (size > ENVIRONMENT_LIMIT) {
      problems.push(`the functions' environment would be ${size} bytes, over Lambda's 4 KB for all variables `
        + '(param tables is the long one): split the tables over two stages, or shorten their names');
    }
  }
  if (problems.length === 0) {
    try {
      Object.assign(p, fromPython(p));
    } catch (error) {
      problems.push(error.message);
    }
  }
  return { p, problems, warnings: warnings(p) };
}

// Said at package time, not refused: a stage may be deployed before anyone subscribes.
function warnings(p) {
  if (p.ownTopic && !p.alarmEmail) {
    return [`no one hears the alarms yet: topic ${p.prefix}-alarms has no subscriber; pass `
      + '--param=alarmEmail=you@example.com or subscribe to it (Outputs: AlarmTopicArn)'];
  }
  return [];
}

function validate(p) {
  const problems = [];
  const bad = (text) => problems.push(text);
  if (!p.sourceBucket) {
    bad(`param sourceBucket is required: the bucket your flow logs deliver to, e.g. ${EXAMPLE}`);
  } else if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(p.sourceBucket) || p.sourceBucket.includes('..')) {
    bad(`param sourceBucket "${p.sourceBucket}" is not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)`);
  }
  if (!['sqs', 'eventbridge', 's3'].includes(p.trigger)) {
    bad(`param trigger must be sqs, eventbridge or s3, not "${p.trigger}"`);
  }
  for (const name of BOOLEANS) {
    if (!['true', 'false'].includes(p[name])) bad(`param ${name} must be true or false, not "${p[name]}"`);
  }
  for (const [name, min, max] of NUMBERS) {
    const n = Number(p[name]);
    if (p[name] === '' || !Number.isInteger(n) || n < min || n > max) {
      bad(`param ${name} must be a whole number from ${min} to ${max}, not "${p[name]}"`);
    }
  }
  if (Number(p.batchSize) > 10 && Number(p.batchWindow) < 1) {
    bad('param batchSize above 10 needs batchWindow of at least 1 second (an SQS event source rule)');
  }
  if (!['multi-account', 'hive', 'classic'].includes(p.tableLayout)) {
    bad(`param tableLayout must be multi-account, hive or classic, not "${p.tableLayout}"`);
  }
  if (!['text', 'parquet'].includes(p.tableFileFormat)) {
    bad(`param tableFileFormat must be text or parquet, not "${p.tableFileFormat}"`);
  }
  if (p.flowLogPrefix.startsWith('/') || (p.flowLogPrefix && !p.flowLogPrefix.endsWith('/'))) {
    bad(`param flowLogPrefix "${p.flowLogPrefix}" must be a folder: no leading "/", a trailing "/"`);
  }
  const longest = `${p.prefix}${LONGEST_NAME_SUFFIX}`;
  if (longest.length > 64) {
    bad(`the stage name is too long: function ${longest} has ${longest.length} characters, Lambda allows 64`);
  }
  // What the stack creates gets a name Athena takes bare; an existing table keeps its name
  // (Glue cannot rename one; Athena reads a hyphenated name in backticks).
  const created = { glueDatabase: p.createDatabase === 'true' && p.createTable === 'true', glueTable: p.createTable === 'true' };
  for (const name of ['glueDatabase', 'glueTable']) {
    if (created[name] && !/^[a-z0-9_]{1,255}$/.test(p[name])) {
      bad(`param ${name} "${p[name]}" must be lowercase letters, digits and underscores (Athena and Glue names)`);
    } else if (!/^[a-z0-9_-]{1,255}$/.test(p[name])) {
      bad(`param ${name} "${p[name]}" is not a Glue name as Glue stores it (lowercase letters, digits, _ and -)`);
    }
  }
  if (!RETENTION_DAYS.includes(Number(p.logRetentionDays))) {
    bad(`param logRetentionDays must be one of CloudWatch Logs' ${RETENTION_DAYS.join(', ')}, not "${p.logRetentionDays}"`);
  }
  if (p.glueCatalogId && !/^\d{12}$/.test(p.glueCatalogId)) {
    bad(`param glueCatalogId must be a 12-digit account id, not "${p.glueCatalogId}"`);
  }
  if (p.glueCatalogId && p.createTable === 'true') {
    bad('param glueCatalogId names another account\'s catalog, where this stack cannot create the table: '
      + 'set createTable=false and tableLocation, and create the table there with `vpcflow-partitioner init`');
  }
  if (p.createTable === 'false' && !p.tableLocation) {
    bad('param tableLocation is required with createTable=false: the existing table\'s Location '
      + '(aws glue get-table ... --query Table.StorageDescriptor.Location), which the sweep may list');
  }
  if (p.tableLocation) {
    const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(p.tableLocation);
    if (!match) {
      bad(`param tableLocation must look like s3://bucket/prefix/, not "${p.tableLocation}"`);
    } else if (p.sourceBucket && match[1] !== p.sourceBucket) {
      bad(`param tableLocation is in bucket ${match[1]}, but sourceBucket is ${p.sourceBucket}: `
        + 'the function hears only sourceBucket\'s notifications');
    } else if (p.flowLogPrefix !== DEFAULT_PREFIX && (match[2] || '').replace(/\/?$/, '/') !== p.flowLogPrefix) {
      bad(`params flowLogPrefix "${p.flowLogPrefix}" and tableLocation "${p.tableLocation}" disagree: `
        + 'give tableLocation alone (the prefix follows it)');
    }
  }
  validateTables(p, bad);
  if (p.partitionIndex === 'true' && p.createTable !== 'true') {
    bad('param partitionIndex indexes the table this stack creates (createTable=true); for a table you already '
      + 'have, run `vpcflow-partitioner init --partition-index` once instead');
  }
  if (p.inventoryBucket && (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(p.inventoryBucket) || p.inventoryBucket.includes('..'))) {
    bad(`param inventoryBucket "${p.inventoryBucket}" is not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)`);
  }
  if (!/^(rate|cron)\(.+\)$/.test(p.schedule)) bad(`param schedule must be rate(...) or cron(...), not "${p.schedule}"`);
  if (p.alarmTopicArn && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/.test(p.alarmTopicArn)) {
    bad(`param alarmTopicArn must be an SNS topic ARN, not "${p.alarmTopicArn}"`);
  }
  if (p.alarmEmail && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(p.alarmEmail)) {
    bad(`param alarmEmail must be an email address, not "${p.alarmEmail}"`);
  }
  if (p.alarmEmail && p.alarmTopicArn) {
    bad('params alarmEmail and alarmTopicArn: alarmEmail subscribes to the topic this stack owns; '
      + 'with your own topic, subscribe the address there and leave alarmEmail empty');
  }
  if (!p.powertoolsLayerArn && /^(cn|us-gov|us-iso[a-z]*|[a-z]+-iso[a-z]*)-/.test(p.region)) {
    // Powertools publishes its layer there under other accounts and version numbers, and
    // documents its SSM parameters for the commercial regions only: no guessing.
    bad(`param powertoolsLayerArn is required in ${p.region}: the arm64 python3.12 layer ARN that `
      + 'Powertools\' install page lists for your region (AWSLambdaPowertoolsPythonV3-python312-arm64)');
  }
  if (!p.powertoolsLayerArn && !/^\d+\.\d+\.\d+$/.test(p.powertoolsVersion)) {
    bad(`param powertoolsVersion must be a release such as 3.37.0, not "${p.powertoolsVersion}"`);
  }
  return problems;
}

// `tables`: several existing tables, each created with `vpcflow-partitioner init`; the stack
// routes the notifications of tableLocation (their common parent) and grants each table.
function parseTables(text) {
  return text.split(',').map((entry) => entry.trim()).filter((entry) => entry).map((entry) => {
    const match = TABLE_ENTRY.exec(entry);
    return match ? { text: entry, catalog: match[1] || '', database: match[2], table: match[3] } : { text: entry };
  });
}

function validateTables(p, bad) {
  if (!p.tables) return;
  const entries = parseTables(p.tables);
  const malformed = entries.filter((e) => !e.table).map((e) => `"${e.text}"`);
  if (entries.length === 0 || malformed.length) {
    bad(`param tables must be comma-separated [catalog:]database.table (catalog: a 12-digit account id; `
      + `names in lowercase letters, digits, _ and -), not ${malformed.join(', ') || `"${p.tables}"`}`);
    return;
  }
  // Without a catalog, an entry is in glueCatalogId's (or this account's) catalog.
  const seen = new Set();
  const twice = new Set();
  for (const e of entries) {
    const id = `${e.catalog || p.glueCatalogId}:${e.database}.${e.table}`;
    if (seen.has(id)) twice.add(e.text);
    seen.add(id);
  }
  if (twice.size) bad(`param tables names ${[...twice].join(', ')} more than once`);
  if (p.createTable === 'true') {
    bad('param tables names tables that must already exist (create each with `vpcflow-partitioner init`): '
      + 'set createTable=false and tableLocation to the common parent of their Locations');
  }
}

// Where the table reads: the created table's Location, or the existing one's (tableLocation).
function derive(p) {
  p.tableList = p.tables ? parseTables(p.tables) : [];
  p.location = p.tableLocation || `s3://${p.sourceBucket}/${p.flowLogPrefix}`;
  if (!p.location.endsWith('/')) p.location += '/';
  p.keyPrefix = p.location.replace(/^s3:\/\/[^/]+\//, '');
  p.usesQueue = p.trigger !== 's3';
  p.cacheOn = p.cache === 'true';
  p.ownTopic = !p.alarmTopicArn;
}

// The Glue table (with createTable) and the routing, from the Python definitions.
function fromPython(p) {
  const python = process.env.VPCFLOW_PYTHON || 'python3';
  const args = [
    '-m', 'vpcflow_partitioner.ops.deploy', '--bucket', p.sourceBucket,
    '--database', p.glueDatabase, '--table', p.glueTable, '--location', p.location,
    '--layout', p.tableLayout, '--file-format', p.tableFileFormat, '--hourly', p.tableHourly,
    '--create-table', p.createTable, '--create-database', p.createDatabase,
  ];
  if (p.tableFormat) args.push('--format', p.tableFormat);
  let out;
  try {
    out = execFileSync(python, args, {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: path.join(ROOT, 'functions') },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const said = String(error.stderr || error.message).trim().split('\n').pop();
    throw new Error(`the Glue table definition failed: ${said.replace(/^error: /, '')}`);
  }
  const { resources, routing } = JSON.parse(out);
  return { glue: resources, routing };
}

function deadLetterQueue(p) {
  const r = {
    EventsDeadLetterQueue: {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: `${p.prefix}-dlq`,
        MessageRetentionPeriod: 1209600, // 14 days, the SQS maximum
        // SSE-SQS: S3 and EventBridge cannot be granted the AWS-managed aws/sqs KMS key.
        SqsManagedSseEnabled: true,
      },
    },
  };
  r.DeadLetterQueuePolicy = {
    Type: 'AWS::SQS::QueuePolicy',
    Properties: {
      Queues: [{ Ref: 'EventsDeadLetterQueue' }],
      PolicyDocument: { Version: '2012-10-17', Statement: [tlsOnly('sqs:*', getAtt('EventsDeadLetterQueue'))] },
    },
  };
  if (p.trigger === 'eventbridge') {
    // The rule's target DLQ: EventBridge sends what it could not deliver after its retries.
    r.DeadLetterQueuePolicy.Properties.PolicyDocument.Statement.push({
      Sid: 'EventBridgeSendsUndeliverable',
      Effect: 'Allow',
      Principal: { Service: 'events.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: getAtt('EventsDeadLetterQueue'),
      Condition: { ArnEquals: { 'aws:SourceArn': getAtt('ObjectCreatedRule') } },
    });
  }
  return r;
}

function tlsOnly(action, resource) {
  return {
    Sid: 'DenyWithoutTLS',
    Effect: 'Deny',
    Principal: '*',
    Action: action,
    Resource: resource,
    Condition: { Bool: { 'aws:SecureTransport': 'false' } },
  };
}

function queueResources(p) {
  const r = {};
  r.EventsQueue = {
    Type: 'AWS::SQS::Queue',
    Properties: {
      QueueName: `${p.prefix}-events`,
      // Lambda's guidance: a visibility timeout of at least six times the function timeout.
      VisibilityTimeout: 6 * Number(p.functionTimeout),
      // 14 days, the SQS maximum: a message that waits (polling stopped, the function broken)
      // expires without reaching the DLQ, so it gets every day SQS allows and an age alarm.
      MessageRetentionPeriod: 1209600,
      SqsManagedSseEnabled: true,
      RedrivePolicy: {
        deadLetterTargetArn: getAtt('EventsDeadLetterQueue'),
        maxReceiveCount: Number(p.maxReceiveCount),
      },
    },
  };
  const statements = [tlsOnly('sqs:*', getAtt('EventsQueue'))];
  if (p.trigger === 'sqs') {
    statements.push({
      Sid: 'S3SendsObjectCreated',
      Effect: 'Allow',
      Principal: { Service: 's3.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: getAtt('EventsQueue'),
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
      Resource: getAtt('EventsQueue'),
      Condition: { ArnEquals: { 'aws:SourceArn': getAtt('ObjectCreatedRule') } },
    });
    r.ObjectCreatedRule = {
      Type: 'AWS::Events::Rule',
      Properties: {
        Name: `${p.prefix}-object-created`,
        Description: 'S3 Object Created events of flow-log files under the table Location',
        EventPattern: p.routing.eventPattern,
        Targets: [{
          Id: 'events-queue',
          Arn: getAtt('EventsQueue'),
          // Without these, an event EventBridge cannot deliver is dropped: retry for the
          // maximum (185 tries over 24 hours), then keep it in the DLQ for `replay`.
          RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 },
          DeadLetterConfig: { Arn: getAtt('EventsDeadLetterQueue') },
        }],
      },
    };
  }
  r.EventsQueuePolicy = {
    Type: 'AWS::SQS::QueuePolicy',
    Properties: { Queues: [{ Ref: 'EventsQueue' }], PolicyDocument: { Version: '2012-10-17', Statement: statements } },
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
    AthenaResultsBucketPolicy: {
      Type: 'AWS::S3::BucketPolicy',
      Properties: {
        Bucket: { Ref: 'AthenaResultsBucket' },
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [tlsOnly('s3:*', [getAtt('AthenaResultsBucket'), { 'Fn::Join': ['', [getAtt('AthenaResultsBucket'), '/*']] }])],
        },
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
          BytesScannedCutoffPerQuery: Number(p.athenaBytesCutoff),
          ResultConfiguration: {
            OutputLocation: sub('s3://${AthenaResultsBucket}/results/'),
            EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
          },
        },
      },
    },
  };
}

// The stack's own alarm topic. CloudWatch cannot publish to a topic encrypted with the
// AWS-managed aws/sns key (its policy cannot be changed to admit cloudwatch.amazonaws.com),
// so the topic has a customer managed key whose policy does ("Amazon SNS topic encryption",
// CloudWatch user guide).
function topicResources(p) {
  const r = {
    AlarmTopicKey: {
      Type: 'AWS::KMS::Key',
      Properties: {
        Description: `${p.prefix}: encrypts the alarm topic; CloudWatch may use it to publish`,
        EnableKeyRotation: true,
        KeyPolicy: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'AccountAdministers',
              Effect: 'Allow',
              Principal: { AWS: sub('arn:${AWS::Partition}:iam::${AWS::AccountId}:root') },
              Action: 'kms:*',
              Resource: '*',
            },
            {
              Sid: 'CloudWatchPublishesAlarms',
              Effect: 'Allow',
              Principal: { Service: 'cloudwatch.amazonaws.com' },
              Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
              Resource: '*',
              // IfExists: AWS's documented statement has no condition, and a request without the
              // key must not silently drop every alarm.
              Condition: { StringEqualsIfExists: { 'aws:SourceAccount': sub('${AWS::AccountId}') } },
            },
          ],
        },
      },
    },
    AlarmTopicKeyAlias: {
      Type: 'AWS::KMS::Alias',
      Properties: { AliasName: `alias/${p.prefix}-alarms`, TargetKeyId: { Ref: 'AlarmTopicKey' } },
    },
    AlarmTopic: {
      Type: 'AWS::SNS::Topic',
      Properties: {
        TopicName: `${p.prefix}-alarms`,
        DisplayName: `${p.prefix} alarms`,
        KmsMasterKeyId: { Ref: 'AlarmTopicKey' },
      },
    },
    AlarmTopicPolicy: {
      Type: 'AWS::SNS::TopicPolicy',
      Properties: {
        Topics: [{ Ref: 'AlarmTopic' }],
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'CloudWatchPublishes',
              Effect: 'Allow',
              Principal: { Service: 'cloudwatch.amazonaws.com' },
              Action: 'sns:Publish',
              Resource: { Ref: 'AlarmTopic' },
              Condition: {
                ArnLike: { 'aws:SourceArn': sub(`arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:${p.prefix}-*`) },
              },
            },
            tlsOnly('sns:Publish', { Ref: 'AlarmTopic' }),
          ],
        },
      },
    },
  };
  if (p.alarmEmail) {
    // SNS mails a confirmation link first: nothing arrives until someone clicks it.
    r.AlarmEmailSubscription = {
      Type: 'AWS::SNS::Subscription',
      Properties: { TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: p.alarmEmail },
    };
  }
  return r;
}

function alarmResources(p) {
  const actions = [p.ownTopic ? { Ref: 'AlarmTopic' } : p.alarmTopicArn];
  const alarm = (props) => ({
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      ActionsEnabled: true, AlarmActions: actions, OKActions: actions,
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
      AlarmDescription: 'on_object_created failed (configuration errors fail every time): see its log group',
      Namespace: 'AWS/Lambda', MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: `${p.prefix}-on-object-created` }], Threshold: 0,
    }),
    ScheduleErrorsAlarm: alarm({
      AlarmName: `${p.prefix}-sweep-errors`, AlarmDescription: 'the scheduled sweep failed: see its log group',
      Namespace: 'AWS/Lambda', MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: `${p.prefix}-on-schedule` }], Threshold: 0,
    }),
    UnpartitionableAlarm: alarm({
      AlarmName: `${p.prefix}-objects-unpartitionable`,
      AlarmDescription: 'flow-log objects the table cannot represent (an hour key over daily folders, a folder collision): run `vpcflow-partitioner audit`',
      ...metric('ObjectsUnpartitionable'), Threshold: 0,
    }),
    OutsideTableSurgeAlarm: alarm({
      AlarmName: `${p.prefix}-objects-outside-table`,
      AlarmDescription: 'many flow-log objects outside the table Location or from another bucket: the table Location, SOURCE_BUCKETS or the notification prefix is probably wrong (`vpcflow-partitioner doctor`)',
      ...metric('ObjectsOutsideTable'), Threshold: Number(p.outsideTableAlarmThreshold), EvaluationPeriods: 3,
    }),
    DeadLetterQueueAlarm: alarm({
      AlarmName: `${p.prefix}-dlq-not-empty`,
      AlarmDescription: 'events gave up after their retries: fix the cause, then `vpcflow-partitioner replay --queue-url <DeadLetterQueueUrl>`',
      Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Statistic: 'Maximum',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('EventsDeadLetterQueue', 'QueueName') }],
      Threshold: 0,
    }),
  };
  if (p.usesQueue) {
    // Messages that wait are not failing: they never reach the DLQ, and expire after the
    // retention period. Their age is the only sign that polling stopped.
    r.QueueAgeAlarm = alarm({
      AlarmName: `${p.prefix}-events-queue-age`,
      AlarmDescription: 'events are waiting in the queue (the event source mapping is disabled, throttled or failing): run `vpcflow-partitioner doctor`',
      Namespace: 'AWS/SQS', MetricName: 'ApproximateAgeOfOldestMessage', Statistic: 'Maximum',
      Dimensions: [{ Name: 'QueueName', Value: getAtt('EventsQueue', 'QueueName') }],
      Threshold: Number(p.queueAgeAlarmSeconds), EvaluationPeriods: 3,
    });
  }
  return r;
}

// One role per function, each with only the actions its code calls (a test records the calls
// each handler makes on moto and compares them with these statements).
function roleResources(p) {
  const partition = (service, rest) => sub(`arn:\${AWS::Partition}:${service}:\${AWS::Region}:\${AWS::AccountId}:${rest}`);
  const glueResources = glueArns(p);
  const logs = (functionName) => ({
    Sid: 'OwnLogGroup',
    Effect: 'Allow',
    Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    Resource: partition('logs', `log-group:/aws/lambda/${functionName}:*`),
  });
  const tracing = { Sid: 'Tracing', Effect: 'Allow', Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' };
  const cache = {
    Sid: 'PartitionCache',
    Effect: 'Allow',
    Action: ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:PutItem'],
    Resource: getAtt('PartitionCache'),
  };

  const created = [
    logs(`${p.prefix}-on-object-created`),
    {
      Sid: 'GlueTablePartitions',
      Effect: 'Allow',
      Action: ['glue:BatchCreatePartition', 'glue:BatchGetPartition', 'glue:GetPartitions', 'glue:GetTable'],
      Resource: glueResources,
    },
  ];
  if (p.cacheOn) created.push(cache);
  if (p.usesQueue) {
    created.push({
      Sid: 'EventsQueue',
      Effect: 'Allow',
      Action: ['sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'],
      Resource: getAtt('EventsQueue'),
    });
  } else {
    created.push({ Sid: 'OnFailureDestination', Effect: 'Allow', Action: 'sqs:SendMessage', Resource: getAtt('EventsDeadLetterQueue') });
  }
  // The sweep's calls: it asks Glue, never the cache, and walks the table's date folders (no
  // function ever reads a flow log's object). The distributed backfill makes the same calls.
  const walkAndCreate = [
    {
      Sid: 'GlueTablePartitions',
      Effect: 'Allow',
      Action: ['glue:BatchCreatePartition', 'glue:BatchGetPartition', 'glue:GetPartitions', 'glue:GetTable'],
      Resource: glueResources,
    },
    {
      Sid: 'ListTableFolders',
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: sub(`arn:\${AWS::Partition}:s3:::${p.sourceBucket}`),
      Condition: { StringLike: { 's3:prefix': [`${p.keyPrefix}*`] } },
    },
  ];
  const schedule = [logs(`${p.prefix}-on-schedule`), ...walkAndCreate];
  if (p.cacheOn) {
    // The sweep never reads the cache; it marks what it created or found, so that the event
    // function need not ask Glue for those partitions again.
    schedule.push({ Sid: 'MarkCache', Effect: 'Allow', Action: 'dynamodb:BatchWriteItem', Resource: getAtt('PartitionCache') });
  }
  // The distributed backfill: the sweep's walk and Glue calls over one slice a message (the same
  // pipeline, asking Glue and marking the cache as the sweep does), or one S3 Inventory file.
  const backfill = [
    logs(`${p.prefix}-on-backfill`),
    ...walkAndCreate,
    {
      Sid: 'BackfillQueue',
      Effect: 'Allow',
      Action: ['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ReceiveMessage'],
      Resource: getAtt('BackfillQueue'),
    },
  ];
  if (p.inventoryBucket) {
    // S3 Inventory manifests and data files (`backfill --inventory --distributed`), in the bucket
    // the reports land in (sourceBucket itself when they land there): never a flow log's body.
    backfill.push({
      Sid: 'ReadInventory',
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: sub(`arn:\${AWS::Partition}:s3:::${p.inventoryBucket}/*`),
    });
  }
  if (p.cacheOn) {
    backfill.push({ Sid: 'MarkCache', Effect: 'Allow', Action: 'dynamodb:BatchWriteItem', Resource: getAtt('PartitionCache') });
  }
  if (p.tracing === 'true') {
    created.push(tracing);
    schedule.push(tracing);
    backfill.push(tracing);
  }
  const role = (name, statements) => ({
    Type: 'AWS::IAM::Role',
    Properties: {
      Description: `${p.prefix}: ${name}`,
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      },
      Policies: [{ PolicyName: 'least-privilege', PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
    },
  });
  const roles = {
    ObjectCreatedRole: role('on_object_created', created),
    ScheduleRole: role('on_schedule', schedule),
    BackfillRole: role('on_backfill', backfill),
  };
  if (p.createTable === 'true' && p.partitionIndex === 'true') {
    roles.PartitionIndexRole = role('creates the partition index of the table', [
      logs(`${p.prefix}-partition-index`),
      { Sid: 'CreatePartitionIndex', Effect: 'Allow', Action: 'glue:CreatePartitionIndex', Resource: glueResources },
    ]);
  }
  return roles;
}

// Glue authorizes a table's calls on its catalog, its database and the table itself, in the
// table's catalog account: every table of `tables`, or the one of glueDatabase/glueTable.
function glueArns(p) {
  const tables = p.tableList.length ? p.tableList : [{ catalog: '', database: p.glueDatabase, table: p.glueTable }];
  const arns = new Set();
  for (const t of tables) {
    const base = `arn:\${AWS::Partition}:glue:\${AWS::Region}:${t.catalog || p.glueCatalogId || '${AWS::AccountId}'}:`;
    arns.add(`${base}catalog`).add(`${base}database/${t.database}`).add(`${base}table/${t.database}/${t.table}`);
  }
  return [...arns].map(sub);
}

// The distributed backfill's queue: `backfill --distributed` sends one work item a message (a
// walk slice or an S3 Inventory data file); a slice that fails three times waits in its DLQ.
function backfillResources(p) {
  const r = {
    BackfillDeadLetterQueue: {
      Type: 'AWS::SQS::Queue',
      Properties: { QueueName: `${p.prefix}-backfill-dlq`, MessageRetentionPeriod: 1209600, SqsManagedSseEnabled: true },
    },
    BackfillQueue: {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: `${p.prefix}-backfill`,
        // Lambda's guidance: a visibility timeout of at least six times the function timeout.
        VisibilityTimeout: 6 * Number(p.backfillTimeout),
        MessageRetentionPeriod: 1209600,
        SqsManagedSseEnabled: true,
        RedrivePolicy: { deadLetterTargetArn: getAtt('BackfillDeadLetterQueue'), maxReceiveCount: 3 },
      },
    },
    BackfillQueuePolicy: {
      Type: 'AWS::SQS::QueuePolicy',
      Properties: {
        Queues: [{ Ref: 'BackfillQueue' }, { Ref: 'BackfillDeadLetterQueue' }],
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [tlsOnly('sqs:*', [getAtt('BackfillQueue'), getAtt('BackfillDeadLetterQueue')])],
        },
      },
    },
  };
  return r;
}

// CloudFormation's AWS::Glue::Table has no partition indexes (its properties are CatalogId,
// DatabaseName, Name, OpenTableFormatInput and TableInput; Glue takes them in CreateTable's
// PartitionIndexes or in CreatePartitionIndex): a custom resource calls CreatePartitionIndex once
// the table exists, as the CDK's Glue constructs do. The index lives and goes with the table,
// which the stack retains: Delete leaves it.
const PARTITION_INDEX_CODE = `import boto3
import cfnresponse


def handler(event, context):
    props = event["ResourceProperties"]
    physical = event.get("PhysicalResourceId") or "{}.{}.{}".format(
        props["DatabaseName"], props["TableName"], props["IndexName"])
    try:
        if event["RequestType"] in ("Create", "Update"):
            glue = boto3.client("glue")
            try:
                glue.create_partition_index(
                    CatalogId=props["CatalogId"], DatabaseName=props["DatabaseName"],
                    TableName=props["TableName"],
                    PartitionIndex={"Keys": props["Keys"], "IndexName": props["IndexName"]})
            except glue.exceptions.AlreadyExistsException:
                pass
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, physical)
    except Exception as exc:
        # cfn-response's documented send takes no reason: CloudFormation points at this log stream.
        print("CreatePartitionIndex failed: {!r}".format(exc))
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, physical)
`;

function partitionIndexResources(p) {
  const table = p.glue.FlowLogsTable;
  const input = table.Properties.TableInput;
  const normal = (name) => name.toLowerCase().replace(/-/g, '_');
  const keys = (input.PartitionKeys || []).map((k) => k.Name).filter((k) => DATE_KEYS.includes(normal(k))).slice(0, MAX_INDEX_KEYS);
  // Athena asks Glue for the partitions a query's filter selects only with this property set.
  input.Parameters = { ...input.Parameters, 'partition_filtering.enabled': 'true' };
  const name = `${p.prefix}-partition-index`;
  return {
    PartitionIndexLogGroup: {
      Type: 'AWS::Logs::LogGroup',
      Properties: { LogGroupName: `/aws/lambda/${name}`, RetentionInDays: Number(p.logRetentionDays) },
    },
    PartitionIndexFunction: {
      Type: 'AWS::Lambda::Function',
      DependsOn: ['PartitionIndexLogGroup'],
      Properties: {
        FunctionName: name,
        Description: 'Creates the Glue partition index of the table (a CloudFormation custom resource)',
        Runtime: 'python3.12',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        Timeout: 60,
        Role: sub('${PartitionIndexRole.Arn}'),
        Code: { ZipFile: PARTITION_INDEX_CODE },
      },
    },
    FlowLogsPartitionIndex: {
      Type: 'Custom::GluePartitionIndex',
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        ServiceToken: getAtt('PartitionIndexFunction'),
        CatalogId: { Ref: 'AWS::AccountId' },
        DatabaseName: p.glueDatabase,
        TableName: { Ref: 'FlowLogsTable' },
        IndexName: INDEX_NAME,
        Keys: keys,
      },
    },
  };
}

function outputs(p) {
  // With `tables`, GlueDatabase and GlueTable name the first of them (GlueTables: all).
  const first = p.tableList[0] || { database: p.glueDatabase, table: p.glueTable };
  const o = {
    SourceBucket: p.sourceBucket,
    TableLocation: p.location,
    GlueDatabase: first.database,
    GlueTable: first.table,
    Trigger: p.trigger,
    DeadLetterQueueUrl: { Ref: 'EventsDeadLetterQueue' },
    DeadLetterQueueArn: getAtt('EventsDeadLetterQueue'),
    ObjectCreatedFunctionName: { Ref: 'OnObjectCreatedLambdaFunction' },
    ScheduleFunctionName: { Ref: 'OnScheduleLambdaFunction' },
    AlarmTopicArn: p.ownTopic ? { Ref: 'AlarmTopic' } : p.alarmTopicArn,
  };
  if (p.keyPrefix) {
    // An output Value cannot be empty: a table at the bucket root has no prefix to give.
    o.NotificationPrefix = p.keyPrefix;
    // As the S3 filter rule must be written (`=` as %3D, a space as +): paste it as it is.
    o.NotificationFilterPrefix = p.routing.notifications[0].prefix;
  }
  if (p.usesQueue) o.QueueAgeAlarmSeconds = p.queueAgeAlarmSeconds;
  if (p.glueCatalogId) o.GlueCatalogId = p.glueCatalogId;
  if (p.usesQueue) {
    o.EventsQueueUrl = { Ref: 'EventsQueue' };
    o.EventsQueueArn = getAtt('EventsQueue');
  }
  if (p.trigger === 'eventbridge') o.ObjectCreatedRuleName = { Ref: 'ObjectCreatedRule' };
  if (p.cacheOn) o.CacheTableName = { Ref: 'PartitionCache' };
  if (p.createWorkgroup === 'true') o.AthenaWorkGroup = { Ref: 'AthenaWorkGroup' };
  if (p.tables) o.GlueTables = p.tableList.map((t) => t.text).join(',');
  o.BackfillQueueUrl = { Ref: 'BackfillQueue' };
  o.BackfillQueueArn = getAtt('BackfillQueue');
  o.BackfillDlqUrl = { Ref: 'BackfillDeadLetterQueue' };
  o.BackfillDlqArn = getAtt('BackfillDeadLetterQueue');
  o.BackfillFunctionName = { Ref: 'OnBackfillLambdaFunction' };
  // The one bucket on_backfill may read: `backfill --inventory --distributed` refuses a report elsewhere.
  if (p.inventoryBucket) o.InventoryBucket = p.inventoryBucket;
  return Object.fromEntries(Object.entries(o).map(([name, value]) => [name, { Value: value }]));
}

module.exports.problems = async ({ resolveVariable }) => (await config(resolveVariable)).problems;
module.exports.warnings = async ({ resolveVariable }) => (await config(resolveVariable)).warnings;

module.exports.resources = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  if (problems.length) return { Resources: {}, Outputs: {} }; // deploy/validate.js refuses
  let resources = { ...alarmResources(p), ...roleResources(p) };
  // Every mode has a DLQ: the queue's redrive target, EventBridge's target DLQ, or the
  // function's on-failure destination for direct S3 invocations (Lambda retries twice).
  resources = { ...resources, ...deadLetterQueue(p) };
  if (p.ownTopic) resources = { ...resources, ...topicResources(p) };
  if (p.usesQueue) resources = { ...resources, ...queueResources(p) };
  if (p.cacheOn) resources = { ...resources, ...cacheResources(p) };
  if (p.createWorkgroup === 'true') resources = { ...resources, ...workgroupResources(p) };
  resources = { ...resources, ...backfillResources(p) };
  if (p.createTable === 'true') resources = { ...resources, ...p.glue };
  if (p.createTable === 'true' && p.partitionIndex === 'true') resources = { ...resources, ...partitionIndexResources(p) };
  return { Resources: resources, Outputs: outputs(p) };
};

module.exports.events = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  if (problems.length) return [];
  if (p.trigger === 's3') {
    // One rule per flow-log suffix (S3 rejects overlapping rules; these two do not overlap).
    return p.routing.notifications.map((filters) => ({
      s3: {
        bucket: p.sourceBucket,
        event: 's3:ObjectCreated:*',
        rules: Object.entries(filters).map(([name, value]) => ({ [name]: value })),
        existing: true,
      },
    }));
  }
  return [{
    sqs: {
      arn: getAtt('EventsQueue'),
      batchSize: Number(p.batchSize),
      maximumBatchingWindow: Number(p.batchWindow),
      functionResponseType: 'ReportBatchItemFailures',
      // Caps concurrent invocations so that a burst of new objects cannot throttle Glue.
      maximumConcurrency: Number(p.maxConcurrency),
    },
  }];
};

module.exports.destinations = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  if (problems.length || p.usesQueue) return {};
  // `vpcflow-partitioner replay --queue-url <dlq>` reads these on-failure records too.
  return { onFailure: { type: 'sqs', arn: getAtt('EventsDeadLetterQueue') } };
};

module.exports.functionTimeout = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  return problems.length ? 60 : Number(p.functionTimeout);
};

module.exports.logRetentionDays = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  return problems.length ? 30 : Number(p.logRetentionDays);
};

// Tracing off is PassThrough, written out: a stack that had Active tracing is switched back.
module.exports.tracingMode = async ({ resolveVariable }) => {
  const { p } = await config(resolveVariable);
  return p.tracing === 'true' ? 'Active' : 'PassThrough';
};

// The Powertools layer through the public SSM parameter Powertools documents
// (/aws/service/powertools/python/{arch}/{python}/{version}), resolved by CloudFormation in
// the deploying account's own partition and region: the same version the tests run with.
module.exports.layers = async ({ resolveVariable }) => {
  const { p } = await config(resolveVariable);
  if (p.powertoolsLayerArn) return [p.powertoolsLayerArn];
  // A dynamic reference built by Sub (osls's schema wants an ARN or a function here).
  const name = `/aws/service/powertools/python/arm64/python3.12/${p.powertoolsVersion}`;
  return [{ 'Fn::Sub': ['{{resolve:ssm:${Name}}}', { Name: name }] }];
};

// The role of each function as a Sub of its ARN: osls adds a DependsOn to a GetAtt role,
// which the GetAtt already implies (cfn-lint W3005).
module.exports.objectCreatedRole = async () => sub('${ObjectCreatedRole.Arn}');
module.exports.scheduleRole = async () => sub('${ScheduleRole.Arn}');
module.exports.backfillRole = async () => sub('${BackfillRole.Arn}');

module.exports.backfillTimeout = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  return problems.length ? 900 : Number(p.backfillTimeout);
};

module.exports.backfillMemory = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  return problems.length ? 1769 : Number(p.backfillMemory);
};

// One work item an invocation (a slice may take minutes); MaximumConcurrency is the throttle
// that keeps Glue's write rate: more workers only meet more throttling.
module.exports.backfillEvents = async ({ resolveVariable }) => {
  const { p, problems } = await config(resolveVariable);
  if (problems.length) return [];
  return [{
    sqs: {
      arn: getAtt('BackfillQueue'),
      batchSize: 1,
      functionResponseType: 'ReportBatchItemFailures',
      maximumConcurrency: Number(p.backfillConcurrency),
    },
  }];
};

module.exports.environment = async ({ resolveVariable }) => {
  const { p } = await config(resolveVariable);
  return environmentOf(p, { Ref: 'PartitionCache' });
};

// Every function's variables (osls sets them on each); `cacheTable` is the cache's name or a Ref.
function environmentOf(p, cacheTable) {
  const env = {
    GLUE_DATABASE: p.glueDatabase,
    GLUE_TABLE: p.glueTable,
    SOURCE_BUCKETS: p.sourceBucket,
    RECONCILE_DAYS: p.reconcileDays,
    CACHE_TTL_DAYS: p.cacheTtlDays,
    TABLE_REFRESH_SECONDS: p.tableRefreshSeconds,
    TRACING: p.tracing === 'true' ? 'true' : 'false',
    POWERTOOLS_SERVICE_NAME: 'vpcflow-partitioner',
    POWERTOOLS_METRICS_NAMESPACE: 'VpcFlowPartitioner',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
  if (p.tables) {
    // GLUE_TABLES replaces the one-table form: glueDatabase/glueTable (defaults included) name
    // no table the stack grants, so the functions must not be told about it.
    delete env.GLUE_DATABASE;
    delete env.GLUE_TABLE;
    env.GLUE_TABLES = p.tableList.map((t) => t.text).join(',');
  }
  if (p.glueCatalogId) env.GLUE_CATALOG_ID = p.glueCatalogId;
  if (p.cacheOn) env.CACHE_TABLE = cacheTable;
  return env;
}
