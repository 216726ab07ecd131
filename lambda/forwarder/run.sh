#!/bin/bash
# The function's handler under Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap): start
# main:app in uvicorn, bundled into the asset, on $PORT, where the adapter sends each request.
# /opt/python holds the Powertools layer and $LAMBDA_RUNTIME_DIR the runtime's botocore; the
# app's own folder is the working directory. No access log: main.py writes one line per request.
PYTHONPATH=$PYTHONPATH:/opt/python:$LAMBDA_RUNTIME_DIR \
    exec python -m uvicorn --port="$PORT" --no-access-log --log-level=warning main:app
