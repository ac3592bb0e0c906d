"""boto3 adapters: the S3 store, SageMaker job launchers and Step Functions executions."""
