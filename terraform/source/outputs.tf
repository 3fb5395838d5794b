output "replicator_function_name" {
  description = "Name of the replicator Lambda function."
  value       = module.replicator.function_name
}

output "replicator_execution_role_arn" {
  description = "ARN of the replicator's execution role."
  value       = module.replicator.execution_role_arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the stream event source mapping."
  value       = module.replicator.event_source_mapping_uuid
}

output "event_source_mapping_state" {
  description = "State of the event source mapping."
  value       = module.replicator.event_source_mapping_state
}

output "failure_bucket_name" {
  description = "Name of the on-failure destination bucket."
  value       = module.replicator.failure_bucket_name
}

output "log_group_name" {
  description = "Name of the replicator's log group."
  value       = module.replicator.log_group_name
}

output "iterator_age_alarm_name" {
  description = "Name of the iterator age alarm."
  value       = module.replicator.iterator_age_alarm_name
}
