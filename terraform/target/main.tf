locals {
  target_table_arn = "arn:${data.aws_partition.current.partition}:dynamodb:${var.region}:${var.account_id}:table/${var.target_table_name}"
}

data "aws_partition" "current" {}

# Phase 6 (cleanup) sets export_bucket and writer_role to null: the machinery goes, the target table stays.
module "export_bucket" {
  source = "../../modules/export_bucket"
  count  = var.export_bucket == null ? 0 : 1

  name              = var.export_bucket.name
  source_account_id = var.source_account_id
  export_prefix     = var.export_bucket.export_prefix
  expiration_days   = var.export_bucket.expiration_days
  kms_key_arn       = var.export_bucket.kms_key_arn
  force_destroy     = var.export_bucket.force_destroy
}

module "writer_role" {
  source = "../../modules/cross_account_role"
  count  = var.writer_role == null ? 0 : 1

  name                  = var.writer_role.name
  replicator_account_id = var.source_account_id
  replicator_role_arn   = var.writer_role.replicator_role_arn
  external_id           = var.writer_role.external_id
  table_arn             = local.target_table_arn
}

# Workspaces applied before the modules had a count keep their resources (no replacement).
moved {
  from = module.export_bucket
  to   = module.export_bucket[0]
}

moved {
  from = module.writer_role
  to   = module.writer_role[0]
}

module "target_table" {
  source = "../../modules/target_table"
  count  = var.table == null ? 0 : 1

  name                     = var.table.name
  hash_key                 = var.table.hash_key
  range_key                = var.table.range_key
  attributes               = var.table.attributes
  global_secondary_indexes = var.table.global_secondary_indexes
  billing_mode             = var.table.billing_mode
  read_capacity            = var.table.read_capacity
  write_capacity           = var.table.write_capacity
  table_class              = var.table.table_class
  sse_enabled              = var.table.sse_enabled
  kms_key_arn              = var.table.kms_key_arn
  point_in_time_recovery   = var.table.point_in_time_recovery
  ttl_attribute            = var.table.ttl_attribute
  deletion_protection      = var.table.deletion_protection
  stream_view_type         = var.table.stream_view_type
  import                   = var.table.import
  create_timeout           = var.table.create_timeout
}

# Phase 5 (fallback): the way back, on the target table's stream, writing the source table through the
# reverse writer role in the source account; its mapping follows the recorded direction (disabled until
# `migrator cutover`). Null before phase 5 and after phase 6.
module "reverse_replicator" {
  source = "../../modules/stream_replicator"
  count  = var.reverse_replicator == null ? 0 : 1

  name       = var.reverse_replicator.name
  stream_arn = module.target_table[0].table_stream_arn
  enabled    = var.reverse_replicator.enabled

  package_path         = var.reverse_replicator.package_path
  package_base64sha256 = var.reverse_replicator.package_base64sha256

  writer_role_arn     = var.reverse_replicator.writer_role_arn
  external_id         = var.reverse_replicator.external_id
  target_table_name   = var.reverse_replicator.source_table_name
  target_region       = var.reverse_replicator.source_region
  target_endpoint_url = var.reverse_replicator.source_endpoint_url

  failure_bucket_name = var.reverse_replicator.failure_bucket_name

  batch_size                         = var.reverse_replicator.batch_size
  maximum_batching_window_in_seconds = var.reverse_replicator.maximum_batching_window_in_seconds
  maximum_retry_attempts             = var.reverse_replicator.maximum_retry_attempts
  parallelization_factor             = var.reverse_replicator.parallelization_factor
  timeout                            = var.reverse_replicator.timeout
  retry                              = var.reverse_replicator.retry
  memory_size                        = var.reverse_replicator.memory_size
  log_retention_days                 = var.reverse_replicator.log_retention_days
  iterator_age_alarm_ms              = var.reverse_replicator.iterator_age_alarm_ms
  alarm_actions                      = var.reverse_replicator.alarm_actions
}
