variable "name" {
  description = "Name of the target table."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.name))
    error_message = "name must be a valid DynamoDB table name (3-255 characters of A-Za-z0-9_.-)."
  }
}

variable "hash_key" {
  description = "Partition key attribute name."
  type        = string
}

variable "range_key" {
  description = "Sort key attribute name, or null."
  type        = string
  default     = null
}

variable "attributes" {
  description = "Key attributes of the table and its indexes (type S, N or B)."
  type = list(object({
    name = string
    type = string
  }))

  validation {
    condition     = length(var.attributes) > 0 && alltrue([for a in var.attributes : contains(["S", "N", "B"], a.type)])
    error_message = "attributes must be non-empty and each type must be S, N or B."
  }
}

variable "global_secondary_indexes" {
  description = "Global secondary indexes."
  type = list(object({
    name               = string
    hash_key           = string
    range_key          = optional(string)
    projection_type    = string
    non_key_attributes = optional(list(string))
    read_capacity      = optional(number)
    write_capacity     = optional(number)
  }))
  default = []

  validation {
    condition     = alltrue([for g in var.global_secondary_indexes : contains(["ALL", "KEYS_ONLY", "INCLUDE"], g.projection_type)])
    error_message = "Each global secondary index projection_type must be ALL, KEYS_ONLY or INCLUDE."
  }

  validation {
    condition     = alltrue([for g in var.global_secondary_indexes : (g.projection_type == "INCLUDE") == (g.non_key_attributes != null)])
    error_message = "non_key_attributes must be set exactly when projection_type is INCLUDE."
  }
}

variable "create_timeout" {
  description = "How long Terraform waits for the table's creation, the import from S3 included (the provider waits at most the larger of this and 30 minutes)."
  type        = string
  default     = "30m"

  validation {
    condition     = can(regex("^[0-9]+[mh]$", var.create_timeout))
    error_message = "create_timeout must be minutes or hours, such as 90m or 24h."
  }
}

variable "billing_mode" {
  description = "PAY_PER_REQUEST or PROVISIONED."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "read_capacity" {
  description = "Table read capacity (PROVISIONED only)."
  type        = number
  default     = null
}

variable "write_capacity" {
  description = "Table write capacity (PROVISIONED only)."
  type        = number
  default     = null
}

variable "table_class" {
  description = "STANDARD or STANDARD_INFREQUENT_ACCESS."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "STANDARD_INFREQUENT_ACCESS"], var.table_class)
    error_message = "table_class must be STANDARD or STANDARD_INFREQUENT_ACCESS."
  }
}

variable "sse_enabled" {
  description = "Use an AWS managed KMS key (aws/dynamodb). false with no kms_key_arn keeps DynamoDB's default encryption with an AWS owned key."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer managed KMS key ARN for encryption at rest, or null."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key or alias ARN."
  }
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery."
  type        = bool
  default     = true
}

variable "ttl_attribute" {
  description = "TTL attribute name, or null for no TTL."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Enable deletion protection."
  type        = bool
  default     = true
}

variable "stream_view_type" {
  description = "Stream view type (KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES), or null for no stream."
  type        = string
  default     = null

  validation {
    condition     = var.stream_view_type == null || contains(["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"], coalesce(var.stream_view_type, "-"))
    error_message = "stream_view_type must be KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES or null."
  }
}

variable "import" {
  description = "S3 source of the initial import. Only read when the table is created."
  type = object({
    bucket       = string
    bucket_owner = string
    key_prefix   = string
    input_format = optional(string, "DYNAMODB_JSON")
    compression  = optional(string, "GZIP")
  })

  validation {
    condition     = can(regex("^[0-9]{12}$", var.import.bucket_owner))
    error_message = "import.bucket_owner must be a 12-digit AWS account id."
  }

  validation {
    condition     = contains(["DYNAMODB_JSON", "ION", "CSV"], var.import.input_format)
    error_message = "import.input_format must be DYNAMODB_JSON, ION or CSV."
  }

  validation {
    condition     = contains(["GZIP", "ZSTD", "NONE"], var.import.compression)
    error_message = "import.compression must be GZIP, ZSTD or NONE."
  }
}

variable "tags" {
  description = "Tags for the table."
  type        = map(string)
  default     = {}
}
