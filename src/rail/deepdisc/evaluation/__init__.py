"""Evaluating photo-z against truth, and the report (``deepdisc evaluate``, ``deepdisc report``).

``metrics`` (the paper's point metrics), ``coverage`` (PIT, credible-interval coverage), ``rail_metrics``
(RAIL's evaluators), ``som`` (the spectroscopically-represented flag), ``evaluate`` (all of them on one
file), ``io`` and ``directory`` (inputs and the evaluation folder), ``plots`` and ``report``.
"""
