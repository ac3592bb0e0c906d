"""boto3 adapters: the S3 ObjectStore. (The SageMaker and Step Functions calls live with the code that
makes them: registry/, serving/deployers/, pipeline/handlers.py, and the state machine itself.)"""
