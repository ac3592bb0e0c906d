"""`IMAGE serve` listens where SageMaker says: $SAGEMAKER_BIND_TO_PORT, else 8080."""

from trainforge.serving.server import SAGEMAKER_PORT, sagemaker_port


def test_default_port_is_8080(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT", raising=False)
    assert sagemaker_port() == SAGEMAKER_PORT == 8080


def test_bind_to_port_is_honoured(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9123")
    assert sagemaker_port() == 9123
