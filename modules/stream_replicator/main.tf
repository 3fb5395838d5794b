locals {
  log_group_name = "/aws/lambda/${var.name}"

  environment = merge(
    {
      TARGET_TABLE       = var.target_table_name
      TARGET_REGION      = var.target_region
      WRITER_ROLE_ARN    = var.writer_role_arn
      EXTERNAL_ID        = var.external_id
      RETRY_MAX_ATTEMPTS = tostring(var.retry.max_attempts)
      RETRY_BASE_DELAY_S = tostring(var.retry.base_delay_s)
      RETRY_MAX_DELAY_S  = tostring(var.retry.max_delay_s)
    },
    var.target_endpoint_url == null ? {} : { TARGET_ENDPOINT_URL = var.target_endpoint_url },
  )
}

################################################################################
# Failure destination (S3 receives the whole invocation record, keys included)
################################################################################

resource "aws_s3_bucket" "failures" {
  # checkov:skip=CKV_AWS_18: the bucket holds failure records for the days of one migration; server access logs would need a second, longer-lived log bucket. Access is already confined (public access blocked, TLS-only policy, written only by this function's role); CloudTrail S3 data events cover object-level audit where an account requires it.
  # checkov:skip=CKV_AWS_144: cross-region replication of transient failure records adds nothing: redrive uses only the keys in them and re-reads the current item from the source table, which stays the source of truth until cutover.
  # checkov:skip=CKV2_AWS_62: nothing consumes per-object events: `migrator status` counts the failure records by listing the bucket and `migrator redrive` reads them; a failing replicator is signalled by the Errors and IteratorAge alarms.
  # checkov:skip=CKV_AWS_145: SSE-S3 (AES256) encrypts the records at rest by default; SSE-KMS with a customer managed key is one variable away (kms_key_arn), not forced, because it needs a key policy the operator owns.
  bucket        = var.failure_bucket_name
  force_destroy = var.failure_bucket_force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "failures" {
  bucket = aws_s3_bucket.failures.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "failures" {
  bucket = aws_s3_bucket.failures.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "failures" {
  bucket = aws_s3_bucket.failures.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "failures" {
  bucket = aws_s3_bucket.failures.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "failures" {
  bucket = aws_s3_bucket.failures.id

  rule {
    id     = "expire-failure-records"
    status = "Enabled"

    filter {}

    expiration {
      days = var.failure_bucket_expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.failure_bucket_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.failures]
}

data "aws_iam_policy_document" "failures" {
  # The only wildcard action, in a Deny: every S3 action over plain HTTP is refused, whoever asks.
  # A deny has to cover every action and principal to mean "TLS only"; nothing is allowed here.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.failures.arn, "${aws_s3_bucket.failures.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "failures" {
  bucket = aws_s3_bucket.failures.id
  policy = data.aws_iam_policy_document.failures.json

  depends_on = [aws_s3_bucket_public_access_block.failures]
}

################################################################################
# Execution role
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name        = var.name
  description = "Execution role of the migrator replicator ${var.name}"

  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid    = "ReadSourceStream"
    effect = "Allow"
    actions = [
      "dynamodb:DescribeStream",
      "dynamodb:GetRecords",
      "dynamodb:GetShardIterator",
    ]
    resources = [var.stream_arn]
  }

  statement {
    sid     = "ListStreams"
    effect  = "Allow"
    actions = ["dynamodb:ListStreams"]
    # dynamodb:ListStreams has no resource-level permissions (the Service Authorization Reference
    # lists no resource type for it): AWS only accepts "*" here. The Lambda poller calls it.
    resources = ["*"]
  }

  statement {
    sid       = "AssumeWriterRole"
    effect    = "Allow"
    actions   = ["sts:AssumeRole"]
    resources = [var.writer_role_arn]
  }

  statement {
    sid    = "WriteLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    # ":*" is the log streams of this one group, which Lambda names at runtime.
    resources = [aws_cloudwatch_log_group.this.arn, "${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid     = "WriteFailureRecords"
    effect  = "Allow"
    actions = ["s3:PutObject"]
    # Objects of this one bucket, which the event source mapping names at runtime.
    resources = ["${aws_s3_bucket.failures.arn}/*"]
  }

  statement {
    sid       = "ListFailureBucket"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.failures.arn]
  }

  # The failure destination writes with SSE-KMS when a customer managed key is configured.
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid    = "UseKmsKey"
      effect = "Allow"
      actions = [
        "kms:GenerateDataKey",
        "kms:Decrypt",
      ]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [1] : []
    content {
      sid    = "XRayTracing"
      effect = "Allow"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
      ]
      # xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level permissions: AWS
      # only accepts "*" here (the same as the AWSXRayDaemonWriteAccess managed policy).
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "replicator"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Function
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_158: CloudWatch Logs always encrypts log data at rest; a customer managed key is opt-in through kms_key_arn (it needs a key policy for the logs service that the operator owns). The log holds batch counters, error codes and sequence numbers, not item images.
  # checkov:skip=CKV_AWS_338: the log group lives only as long as the migration (cleanup destroys it with the function), so a one-year retention would never be reached; log_retention_days (up to 731) raises it where a policy asks.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_116: a DLQ only catches asynchronous invocations; a stream event source mapping invokes synchronously, and its on-failure destination (the failure bucket above) is the DLQ for stream sources.
  # checkov:skip=CKV_AWS_117: the function only calls AWS APIs (DynamoDB Streams, STS, DynamoDB in the target account) over TLS with IAM; a VPC adds NAT or endpoint cost and failure modes and no isolation benefit.
  # checkov:skip=CKV_AWS_115: concurrency is already bounded by the event source (one batch per shard times parallelization_factor); a reserved cap below that throttles replay and pushes the iterator age toward the 24 h stream retention, and the shard count is unknown ahead and grows as shards split.
  # checkov:skip=CKV_AWS_272: the zip is built by migrator from this repository at apply time and deployed with its SHA-256 pinned (source_code_hash); code signing would need an AWS Signer profile and an S3 signing job for a function that lives for the days of one migration.
  # checkov:skip=CKV_AWS_173: Lambda encrypts environment variables at rest with an AWS managed key; they hold no secret (table name, region, role ARN and an external id, which is not a secret). A customer managed key is opt-in through kms_key_arn.
  # checkov:skip=CKV_AWS_50: X-Ray is opt-in (tracing_mode); the replicator's health is measured by the IteratorAge and Errors alarms, batch item failures and one log line per batch, and a trace per batch adds cost and a "*" IAM grant without adding a diagnosis.
  function_name    = var.name
  description      = substr("migrator replicator: source stream into ${var.target_table_name} (${var.target_region})", 0, 256)
  role             = aws_iam_role.this.arn
  runtime          = "python3.12"
  handler          = "replicator.handler.handler"
  filename         = var.package_path
  source_code_hash = var.package_base64sha256
  timeout          = var.timeout
  memory_size      = var.memory_size
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = local.environment
  }

  dynamic "tracing_config" {
    for_each = var.tracing_mode == null ? [] : [var.tracing_mode]
    content {
      mode = tracing_config.value
    }
  }

  tags = var.tags

  # The log group exists (with its retention) before the function can log, and the role can
  # write to it.
  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy.this,
  ]
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn  = var.stream_arn
  function_name     = aws_lambda_function.this.function_name
  enabled           = var.enabled
  starting_position = "TRIM_HORIZON"

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.maximum_retry_attempts
  maximum_record_age_in_seconds      = -1
  parallelization_factor             = var.parallelization_factor
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_s3_bucket.failures.arn
    }
  }

  tags = var.tags

  # The poller needs the stream, S3 and log permissions from the first poll.
  depends_on = [aws_iam_role_policy.this]
}

################################################################################
# Alarms
################################################################################

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.name}-iterator-age"
  alarm_description   = "Replication lag of ${var.name}: the oldest record read from the stream is older than ${var.iterator_age_alarm_ms} ms."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions

  dimensions = {
    FunctionName = aws_lambda_function.this.function_name
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.name}-errors"
  alarm_description   = "The replicator ${var.name} failed at least once in a minute."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions

  dimensions = {
    FunctionName = aws_lambda_function.this.function_name
  }

  tags = var.tags
}
