"""The roles: what each may do, what the preventive denies refuse, and the environment the functions read."""

from __future__ import annotations

import pytest

from infra.constructs.guardrails import JOB_ACTIONS
from infra.stacks.pipeline import FUNCTIONS, RUNS_ONLY
from tests.infra.policies import actions, allowed, by_sid, denied_by, resources, role_statements, text
from trainforge.custom.frameworks import framework_placement, framework_repositories
from trainforge.instances import INSTANCE_TYPES, instance_type

#: a request with every control the state machine's requests carry, on an instance type
ISOLATED = {
    "sagemaker:NetworkIsolation": "true",
    "sagemaker:VpcSubnets": ["subnet-1"],
    "sagemaker:InterContainerTrafficEncryption": "true",
}
KEY = {"sagemaker:VolumeKmsKey": "arn:aws:kms:us-east-1:123456789012:key/k"}
#: the environment every pipeline function gets (pydantic-settings TRAINFORGE_* in trainforge.settings)
ENVIRONMENT = {
    "TRAINFORGE_DATA_URI",
    "TRAINFORGE_ARTIFACTS_URI",
    "TRAINFORGE_TABLE_NAME",
    "TRAINFORGE_IMAGE_URI",
    "TRAINFORGE_NEURON_IMAGE_URI",
    "TRAINFORGE_SAGEMAKER_ROLE_ARN",
    "TRAINFORGE_BEDROCK_ROLE_ARN",
    "TRAINFORGE_KMS_KEY_ARN",
    "TRAINFORGE_SUBNET_IDS",
    "TRAINFORGE_SECURITY_GROUP_IDS",
    "TRAINFORGE_ALARM_PREFIX",
    "TRAINFORGE_SCHEDULE_GROUP",
    "TRAINFORGE_SCHEDULER_ROLE_ARN",
    "TRAINFORGE_RETRAIN_FUNCTION_ARN",
}


def job(instance_type: str, **keys: object) -> dict[str, object]:
    return {**ISOLATED, "sagemaker:InstanceTypes": [instance_type], **keys}


@pytest.fixture(scope="module")
def machine(synthesized) -> list[dict]:
    return role_statements(synthesized, "pipeline", "TrainingPipelineRole")


def function_statements(synthesized, name: str) -> list[dict]:
    return role_statements(synthesized, "pipeline", name.title().replace("_", "") + "FunctionServiceRole")


def functions(synthesized) -> dict[str, dict]:
    found = resources(synthesized, "pipeline", "AWS::Lambda::Function")
    return {
        name: next(f["Properties"] for logical_id, f in found.items() if logical_id.startswith(prefix + "Function"))
        for name in FUNCTIONS
        for prefix in [name.title().replace("_", "")]
    }


# --- defect 1: volume keys only where SageMaker accepts them -------------------------------------------------


@pytest.mark.parametrize("action", JOB_ACTIONS)
@pytest.mark.parametrize("instance_type", ["ml.g5.2xlarge", "ml.p5.48xlarge", "ml.trn1.32xlarge", "ml.g6e.xlarge"])
def test_jobs_on_nvme_types_run_without_a_volume_key(machine, action, instance_type):
    # Given a job on a type with local NVMe storage, which SageMaker refuses a VolumeKmsKeyId for
    assert INSTANCE_TYPES[instance_type].local_nvme
    # Then the denies let it through without one
    assert denied_by(machine, action, job(instance_type)) == []


@pytest.mark.parametrize("action", JOB_ACTIONS)
def test_jobs_on_ebs_types_need_a_volume_key(machine, action):
    assert denied_by(machine, action, job("ml.m5.xlarge")) == ["DenyWithoutVolumeKmsKey"]
    assert denied_by(machine, action, job("ml.m5.xlarge", **KEY)) == []


@pytest.mark.parametrize("action", JOB_ACTIONS)
def test_each_missing_control_refuses_every_kind_of_job(machine, action):
    without = {key: value for key, value in job("ml.g5.2xlarge").items() if key != "sagemaker:VpcSubnets"}
    assert denied_by(machine, action, without) == ["DenyOutsideVpc"]
    assert denied_by(machine, action, job("ml.g5.2xlarge", **{"sagemaker:NetworkIsolation": "false"})) == [
        "DenyWithoutNetworkIsolation"
    ]
    assert "DenyWithoutInterContainerEncryption" in denied_by(
        machine, action, job("ml.g5.2xlarge", **{"sagemaker:InterContainerTrafficEncryption": "false"})
    )
    assert denied_by(machine, action, job("ml.c5.xlarge", **KEY)) == ["DenyOtherInstanceTypes"]


