output "replicator_function_name" {
  description = "Name of the replicator Lambda function."
  value       = try(module.replicator[0].function_name, null)
}

output "replicator_execution_role_arn" {
  description = "ARN of the replicator's execution role."
  value       = try(module.replicator[0].execution_role_arn, null)
}

output "event_source_mapping_uuid" {
  description = "UUID of the stream event source mapping."
  value       = try(module.replicator[0].event_source_mapping_uuid, null)
}

output "failure_bucket_name" {
  description = "Name of the on-failure destination bucket."
  value       = try(module.replicator[0].failure_bucket_name, null)
}

output "log_group_name" {
  description = "Name of the replicator's log group."
  value       = try(module.replicator[0].log_group_name, null)
}

output "iterator_age_alarm_name" {
  description = "Name of the iterator age alarm."
  value       = try(module.replicator[0].iterator_age_alarm_name, null)
}

output "reverse_writer_role_arn" {
  description = "ARN of the reverse writer role (the way back writes the source table through it); null before phase 5 and after cleanup."
  value       = try(module.reverse_writer_role[0].role_arn, null)
}
