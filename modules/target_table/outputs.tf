output "table_name" {
  description = "Name of the target table."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the target table."
  value       = aws_dynamodb_table.this.arn
}

output "table_stream_arn" {
  description = "Latest stream ARN of the target table; null while no stream is enabled (right after an import, before the converging apply)."
  value       = aws_dynamodb_table.this.stream_arn == "" ? null : aws_dynamodb_table.this.stream_arn
}
