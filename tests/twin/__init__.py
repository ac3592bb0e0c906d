"""The SageMaker twin: test support that runs the AWS path of the pipeline inside moto.

Every request to SageMaker, SageMaker Runtime, Bedrock, Step Functions, EventBridge Scheduler and SNS is held
to ``tests.twin.rules`` (AWS's documented constraints; a violation is answered with AWS's ValidationException
and kept in ``SageMakerTwin.violations``), and what SageMaker would run, runs: training and processing
containers, a tuning job's trials, endpoint servers and Bedrock model imports, from virtualenvs built from
this repository's Dockerfiles. Public API::

    images = ImageRegistry(VenvBuilder(cache, session_dir))
    images.register(uri, Path("training_image/Dockerfile"))        # or images.register_cdk_assets(cdk_out, ...)
    with SageMakerTwin(images, workdir) as twin:                     # inside mock_aws(...)
        ...
    assert twin.violations == []

Pytest fixtures (``tests.twin.fixtures``): ``twin_images`` (session), ``twin_aws``, ``sagemaker_twin``.
"""

from tests.twin.images import ImageRegistry
from tests.twin.twin import SageMakerTwin, Violation
from tests.twin.venvs import VenvBuilder

__all__ = ("ImageRegistry", "SageMakerTwin", "VenvBuilder", "Violation")
