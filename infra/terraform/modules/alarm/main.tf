# One CloudWatch alarm: any non-zero sum of the metric in five one-minute periods (errors, throttles).
variable "name" {
  type = string
}

variable "namespace" {
  type = string
}

variable "metric" {
  type = string
}

variable "dimensions" {
  type = map(string)
}

resource "aws_cloudwatch_metric_alarm" "alarm" {
  alarm_name          = var.name
  namespace           = var.namespace
  metric_name         = var.metric
  dimensions          = var.dimensions
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
}
