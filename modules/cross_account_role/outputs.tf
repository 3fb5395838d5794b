output "role_arn" {
  description = "ARN of the writer role."
  value       = aws_iam_role.this.arn

  # The role is useless before its policy is attached.
  depends_on = [aws_iam_role_policy.this]
}

output "role_name" {
  description = "Name of the writer role."
  value       = aws_iam_role.this.name
}
