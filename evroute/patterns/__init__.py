"""EventBridge event patterns: compile once, match events, explain, and match many at once.

The semantics follow the AWS documentation ("Amazon EventBridge event patterns" and
"Content filtering in Amazon EventBridge event patterns"); tests/patterns/ holds one
case per documented example, each citing its page.
"""

from __future__ import annotations

from evroute.patterns._compile import MISSING, FieldCheck, Pattern, PatternError, compile
from evroute.patterns._set import PatternSet

__all__ = ["MISSING", "FieldCheck", "Pattern", "PatternError", "PatternSet", "compile"]
