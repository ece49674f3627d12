# The alert API (pipeline/api): one Lambda function behind an API Gateway HTTP API (payload format 2.0),
# one route per handler route, read-only access to the alerts table and the stream, and alarms.
variable "name" {
  type = string
}

variable "package" {
  description = "The Lambda package (a zip of the project's pipeline and core packages and their dependencies)."
  type        = string
}

variable "handler" {
  type = string
}

variable "runtime" {
  type = string
}

variable "routes" {
  type = list(string)
}

variable "alerts_table" {
  type = string
}

variable "alerts_table_arn" {
  type = string
}

variable "stream_name" {
  type = string
}

variable "stream_arn" {
  type = string
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# Exactly the calls pipeline/api/store.py makes: index queries and item reads, never a scan.
data "aws_iam_policy_document" "read" {
  statement {
    actions   = ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:DescribeTable"]
    resources = [var.alerts_table_arn, "${var.alerts_table_arn}/index/*"]
  }
  statement {
    actions   = ["kinesis:DescribeStreamSummary"]
    resources = [var.stream_arn]
  }
}

resource "aws_iam_role" "api" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "read" {
  name   = "${var.name}-read"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.read.json
}

resource "aws_iam_role_policy_attachment" "logs" {
  role       = aws_iam_role.api.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}

resource "aws_lambda_function" "api" {
  function_name    = var.name
  role             = aws_iam_role.api.arn
  filename         = var.package
  source_code_hash = filebase64sha256(var.package)
  handler          = var.handler
  runtime          = var.runtime
  timeout          = 10
  memory_size      = 512
  environment {
    variables = {
      COATTAIL_ALERTS_TABLE   = var.alerts_table
      COATTAIL_STREAM         = var.stream_name
      COATTAIL_PROFILE        = "aws"
      COATTAIL_ALLOW_REAL_AWS = "true"
    }
  }
}

resource "aws_apigatewayv2_api" "alerts" {
  name          = var.name
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "api" {
  api_id                 = aws_apigatewayv2_api.alerts.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.api.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "api" {
  for_each  = toset(var.routes)
  api_id    = aws_apigatewayv2_api.alerts.id
  route_key = each.value
  target    = "integrations/${aws_apigatewayv2_integration.api.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.alerts.id
  name        = "$default"
  auto_deploy = true
}

resource "aws_lambda_permission" "gateway" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.alerts.execution_arn}/*/*"
}

module "errors" {
  source     = "../alarm"
  name       = "${var.name}-errors"
  namespace  = "AWS/Lambda"
  metric     = "Errors"
  dimensions = { FunctionName = aws_lambda_function.api.function_name }
}

output "url" {
  value = aws_apigatewayv2_api.alerts.api_endpoint
}
