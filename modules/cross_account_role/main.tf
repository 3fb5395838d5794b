data "aws_partition" "current" {}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "ReplicatorAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    # The replicator's execution role may not exist yet when this is applied (an IAM trust policy
    # naming a missing role is refused), so trust the source account and pin the caller with
    # aws:PrincipalArn.
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${var.replicator_account_id}:root"]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:PrincipalArn"
      values   = [var.replicator_role_arn]
    }
  }
}

data "aws_iam_policy_document" "write" {
  statement {
    sid    = "WriteTargetTable"
    effect = "Allow"
    actions = [
      "dynamodb:BatchWriteItem",
      "dynamodb:PutItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
    ]
    resources = [var.table_arn]
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "Assumed by the migrator replicator in account ${var.replicator_account_id} to write ${var.table_arn}"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = split(":", var.replicator_role_arn)[4] == var.replicator_account_id
      error_message = "replicator_role_arn must be a role in replicator_account_id."
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "write-target-table"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.write.json
}
