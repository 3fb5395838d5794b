locals {
  target_table_arn = "arn:${data.aws_partition.current.partition}:dynamodb:${var.region}:${var.account_id}:table/${var.target_table_name}"
}

data "aws_partition" "current" {}

module "export_bucket" {
  source = "../../modules/export_bucket"

  name              = var.export_bucket.name
  source_account_id = var.source_account_id
  export_prefix     = var.export_bucket.export_prefix
  expiration_days   = var.export_bucket.expiration_days
  kms_key_arn       = var.export_bucket.kms_key_arn
  force_destroy     = var.export_bucket.force_destroy
}

module "writer_role" {
  source = "../../modules/cross_account_role"

  name                = var.writer_role.name
  source_account_id   = var.source_account_id
  replicator_role_arn = var.writer_role.replicator_role_arn
  external_id         = var.writer_role.external_id
  target_table_arn    = local.target_table_arn
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
