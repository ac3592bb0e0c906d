"""Choosing hyperparameters: automatic defaults from the data and the model (``auto``), the search space
(``space``), the forgetting-aware objective (``objective``), and the two engines that search it: Optuna on
this machine (``local``) and SageMaker Automatic Model Tuning (``amt``)."""
