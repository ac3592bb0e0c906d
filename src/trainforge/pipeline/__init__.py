"""The pipeline's steps as functions of contracts, admission (idempotent run ids) and the local runner.

No torch here: the AWS steps run in Lambda; the local runner starts training and evaluation as
subprocesses, exactly as SageMaker starts the containers.
"""
