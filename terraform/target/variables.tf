variable "migration" {
  description = "Name of the migration; names the workspace and prefixes resources."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]{1,40}$", var.migration))
    error_message = "migration must be 1-40 characters of lowercase letters, digits and hyphens."
  }
}

variable "account_id" {
  description = "AWS account id this root is applied in (the provider refuses any other)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account id."
  }
}

variable "region" {
  description = "AWS region."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like an AWS region (e.g. us-east-1)."
  }
}

variable "endpoint_url" {
  description = "Endpoint of a local AWS emulator for every service; null (default) on AWS."
  type        = string
  default     = null

  validation {
    condition     = var.endpoint_url == null || can(regex("^https?://", coalesce(var.endpoint_url, "-")))
    error_message = "endpoint_url must be an http(s) URL or null."
  }
}

variable "source_account_id" {
  description = "AWS account id of the source account (export writer, replicator)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.source_account_id))
    error_message = "source_account_id must be a 12-digit AWS account id."
  }
}

variable "export_bucket" {
  description = "Export bucket the source account's DynamoDB export writes into; null after cleanup (phase 6)."
  type = object({
    name            = string
    export_prefix   = optional(string, "exports/")
    expiration_days = optional(number, 14)
    kms_key_arn     = optional(string)
    force_destroy   = optional(bool, false)
  })
}

variable "writer_role" {
  description = "Cross-account role the replicator assumes to write the target table; null after cleanup (phase 6)."
  type = object({
    name                = string
    external_id         = string
    replicator_role_arn = string
  })
}

variable "target_table_name" {
  description = "Name of the target table (known in phase 1; the writer role's policy is scoped to it)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.target_table_name))
    error_message = "target_table_name must be a valid DynamoDB table name (3-255 characters of A-Za-z0-9_.-)."
  }
}

variable "table" {
  description = "Target table, created by importing the export (phase 3); null in phase 1."
  type = object({
    name      = string
    hash_key  = string
    range_key = optional(string)
    attributes = list(object({
      name = string
      type = string
    }))
    global_secondary_indexes = optional(list(object({
      name               = string
      hash_key           = string
      range_key          = optional(string)
      projection_type    = string
      non_key_attributes = optional(list(string))
      read_capacity      = optional(number)
      write_capacity     = optional(number)
    })), [])
    billing_mode           = optional(string, "PAY_PER_REQUEST")
    read_capacity          = optional(number)
    write_capacity         = optional(number)
    table_class            = optional(string, "STANDARD")
    sse_enabled            = optional(bool, false)
    kms_key_arn            = optional(string)
    point_in_time_recovery = optional(bool, true)
    ttl_attribute          = optional(string)
    deletion_protection    = optional(bool, true)
    stream_view_type       = optional(string)
    create_timeout         = optional(string, "30m")
    import = object({
      bucket       = string
      bucket_owner = string
      key_prefix   = string
      input_format = optional(string, "DYNAMODB_JSON")
      compression  = optional(string, "GZIP")
    })
  })
  default = null
}

variable "reverse_replicator" {
  description = "The way back (phase 5): a replicator on the target table's stream writing the source table; null before phase 5 and after cleanup."
  type = object({
    name                               = string
    enabled                            = bool
    package_path                       = string
    package_base64sha256               = string
    writer_role_arn                    = string
    external_id                        = string
    source_table_name                  = string
    source_region                      = string
    source_endpoint_url                = optional(string)
    failure_bucket_name                = string
    batch_size                         = optional(number, 1000)
    maximum_batching_window_in_seconds = optional(number, 1)
    maximum_retry_attempts             = optional(number, 10)
    parallelization_factor             = optional(number, 1)
    timeout                            = optional(number, 300)
    retry = optional(object({
      max_attempts = optional(number, 30)
      base_delay_s = optional(number, 0.05)
      max_delay_s  = optional(number, 5)
    }), {})
    memory_size           = optional(number, 512)
    log_retention_days    = optional(number, 30)
    iterator_age_alarm_ms = optional(number, 600000)
    alarm_actions         = optional(list(string), [])
  })
  default = null

  validation {
    condition     = var.reverse_replicator == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", try(var.reverse_replicator.writer_role_arn, "")))
    error_message = "reverse_replicator.writer_role_arn must be an IAM role ARN (the reverse writer role in the source account)."
  }
}
