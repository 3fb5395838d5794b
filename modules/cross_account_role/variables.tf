variable "name" {
  description = "Name of the IAM role the replicator assumes to write the table."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.name))
    error_message = "name must be a valid IAM role name (1-64 characters of A-Za-z0-9+=,.@_-)."
  }
}

variable "replicator_account_id" {
  description = "AWS account id of the account where the replicator runs (the source account forward, the target account for the way back)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.replicator_account_id))
    error_message = "replicator_account_id must be a 12-digit AWS account id."
  }
}

variable "replicator_role_arn" {
  description = "ARN of the replicator Lambda's execution role in replicator_account_id (it may not exist yet)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", var.replicator_role_arn))
    error_message = "replicator_role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "external_id" {
  description = "External id the replicator must present when assuming the role (not a secret)."
  type        = string

  validation {
    condition     = length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[A-Za-z0-9+=,.@:/_-]+$", var.external_id))
    error_message = "external_id must be 2-1224 characters of A-Za-z0-9+=,.@:/_-."
  }
}

variable "table_arn" {
  description = "ARN of the DynamoDB table the replicator writes (the target table forward, the source table for the way back; it may not exist yet)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}$", var.table_arn))
    error_message = "table_arn must be a DynamoDB table ARN (arn:aws:dynamodb:<region>:<account>:table/<name>)."
  }
}

variable "max_session_duration" {
  description = "Maximum session duration of the role, in seconds."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 3600 and 43200 seconds."
  }
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}
