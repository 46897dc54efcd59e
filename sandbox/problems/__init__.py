"""Named training problems: model, data, loss, batch size and default budget.

>>> from sandbox.problems import get_problem, available_problems
>>> available_problems()                 # doctest: +SKIP
['digits-bnmlp', 'mnist1d-bncnn', 'teacher-student', 'teacher-student-bn', 'fmnist-bncnn']
>>> p = get_problem("digits-bnmlp")      # size 'cpu'; device='cuda' picks size 'gpu'
>>> model = p.build(seed=0); x, y = p.train
"""
from .problem import (DataMissingError, Problem, available_problems, check_problem_name,
                      get_problem, problem_summaries)

__all__ = ["Problem", "get_problem", "available_problems", "problem_summaries",
           "check_problem_name", "DataMissingError"]
