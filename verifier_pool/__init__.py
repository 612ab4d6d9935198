"""The SymPy verifier: answer extraction, equivalence with hard deadlines, the 8-signal reward and the scoring pool."""
from verifier_pool.equivalence import (POLICIES, VERIFIER_VERSION, Judgement, answer_classes, answers_match,
                                       compare)
from verifier_pool.extract import extract_answer
from verifier_pool.verdict import Verdict

__all__ = ["POLICIES", "VERIFIER_VERSION", "Judgement", "Verdict", "answer_classes", "answers_match", "compare", "extract_answer"]
