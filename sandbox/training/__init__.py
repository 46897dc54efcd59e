"""Training loops with evaluation, and K seeds as one stacked (vmapped) model.

>>> from sandbox.problems import get_problem
>>> from sandbox.training import train_seeds
>>> p = get_problem("digits-bnmlp")
>>> curves = train_seeds(p, "adamp", seeds=[0, 1, 2], hp={"lr": 1e-3})   # doctest: +SKIP
"""
from .data_order import DataOrder, epoch_permutations, eval_steps
from .hyperparams import resolve_hyperparameters
from .runs import CURVE_COLUMNS, TARGET_COLUMNS, single_step, stacked_step, total_steps, train_seeds
from .stacked import StackedModels, evaluate_model, evaluate_stacked

__all__ = ["train_seeds", "StackedModels", "resolve_hyperparameters", "DataOrder",
           "epoch_permutations", "eval_steps", "evaluate_model", "evaluate_stacked",
           "total_steps", "CURVE_COLUMNS", "TARGET_COLUMNS", "stacked_step", "single_step"]
