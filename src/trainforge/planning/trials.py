"""A tuning run's training work: ``tuning.max_jobs`` trials, each a whole training job, ``tuning.parallel``
at a time in AWS and one after another locally (``tuning/local.py`` runs them in sequence).

The plan counts every trial to its end. Early stopping ends some sooner, so the plan's tuning figures are
the most a search costs, not what it usually does. A refit (``tuning.refit``) is one more round after the
last, planned as long as a trial (it trains as many passes as the chosen trial's model, on the whole
training side: at most ``1 / (1 - selection_fraction)`` a trial's steps, which the plan does not add). Parallel trials are separate training jobs: each holds
``compute.instance_count`` instances of the training quota while it runs
(https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-limits.html).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainforge.spec import JobSpec


@dataclass(frozen=True)
class Trials:
    #: training jobs in all, and how many run at once
    jobs: int = 1
    at_once: int = 1
    #: the chosen settings trained once more, after the trials (``tuning.refit``)
    refit: bool = False

    @property
    def waves(self) -> int:
        """Rounds of ``at_once`` jobs the search takes end to end, and the refit's round."""
        return math.ceil(self.jobs / self.at_once) + self.refit


def trials(spec: JobSpec, *, local: bool) -> Trials:
    if spec.tuning is None:
        return Trials()
    jobs = spec.tuning.max_jobs
    return Trials(jobs=jobs, at_once=1 if local else min(spec.tuning.parallel, jobs), refit=spec.tuning.refit)
