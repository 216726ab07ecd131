"""Local stand-ins for the AWS side of ownllm: no model, no GPU, no credentials.

`ownllm.local.runtime.RuntimeServer` speaks SageMaker runtime's InvokeEndpoint over HTTP
(boto3 reaches it through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME) and `StandIn` answers in
each engine's exact wire shape. Standard library only, so tests, the CLI and the load
bench can import it without the CDK.
"""
