"""The SymPy verifier: answer extraction, equivalence with hard deadlines, the 8-signal reward and the scoring pool."""
from verifier_pool.equivalence import POLICIES, VERIFIER_VERSION, Verdict, answers_match, compare
from verifier_pool.extract import extract_answer

__all__ = ["POLICIES", "VERIFIER_VERSION", "Verdict", "answers_match", "compare", "extract_answer"]
