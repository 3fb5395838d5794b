output "function_name" {
  description = "Name of the replicator Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the replicator Lambda function."
  value       = aws_lambda_function.this.arn
}

output "execution_role_arn" {
  description = "ARN of the function's execution role (the writer role trusts it via aws:PrincipalArn)."
  value       = aws_iam_role.this.arn
}

output "event_source_mapping_uuid" {
  description = "UUID of the stream event source mapping."
  value       = aws_lambda_event_source_mapping.this.uuid
}

output "failure_bucket_name" {
  description = "Name of the on-failure destination bucket."
  value       = aws_s3_bucket.failures.id
}

output "failure_bucket_arn" {
  description = "ARN of the on-failure destination bucket."
  value       = aws_s3_bucket.failures.arn
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "iterator_age_alarm_name" {
  description = "Name of the iterator age alarm."
  value       = aws_cloudwatch_metric_alarm.iterator_age.alarm_name
}

output "errors_alarm_name" {
  description = "Name of the function errors alarm."
  value       = aws_cloudwatch_metric_alarm.errors.alarm_name
}
