"""The cost model: prices what `cdk synth` wrote to cdk.out, before anything is deployed.

Pure Python, no CDK import, no boto3 on the estimate path: it runs after every synth and
in CI, so it has to be cheap to import. Layers, along Infracost's seams:
`assembly`/`template` read cdk.out, `graph` links its resources, `pricers/` turn each into
lines of cost components (`model`) with the facts each rests on (`basis`), `estimate` adds them
up, and `report`/`diff` (and the JSON form in `model`) render them; `wording` alone writes the
bill's sentences (each line's basis, the assumptions, the break-even summary, warnings). Entry points:
`synth_hook.report_after_synth` (called by the CDK app), `estimate.estimate_cdk_out`, and the
`ownllm cost ...` / `ownllm prices ...` commands in `cli`.
"""
