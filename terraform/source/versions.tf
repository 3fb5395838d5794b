terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # The CLI passes -backend-config=workspace_dir=<dir> at init and selects a workspace named
  # after the migration.
  backend "local" {}
}
