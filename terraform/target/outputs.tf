output "export_bucket_name" {
  description = "Name of the export bucket."
  value       = module.export_bucket.bucket_name
}

output "export_bucket_arn" {
  description = "ARN of the export bucket."
  value       = module.export_bucket.bucket_arn
}

output "writer_role_arn" {
  description = "ARN of the cross-account writer role."
  value       = module.writer_role.role_arn
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
