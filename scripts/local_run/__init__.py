"""The whole system on this machine, built from template.yaml (`python -m local_run`).

template     reads template.yaml (CloudFormation tags, SAM globals) and resolves intrinsics
resources    creates the template's queues, tables and secrets in moto
functions    runs each function's handler in process with its own environment
gateway      the HTTP API: the template's routes as API Gateway v2 events, CORS, AWS_IAM
consumers    SQS event sources: batches, partial batch failures
site         a clinic's website with the embeddable form; the local console
system       starts and stops all of it; demo: sample deliveries and curls
lambda_runner  one handler from a built artifact in a fresh python3.13 (smoke test, bench)
runtime_python  where this machine's python3.13 is (build, packaging tests, bench)
"""
