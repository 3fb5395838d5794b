terraform {
  required_version = ">= 1.10.0" # use_lockfile: S3-native state locking

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Partial configuration: migrator passes the state bucket, key, region, locking and (when the bucket
  # is in the other account) the assume_role at init, and selects a workspace named after the migration.
  backend "s3" {}
}
