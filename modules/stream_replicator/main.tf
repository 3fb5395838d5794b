locals {
  log_group_name = "/aws/lambda/${var.name}"

  environment = merge(
    {
      TARGET_TABLE    = var.target_table_name
      TARGET_REGION   = var.target_region
      WRITER_ROLE_ARN = var.writer_role_arn
      EXTERNAL_ID     = var.external_id
    },
    var.target_endpoint_url == null ? {} : { TARGET_ENDPOINT_URL = var.target_endpoint_url },
  )
}

################################################################################
# Failure destination (S3 receives the whole invocation record, keys included)
################################################################################

resource "aws_s3_bucket" "failures" {
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
      sse_algorithm = "AES256"
    }
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
  # The only wildcard action: deny every S3 action over plain HTTP, whoever asks.
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
    # dynamodb:ListStreams has no resource-level permissions: AWS only accepts "*" here.
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
    resources = [aws_cloudwatch_log_group.this.arn, "${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "WriteFailureRecords"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.failures.arn}/*"]
  }

  statement {
    sid       = "ListFailureBucket"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.failures.arn]
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
      # X-Ray trace submission has no resource-level permissions: AWS only accepts "*" here.
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
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  function_name    = var.name
  description      = substr("migrator replicator: source stream into ${var.target_table_name} (${var.target_region})", 0, 256)
  role             = aws_iam_role.this.arn
  runtime          = "python3.12"
  handler          = "replicator.handler.handler"
  filename         = var.package_path
  source_code_hash = var.package_base64sha256
  timeout          = var.timeout
  memory_size      = var.memory_size

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

# Terraform keeps an output's planned value when it was known at plan time, and the provider plans
# the mapping's computed `state` as its previous value when `enabled` flips, so the
# event_source_mapping_state output would report the old state after the apply. This marker's
# output is unknown in any plan that changes `enabled`; the output is gated on it, so it is
# re-read after the apply (once the provider's waiter has settled on Enabled or Disabled).
resource "terraform_data" "event_source_mapping_state" {
  input = var.enabled
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
