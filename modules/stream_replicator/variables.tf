variable "name" {
  description = "Name of the Lambda function and of its execution role (the CLI passes <migration>-replicator)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "name must be 1-64 characters of A-Za-z0-9_- (valid for both a Lambda function and an IAM role)."
  }
}

variable "stream_arn" {
  description = "ARN of the DynamoDB stream it replays (the source table's forward, the target table's for the way back)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/.+$", var.stream_arn))
    error_message = "stream_arn must be a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>)."
  }
}

variable "enabled" {
  description = "Whether the event source mapping is enabled (false while the export runs, true to replay)."
  type        = bool
}

variable "package_path" {
  description = "Path to the replicator zip package."
  type        = string
}

variable "package_base64sha256" {
  description = "Base64-encoded SHA-256 of the zip package (drives code updates)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+/]{43}=$", var.package_base64sha256))
    error_message = "package_base64sha256 must be a base64-encoded SHA-256 digest (44 characters)."
  }
}

variable "writer_role_arn" {
  description = "ARN of the cross-account writer role in the account of the table it writes."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", var.writer_role_arn))
    error_message = "writer_role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "external_id" {
  description = "External id presented when assuming the writer role."
  type        = string

  validation {
    condition     = length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[A-Za-z0-9+=,.@:/_-]+$", var.external_id))
    error_message = "external_id must be 2-1224 characters of A-Za-z0-9+=,.@:/_-."
  }
}

variable "target_table_name" {
  description = "Name of the table it writes (the target table forward, the source table for the way back)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.target_table_name))
    error_message = "target_table_name must be a valid DynamoDB table name."
  }
}

variable "target_region" {
  description = "Region of the table it writes."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.target_region))
    error_message = "target_region must look like an AWS region (e.g. us-east-1)."
  }
}

variable "target_endpoint_url" {
  description = "Endpoint URL for the target DynamoDB/STS calls (emulators only); null on AWS."
  type        = string
  default     = null
}

variable "failure_bucket_name" {
  description = "Name of the S3 bucket receiving failed invocation records (on-failure destination)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.failure_bucket_name))
    error_message = "failure_bucket_name must be a valid S3 bucket name."
  }
}

variable "failure_bucket_expiration_days" {
  description = "Days after which failure records expire."
  type        = number
  default     = 30
}

variable "failure_bucket_force_destroy" {
  description = "Allow destroying the failure bucket while it still holds records."
  type        = bool
  default     = false
}

variable "batch_size" {
  description = "Maximum records per invocation."
  type        = number
  default     = 1000

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "maximum_batching_window_in_seconds" {
  description = "Maximum batching window, in seconds."
  type        = number
  default     = 1

  validation {
    condition     = var.maximum_batching_window_in_seconds >= 0 && var.maximum_batching_window_in_seconds <= 300
    error_message = "maximum_batching_window_in_seconds must be between 0 and 300."
  }
}

variable "maximum_retry_attempts" {
  description = "Retries of a failing batch before it goes to the failure destination (-1 = until the record expires)."
  type        = number
  default     = 10

  validation {
    condition     = var.maximum_retry_attempts >= -1 && var.maximum_retry_attempts <= 10000
    error_message = "maximum_retry_attempts must be between -1 and 10000."
  }
}

variable "parallelization_factor" {
  description = "Concurrent batches per shard (Lambda keeps per-partition-key order at any value)."
  type        = number
  default     = 1

  validation {
    condition     = var.parallelization_factor >= 1 && var.parallelization_factor <= 10
    error_message = "parallelization_factor must be between 1 and 10."
  }
}

variable "timeout" {
  description = "Function timeout, in seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "retry" {
  description = "How the function retries throttled, 5xx and unprocessed writes: full-jitter backoff (migrator's retry: setting)."
  type = object({
    max_attempts = optional(number, 30)
    base_delay_s = optional(number, 0.05)
    max_delay_s  = optional(number, 5)
  })
  default = {}

  validation {
    condition     = var.retry.max_attempts >= 1 && var.retry.base_delay_s > 0 && var.retry.max_delay_s >= var.retry.base_delay_s
    error_message = "retry needs max_attempts >= 1, base_delay_s > 0 and max_delay_s >= base_delay_s."
  }
}

variable "memory_size" {
  description = "Function memory, in MB."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key (in this region) for the failure bucket (SSE-KMS), the log group and the function's environment; null keeps the AWS managed encryption of each. Its key policy must let logs.<region>.amazonaws.com use it, and whoever runs redrive needs kms:Decrypt on it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", coalesce(var.kms_key_arn, "-")))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); CloudWatch Logs and Lambda do not take aliases."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing mode (Active or PassThrough), or null for no tracing configuration."
  type        = string
  default     = null

  validation {
    condition     = var.tracing_mode == null || contains(["Active", "PassThrough"], coalesce(var.tracing_mode, "-"))
    error_message = "tracing_mode must be Active, PassThrough or null."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when the stream iterator age exceeds this many milliseconds."
  type        = number
  default     = 600000

  validation {
    condition     = var.iterator_age_alarm_ms > 0
    error_message = "iterator_age_alarm_ms must be positive."
  }
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires (e.g. SNS topics)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_actions : can(regex("^arn:aws[a-z-]*:", a))])
    error_message = "alarm_actions must be ARNs."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
