"""The conformance kit: the SPEC's D clauses as checks on any dropout implementation.

The kit imports no framework; it speaks to a backend only through its
:class:`~dropout_ref.core.contract.ArrayBridge` (``get_backend(name).arrays``).

>>> from dropout_ref.conformance import check_dropout      # doctest: +SKIP
>>> report = check_dropout(my_dropout, backend="torch")    # doctest: +SKIP
>>> report.ok, report.failures                             # doctest: +SKIP
(False, ['D3', 'D6'])
"""

from dropout_ref.conformance.assertions import ConformanceError, assert_conforms
from dropout_ref.conformance.model_checks import MODEL_CLAUSES, check_model
from dropout_ref.conformance.model_probes import check_gpt
from dropout_ref.conformance.registry import CHECKS, CLAUSES
from dropout_ref.conformance.result import ClauseResult, ConformanceReport
from dropout_ref.conformance.runner import check_dropout
from dropout_ref.conformance.site_checks import SITE_CLAUSES, SiteProbe, check_sites

__all__ = [
    "CHECKS",
    "CLAUSES",
    "MODEL_CLAUSES",
    "SITE_CLAUSES",
    "ClauseResult",
    "ConformanceError",
    "ConformanceReport",
    "SiteProbe",
    "assert_conforms",
    "check_dropout",
    "check_gpt",
    "check_model",
    "check_sites",
]
