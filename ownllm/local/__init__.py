"""The deployed request path on 127.0.0.1, without AWS: no model, no GPU, no credentials.

- `stack.LocalStack` (what `ownllm local` runs) ties the parts together;
- `gateway.Gateway` plays API Gateway (an ASGI app on `server.LocalServer`, uvicorn): API key,
  10 MB, the integration timeouts, every route relayed in STREAM mode as Lambda Web Adapter does;
- `lambda_pool.LambdaPool` runs the real `lambda/forwarder` `main:app` under uvicorn in Lambda-like
  execution environments (forked processes, one request at a time each);
- `runtime.RuntimeServer` speaks SageMaker runtime's InvokeEndpoint (boto3 reaches it through
  AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME), answered by `standin.StandIn` (each engine's exact wire
  shape; a stand-in, not a model) or `upstream.OpenAIUpstream` (a server you run).
"""
