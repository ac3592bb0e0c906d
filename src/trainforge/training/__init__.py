"""The training engine: tokenize and pack, one explicit loop (full, LoRA, continued pretraining, DPO),
checkpoints, devices, and the SageMaker-contract entry point ``trainforge-train``."""
