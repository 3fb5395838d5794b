data "aws_partition" "current" {}

locals {
  source_account_principal = "arn:${data.aws_partition.current.partition}:iam::${var.source_account_id}:root"
}

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_18: the bucket holds one export for the days of a migration (objects expire after expiration_days); server access logs would need a second, longer-lived log bucket. Writes are confined by the policy to the source account under export_prefix, over TLS; CloudTrail S3 data events cover object-level audit where an account requires it.
  # checkov:skip=CKV_AWS_144: the export is a transient copy that lives for days; the source table (with PITR) stays the source of truth, and a lost export is re-run, so cross-region replication adds cost and nothing else.
  # checkov:skip=CKV2_AWS_62: nothing consumes per-object events: migrator follows the export with DescribeExport and the import reads the prefix once, when the target table is created.
  bucket        = var.name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-exports"
    status = "Enabled"

    filter {}

    expiration {
      days = var.expiration_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # Lifecycle rules on noncurrent versions need versioning configured first.
  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "this" {
  # The only wildcard action, in a Deny: every S3 action over plain HTTP is refused, whoever asks.
  # A deny has to cover every action and principal to mean "TLS only"; nothing is allowed here.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

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

  statement {
    sid    = "AllowSourceAccountExportWrite"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:PutObjectAcl",
    ]
    resources = ["${aws_s3_bucket.this.arn}/${var.export_prefix}*"]

    principals {
      type        = "AWS"
      identifiers = [local.source_account_principal]
    }
  }

  statement {
    sid       = "AllowSourceAccountList"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]

    principals {
      type        = "AWS"
      identifiers = [local.source_account_principal]
    }

    dynamic "condition" {
      for_each = var.restrict_list_to_prefix ? [var.export_prefix] : []
      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [condition.value, "${condition.value}*"]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  # A bucket policy granting another account is refused while the public access block is being set.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
