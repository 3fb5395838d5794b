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

variable "source_table" {
  description = "Source table whose stream is replayed into the target table."
  type = object({
    name       = string
    arn        = string
    stream_arn = string
  })

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}$", var.source_table.arn))
    error_message = "source_table.arn must be a DynamoDB table ARN (arn:aws:dynamodb:<region>:<account>:table/<name>)."
  }

  validation {
    condition     = startswith(var.source_table.stream_arn, "${var.source_table.arn}/stream/") && endswith(var.source_table.arn, ":table/${var.source_table.name}")
    error_message = "source_table.stream_arn must be a stream of source_table.arn (<arn>/stream/<label>) and the ARN must name source_table.name."
  }
}

variable "replicator" {
  description = "Stream replicator (Lambda, event source mapping, failure bucket, alarms); null after cleanup (phase 6)."
  type = object({
    enabled                            = bool
    package_path                       = string
    package_base64sha256               = string
    writer_role_arn                    = string
    external_id                        = string
    target_table_name                  = string
    target_region                      = string
    target_endpoint_url                = optional(string)
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
    kms_key_arn           = optional(string)
  })
}

variable "reverse_writer_role" {
  description = "The way back (phase 5): the role the reverse replicator in the target account assumes to write the source table; null before phase 5 and after cleanup."
  type = object({
    name                  = string
    external_id           = string
    replicator_account_id = string
    replicator_role_arn   = string
  })
  default = null

  validation {
    condition     = var.reverse_writer_role == null || can(regex("^[0-9]{12}$", try(var.reverse_writer_role.replicator_account_id, "")))
    error_message = "reverse_writer_role.replicator_account_id must be the 12-digit target account id."
  }
}
