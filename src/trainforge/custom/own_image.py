"""Where a custom job's container of one's own (``custom.image``) may come from.

SageMaker pulls a job's image as the job's role
(https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html#sagemaker-CreateTrainingJob-request-RoleArn), and the
stack grants that role one convention, least privilege: ECR repositories named ``PREFIX-custom/...`` in the
stack's own account and region (``infra/stacks/training.py`` grants :func:`own_repositories`). Prepare refuses
any other image before compute, naming the rule, instead of a job that fails at image pull.
"""

from __future__ import annotations

import re

from trainforge.errors import SpecInvalid

#: ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPOSITORY[:TAG|@DIGEST]
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[^:@\s]+)([:@][^\s]+)?$"
)


def own_repositories(prefix: str) -> str:
    """The repository names the role may pull from (an IAM resource name; ``*`` spans ``/``)."""
    return f"{prefix}-custom/*"


def check_own_image(image: str, *, account: str, region: str, prefix: str) -> None:
    """Refuse ``image`` unless it is in ``account``'s registry in ``region``, in a ``PREFIX-custom/`` repository
    (an installation that names no account or prefix admits none)."""
    matched = _ECR_IMAGE.match(image)
    allowed = own_repositories(prefix).removesuffix("*")
    if (
        account
        and prefix
        and matched
        and (matched["account"], matched["region"]) == (account, region)
        and matched["repository"].startswith(allowed)
    ):
        return
    raise SpecInvalid(
        f"custom.image {image}: the SageMaker role may pull only from this stack's account and region, from ECR "
        f"repositories named {own_repositories(prefix or 'PREFIX')} (docs/training.md, Your own code): push it "
        f"as {account or 'ACCOUNT'}.dkr.ecr.{region}.amazonaws.com/{prefix or 'PREFIX'}-custom/NAME:TAG"
    )
