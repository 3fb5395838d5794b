# Phase 6 (cleanup) sets replicator to null: function, mapping, alarms, log group and failure bucket go.
module "replicator" {
  source = "../../modules/stream_replicator"
  count  = var.replicator == null ? 0 : 1

  name       = "${var.migration}-replicator"
  stream_arn = var.source_table.stream_arn
  enabled    = var.replicator.enabled

  package_path         = var.replicator.package_path
  package_base64sha256 = var.replicator.package_base64sha256

  writer_role_arn     = var.replicator.writer_role_arn
  external_id         = var.replicator.external_id
  target_table_name   = var.replicator.target_table_name
  target_region       = var.replicator.target_region
  target_endpoint_url = var.replicator.target_endpoint_url

  failure_bucket_name = var.replicator.failure_bucket_name

  batch_size                         = var.replicator.batch_size
  maximum_batching_window_in_seconds = var.replicator.maximum_batching_window_in_seconds
  maximum_retry_attempts             = var.replicator.maximum_retry_attempts
  parallelization_factor             = var.replicator.parallelization_factor
  timeout                            = var.replicator.timeout
  retry                              = var.replicator.retry
  memory_size                        = var.replicator.memory_size
  log_retention_days                 = var.replicator.log_retention_days
  iterator_age_alarm_ms              = var.replicator.iterator_age_alarm_ms
  alarm_actions                      = var.replicator.alarm_actions
  kms_key_arn                        = var.replicator.kms_key_arn
}

# Workspaces applied before the module had a count keep their resources (no replacement).
moved {
  from = module.replicator
  to   = module.replicator[0]
}

# Phase 5 (fallback): the role the reverse replicator (target account) assumes to write the source table,
# trusted only by its execution role (aws:PrincipalArn) with the reverse external id. Null before phase 5
# and after cleanup.
module "reverse_writer_role" {
  source = "../../modules/cross_account_role"
  count  = var.reverse_writer_role == null ? 0 : 1

  name                  = var.reverse_writer_role.name
  replicator_account_id = var.reverse_writer_role.replicator_account_id
  replicator_role_arn   = var.reverse_writer_role.replicator_role_arn
  external_id           = var.reverse_writer_role.external_id
  table_arn             = var.source_table.arn
}
