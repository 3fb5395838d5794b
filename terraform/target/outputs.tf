output "export_bucket_name" {
  description = "Name of the export bucket; null after cleanup."
  value       = try(module.export_bucket[0].bucket_name, null)
}

output "export_bucket_arn" {
  description = "ARN of the export bucket; null after cleanup."
  value       = try(module.export_bucket[0].bucket_arn, null)
}

output "writer_role_arn" {
  description = "ARN of the cross-account writer role; null after cleanup."
  value       = try(module.writer_role[0].role_arn, null)
}

output "table_name" {
  description = "Name of the target table; null before phase 3."
  value       = try(module.target_table[0].table_name, null)

  precondition {
    condition     = var.table == null || try(var.table.name, null) == var.target_table_name
    error_message = "table.name must equal target_table_name: the writer role is scoped to target_table_name."
  }
}

output "table_arn" {
  description = "ARN of the target table; null before phase 3."
  value       = try(module.target_table[0].table_arn, null)
}

output "table_stream_arn" {
  description = "Stream ARN of the target table; null when there is no table or no stream yet."
  value       = try(module.target_table[0].table_stream_arn, null)
}

output "reverse_event_source_mapping_uuid" {
  description = "UUID of the reverse replicator's event source mapping (the target table's stream); null before phase 5 and after cleanup."
  value       = try(module.reverse_replicator[0].event_source_mapping_uuid, null)

  precondition {
    condition     = var.reverse_replicator == null || var.table != null
    error_message = "reverse_replicator needs the target table (phase 3): it replays the target table's stream."
  }
}

output "reverse_replicator_function_name" {
  description = "Name of the reverse replicator Lambda function; null before phase 5 and after cleanup."
  value       = try(module.reverse_replicator[0].function_name, null)
}

output "reverse_failure_bucket_name" {
  description = "Name of the reverse replicator's on-failure destination bucket; null before phase 5 and after cleanup."
  value       = try(module.reverse_replicator[0].failure_bucket_name, null)
}

output "reverse_log_group_name" {
  description = "Name of the reverse replicator's log group; null before phase 5 and after cleanup."
  value       = try(module.reverse_replicator[0].log_group_name, null)
}

output "reverse_iterator_age_alarm_name" {
  description = "Name of the reverse replicator's iterator age alarm; null before phase 5 and after cleanup."
  value       = try(module.reverse_replicator[0].iterator_age_alarm_name, null)
}