def test_callers_that_make_sagemaker_encrypt_volumes_may_create_grants_for_aws_resources_only(synthesized, machine):
    for statements in (machine, function_statements(synthesized, "deploy_model")):
        (grant,) = allowed(statements, "kms:CreateGrant")
        assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
        assert "Key" in text(grant["Resource"])
        assert allowed(statements, "kms:DescribeKey")


def test_deploy_is_held_to_isolated_models_and_encrypted_endpoint_volumes(synthesized):
    deploy = function_statements(synthesized, "deploy_model")
    model = {"sagemaker:NetworkIsolation": "true", "sagemaker:VpcSubnets": ["subnet-1"]}
    assert denied_by(deploy, "sagemaker:CreateModel", model) == []
    assert denied_by(deploy, "sagemaker:CreateModel", {"sagemaker:VpcSubnets": ["subnet-1"]}) == [
        "DenyModelWithoutNetworkIsolationKey"
    ]
    assert denied_by(deploy, "sagemaker:CreateModel", {"sagemaker:NetworkIsolation": "true"}) == ["DenyModelOutsideVpc"]
    config = "sagemaker:CreateEndpointConfig"
    assert denied_by(deploy, config, {"sagemaker:InstanceTypes": ["ml.g5.xlarge"]}) == []
    assert denied_by(deploy, config, {"sagemaker:InstanceTypes": ["ml.m5.xlarge"]}) == [
        "DenyEndpointConfigWithoutVolumeKmsKey"
    ]
    assert denied_by(deploy, config, {"sagemaker:InstanceTypes": ["ml.m5.xlarge"], **KEY}) == []
    assert denied_by(deploy, config, {"sagemaker:InstanceTypes": ["ml.c5.xlarge"], **KEY}) == [
        "DenyEndpointConfigOtherInstanceTypes"
    ]


# --- the state machine's role: the .sync integrations, polling, passing the role -----------------------------


