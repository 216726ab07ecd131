"""CDK stacks for ownllm: serving (SageMaker endpoint), API (API Gateway + Lambda), monitoring."""
