"""Load bench for an OpenAI-compatible API (the local stack or the deployed API Gateway).

`runner` drives the load, `report` summarises and saves it, `plot` draws it, `calibrate`
feeds the measured speeds back into cdk.json for the cost estimate. No CDK imports.
"""