def test_state_machine_role_has_what_aws_documents_for_sync_jobs(machine):
    jobs = by_sid(machine)["RunJobs"]
    for action in (
        *JOB_ACTIONS,
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:DescribeProcessingJob",
        "sagemaker:StopProcessingJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:StopHyperParameterTuningJob",
        "sagemaker:AddTags",
    ):
        assert action in actions(jobs), action
    assert allowed(machine, "sagemaker:ListTags")
    (rules,) = allowed(machine, "events:PutRule")
    assert set(actions(rules)) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert {r.rsplit("/", 1)[1] for r in rules["Resource"]} == {
        "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
        "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
        "StepFunctionsGetEventsForSageMakerTuningJobsRule",
    }
    assert "endpoint/*" in text(allowed(machine, "sagemaker:DescribeEndpoint"))
    assert "model-import-job/*" in text(allowed(machine, "bedrock:GetModelImportJob"))
    (pass_role,) = allowed(machine, "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert "SageMakerRole" in text(pass_role["Resource"])


# --- defect 7: Bedrock Custom Model Import --------------------------------------------------------------------


def test_bedrock_import_role_is_trusted_by_this_accounts_import_jobs_and_reads_runs(synthesized):
    roles = resources(synthesized, "training", "AWS::IAM::Role")
    (role,) = [r for logical_id, r in roles.items() if logical_id.startswith("BedrockImportRole")]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert text(trust["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(
        ':bedrock:us-east-1:123456789012:model-import-job/*"'
    )
    statements = role_statements(synthesized, "training", "BedrockImportRole")
    assert "/runs/*" in text(allowed(statements, "s3:GetObject*"))
    assert allowed(statements, "kms:Decrypt") and not allowed(statements, "s3:PutObject")
    # the import job runs in the VPC: its interfaces are Bedrock-managed, in the stack's subnets only
    interfaces = {s["Sid"]: s for s in allowed(statements, "ec2:CreateNetworkInterface")}
    assert interfaces["CreateManagedInterfaces"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/BedrockManaged": "true"}
    }
    assert "JobsSecurityGroup" in text(interfaces["InTheJobsSubnetsAndGroup"]["Resource"])
    (manage,) = allowed(statements, "ec2:DeleteNetworkInterface")
    assert manage["Condition"]["StringEquals"] == {"ec2:ResourceTag/BedrockManaged": "true"}
    assert manage["Condition"]["ArnEquals"]["ec2:Subnet"]


def test_deploy_may_import_into_bedrock_and_pass_only_the_import_role_to_it(synthesized):
    deploy = function_statements(synthesized, "deploy_model")
    for action in ("bedrock:CreateModelImportJob", "bedrock:GetModelImportJob", "bedrock:GetImportedModel"):
        assert allowed(deploy, action), action
    passes = {s["Condition"]["StringEquals"]["iam:PassedToService"]: s for s in allowed(deploy, "iam:PassRole")}
    assert set(passes) == {"sagemaker.amazonaws.com", "bedrock.amazonaws.com"}
    assert "BedrockImportRole" in text(passes["bedrock.amazonaws.com"]["Resource"])
    assert "SageMakerRole" in text(passes["sagemaker.amazonaws.com"]["Resource"])
    for action in ("sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpoint", "sagemaker:AddTags"):
        assert allowed(deploy, action), action


# --- defect 15: the run folders are an audit trail -----------------------------------------------------------


def test_nothing_may_delete_under_runs(synthesized):
    roles = [
        *(function_statements(synthesized, name) for name in FUNCTIONS),
        role_statements(synthesized, "training", "SageMakerRole"),
        role_statements(synthesized, "training", "BedrockImportRole"),
    ]
    for statements in roles:
        assert not [
            s for s in statements if s["Effect"] == "Allow" and any(a.startswith("s3:Delete") for a in actions(s))
        ]
    for name in FUNCTIONS:
        statements = function_statements(synthesized, name)
        assert "/runs/*" in text(allowed(statements, "s3:PutObject")), name
        if name in RUNS_ONLY:  # S3 under runs/ only (prepare_evaluation reads the training job's outcome)
            assert all(
                "/runs/*" in text(s["Resource"]) for s in statements if any(a.startswith("s3:") for a in actions(s))
            )


# --- the other functions' permissions -------------------------------------------------------------------------


def test_record_failure_stops_jobs_and_finds_their_log_streams(synthesized):
    statements = function_statements(synthesized, "record_failure")
    for action in (
        "StopTrainingJob",
        "StopProcessingJob",
        "DescribeTrainingJob",
        "DescribeProcessingJob",
        "ListTrainingJobs",
        "ListProcessingJobs",
        "ListHyperParameterTuningJobs",
        "ListTrainingJobsForHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
    ):
        assert allowed(statements, f"sagemaker:{action}"), action
    (stop,) = allowed(statements, "sagemaker:StopHyperParameterTuningJob")
    assert any(":hyper-parameter-tuning-job/*" in text(r) for r in stop["Resource"])
    (streams,) = allowed(statements, "logs:DescribeLogStreams")
    assert {r.split(":log-group:")[1] for r in streams["Resource"]} == {
        "/aws/sagemaker/TrainingJobs:*",
        "/aws/sagemaker/ProcessingJobs:*",
    }


def test_admit_run_debounces_with_schedules_in_the_stacks_group(synthesized):
    statements = function_statements(synthesized, "admit_run")
    (schedules,) = allowed(statements, "scheduler:CreateSchedule")
    assert set(actions(schedules)) >= {"scheduler:UpdateSchedule", "scheduler:GetSchedule", "scheduler:DeleteSchedule"}
    assert "RetrainSchedules" in text(schedules["Resource"]) and text(schedules["Resource"]).endswith('/*"]]}')
    (pass_role,) = allowed(statements, "iam:PassRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    assert "SchedulerRole" in text(pass_role["Resource"])
    scheduler = resources(synthesized, "pipeline", "AWS::IAM::Role")
    (role,) = [r for logical_id, r in scheduler.items() if logical_id.startswith("SchedulerRole")]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert "RetrainFunction" in text(
        allowed(role_statements(synthesized, "pipeline", "SchedulerRole"), "lambda:InvokeFunction")
    )


def test_every_function_gets_the_contracts_environment(synthesized):
    found = functions(synthesized)
    assert set(found) == set(FUNCTIONS)
    for name, props in found.items():
        variables = props["Environment"]["Variables"]
        assert set(variables) >= ENVIRONMENT, (name, ENVIRONMENT - set(variables))
        assert ("TRAINFORGE_STATE_MACHINE_ARN" in variables) == (name in ("admit_run", "retrain")), name
    variables = found["plan_validation"]["Environment"]["Variables"]
    assert "BedrockImportRole" in text(variables["TRAINFORGE_BEDROCK_ROLE_ARN"])
    assert "SchedulerRole" in text(variables["TRAINFORGE_SCHEDULER_ROLE_ARN"])
    assert variables["TRAINFORGE_SCHEDULE_GROUP"] == "trainforge-retrain"
    assert variables["TRAINFORGE_ALARM_PREFIX"] == "trainforge"
    # the retrain function is named, so its ARN needs no reference to it (no dependency cycle)
    assert found["retrain"]["FunctionName"] == "trainforge-retrain"
    assert variables["TRAINFORGE_RETRAIN_FUNCTION_ARN"].endswith(
        ":lambda:us-east-1:123456789012:function:trainforge-retrain"
    )


@pytest.mark.parametrize("name", ["prepare_evaluation", "prepare_refit"])
def test_the_prepare_steps_read_the_training_and_tuning_jobs(synthesized, name):
    """PrepareEvaluation: the model's location; both: a tuning job's best trial and its trials; PrepareRefit
    also that trial's settings and metrics (all DescribeTrainingJob)."""
    statements = function_statements(synthesized, name)
    for action in (
        "sagemaker:DescribeTrainingJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
    ):
        (statement,) = allowed(statements, action)
        resources = [text(resource) for resource in statement["Resource"]]
        assert any(r.endswith(':training-job/*"') for r in resources)
        assert any(r.endswith(':hyper-parameter-tuning-job/*"') for r in resources)
    assert not [
        a
        for s in statements
        for a in actions(s)
        if a.startswith("sagemaker:") and "Describe" not in a and "List" not in a
    ]


def test_the_plan_reads_the_applied_quotas_and_the_defaults_the_applied_list_leaves_out(synthesized):
    statements = function_statements(synthesized, "plan_run")
    for action in ("servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"):
        (statement,) = allowed(statements, action)
        assert statement["Resource"] == "*"  # neither List action has a resource type
    assert not [s for s in statements if any(a.startswith("servicequotas:") and "List" not in a for a in actions(s))]


def test_canary_guardrails_read_the_pipelines_rollback_alarms_as_the_endpoints_role(synthesized):
    """SageMaker reads a canary's auto-rollback alarms as the endpoint's execution role; the pipeline's
    check_parity creates them, both scoped to the stack's alarm names."""
    statements = role_statements(synthesized, "training", "SageMakerRole")
    (describe,) = allowed(statements, "cloudwatch:DescribeAlarms")
    (create,) = allowed(function_statements(synthesized, "check_parity"), "cloudwatch:PutMetricAlarm")
    for statement in (describe, create):
        assert text(statement["Resource"]).endswith(':cloudwatch:us-east-1:123456789012:alarm:trainforge-*"')


def test_the_sagemaker_role_may_pull_every_aws_container_a_job_names_and_no_other(synthesized):
    """SageMaker pulls a job's image as the job's role, so each AWS container the pipeline may name (LMI for
    endpoints, the framework containers of custom jobs) needs a pull grant; nothing broader."""
    statements = role_statements(synthesized, "training", "SageMakerRole")
    (pull,) = [s for s in allowed(statements, "ecr:BatchGetImage") if s.get("Sid") == "PullAwsContainers"]
    granted = {text(resource).rsplit("repository/", 1)[1].rstrip('"') for resource in pull["Resource"]}
    assert granted == {"djl-inference", *framework_repositories()}
    uri = framework_placement("tensorflow", instance_type("ml.g5.xlarge"), "us-east-1").image
    assert uri.split("/", 1)[1].split(":")[0] in granted


def test_the_sagemaker_role_pulls_ones_own_custom_containers_only_from_the_stacks_custom_repositories(synthesized):
    """custom.image is pulled as the job's role: from this account's and region's PREFIX-custom/ repositories,
    the one place Prepare admits (trainforge.custom.own_image), and nowhere else in the account."""
    statements = role_statements(synthesized, "training", "SageMakerRole")
    (pull,) = [s for s in allowed(statements, "ecr:BatchGetImage") if s.get("Sid") == "PullOwnCustomContainers"]
    assert sorted(actions(pull)) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    (resource,) = pull["Resource"] if isinstance(pull["Resource"], list) else [pull["Resource"]]
    assert text(resource).endswith(':ecr:us-east-1:123456789012:repository/trainforge-custom/*"')
    assert allowed(statements, "ecr:GetAuthorizationToken")  # a registry login, which ECR grants only on "*"
