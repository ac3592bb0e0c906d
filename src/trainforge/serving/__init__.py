"""Serving: one FastAPI app speaking the SageMaker container contract and the OpenAI API, and the
deployers that put a registered model behind it (local process, SageMaker endpoint, Bedrock import)."""
