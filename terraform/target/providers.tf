provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]

  # Credentials come only from the environment the CLI gives terraform.
  s3_use_path_style       = var.endpoint_url != null
  skip_metadata_api_check = true

  # Only when a local emulator endpoint is configured; real runs pass no endpoint_url.
  dynamic "endpoints" {
    for_each = var.endpoint_url == null ? [] : [var.endpoint_url]
    content {
      cloudwatch = endpoints.value
      dynamodb   = endpoints.value
      iam        = endpoints.value
      kms        = endpoints.value
      lambda     = endpoints.value
      logs       = endpoints.value
      s3         = endpoints.value
      sns        = endpoints.value
      sqs        = endpoints.value
      sts        = endpoints.value
    }
  }

  default_tags {
    tags = {
      "migrator:migration" = var.migration
      "managed-by"         = "migrator"
    }
  }
}
