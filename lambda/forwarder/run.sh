#!/bin/bash
# The function's handler under Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): start
# main:app in uvicorn on $PORT, where the adapter sends each request.
# Python imports from this folder only (the asset: the forwarder, and uvicorn, botocore, Powertools
# and what they import, at the versions the tests ran) and the standard library: PYTHONPATH is the
# asset alone, replacing the runtime's ($LAMBDA_RUNTIME_DIR, which holds its own boto3 and botocore),
# and -S leaves the interpreter's site-packages off sys.path, so nothing the asset lacks is found
# elsewhere. No access log: main.py writes one line per request.
cd "$(dirname "$0")" || exit 1
# --timeout-keep-alive: ownllm.forwarder.ASGI_KEEP_ALIVE_S (the adapter reuses its connection).
PYTHONPATH=$PWD exec python -S -m uvicorn --port="$PORT" --timeout-keep-alive=86400 --no-access-log \
    --log-level=warning main:app
