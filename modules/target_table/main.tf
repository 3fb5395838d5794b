locals {
  provisioned = var.billing_mode == "PROVISIONED"
  # Emit server_side_encryption only when asked for: without the block DynamoDB encrypts at rest
  # with an AWS owned key (and against moto an explicit `enabled = true` never converges).
  sse = var.kms_key_arn != null || var.sse_enabled
}

resource "aws_dynamodb_table" "this" {
  name           = var.name
  hash_key       = var.hash_key
  range_key      = var.range_key
  billing_mode   = var.billing_mode
  read_capacity  = local.provisioned ? var.read_capacity : null
  write_capacity = local.provisioned ? var.write_capacity : null
  table_class    = var.table_class

  deletion_protection_enabled = var.deletion_protection

  # ImportTable cannot create a stream; the provider enables it on the next apply (phase 3 converges).
  stream_enabled   = var.stream_view_type != null
  stream_view_type = var.stream_view_type

  dynamic "attribute" {
    for_each = var.attributes
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  dynamic "global_secondary_index" {
    for_each = var.global_secondary_indexes
    content {
      name               = global_secondary_index.value.name
      hash_key           = global_secondary_index.value.hash_key
      range_key          = global_secondary_index.value.range_key
      projection_type    = global_secondary_index.value.projection_type
      non_key_attributes = global_secondary_index.value.non_key_attributes
      read_capacity      = local.provisioned ? global_secondary_index.value.read_capacity : null
      write_capacity     = local.provisioned ? global_secondary_index.value.write_capacity : null
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  dynamic "ttl" {
    for_each = var.ttl_attribute == null ? [] : [var.ttl_attribute]
    content {
      enabled        = true
      attribute_name = ttl.value
    }
  }

  dynamic "server_side_encryption" {
    for_each = local.sse ? [1] : []
    content {
      enabled     = true
      kms_key_arn = var.kms_key_arn
    }
  }

  import_table {
    input_format           = var.import.input_format
    input_compression_type = var.import.compression

    s3_bucket_source {
      bucket       = var.import.bucket
      bucket_owner = var.import.bucket_owner
      key_prefix   = var.import.key_prefix
    }
  }

  tags = var.tags

  # An import of a few GB takes hours; past this wait the apply fails and the table is marked tainted
  # (migrator's phase 3 then waits for the import itself and untaints it, never replacing the table).
  timeouts {
    create = var.create_timeout
  }

  lifecycle {
    # import_table only acts when the table is created; a later change must never replace the table.
    # No prevent_destroy: it would make the plan itself fail, so neither plan review nor migrator could
    # see what forces a replacement. migrator refuses every plan that destroys or replaces a DynamoDB
    # table before it applies anything (docs/architecture.md, invariant 6), and deletion protection
    # (deletion_protection, on by default) refuses a DeleteTable from anyone else.
    ignore_changes = [import_table]

    precondition {
      condition     = !local.provisioned || (var.read_capacity != null && var.write_capacity != null && alltrue([for g in var.global_secondary_indexes : g.read_capacity != null && g.write_capacity != null]))
      error_message = "PROVISIONED billing needs read_capacity and write_capacity on the table and on every global secondary index."
    }

    precondition {
      condition = alltrue([
        for k in concat([var.hash_key, var.range_key], flatten([for g in var.global_secondary_indexes : [g.hash_key, g.range_key]])) :
        contains([for a in var.attributes : a.name], k) if k != null
      ])
      error_message = "Every table and index key must be declared in attributes."
    }
  }
}
