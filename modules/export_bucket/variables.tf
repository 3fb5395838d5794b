variable "name" {
  description = "Name of the export bucket (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid S3 bucket name: 3-63 characters, lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "source_account_id" {
  description = "AWS account id of the source account whose DynamoDB export writes into this bucket."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.source_account_id))
    error_message = "source_account_id must be a 12-digit AWS account id."
  }
}

variable "export_prefix" {
  description = "Key prefix the source account may write under (the DynamoDB export S3Prefix)."
  type        = string
  default     = "exports/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.'()-][A-Za-z0-9!_.'()/-]*/$", var.export_prefix))
    error_message = "export_prefix must be a key prefix ending with \"/\" (letters, digits, !_.'()-/; not starting with \"/\", no wildcards)."
  }
}

variable "restrict_list_to_prefix" {
  description = "Condition the source account's s3:ListBucket on the export prefix (s3:prefix)."
  type        = bool
  default     = true
}

variable "expiration_days" {
  description = "Days after which export objects expire."
  type        = number
  default     = 14

  validation {
    condition     = var.expiration_days >= 1 && floor(var.expiration_days) == var.expiration_days
    error_message = "expiration_days must be a whole number of days, at least 1."
  }
}

variable "kms_key_arn" {
  description = "Optional KMS key ARN for SSE-KMS; null uses SSE-S3 (AES256)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key or alias ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "force_destroy" {
  description = "Allow destroying the bucket while it still holds objects."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the bucket."
  type        = map(string)
  default     = {}
}
