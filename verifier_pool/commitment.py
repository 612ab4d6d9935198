"""Is a final answer committed? One answer, stated plainly, or no credit.

A final statement that hedges earns nothing, under both answer policies: it names rival values ("3 or 5",
`\\boxed{3}\\boxed{5}`), negates its value ("not 5", "it isn't 5"), qualifies it ("probably 5", "about 5", "5 or so",
"at least 5", "between 4 and 6"), makes it conditional ("5 if x > 0, otherwise 6", "5 unless I made an error") or asks
("5?"). Under RL any credited hedge becomes the policy: a model that may name two candidates, or wrap its number in
"not", collects the reward of the right one. The lenient policy differs from strict in what it accepts as equal, never
in what it accepts as stated.

Only the final statement counts (the sentence holding the answer, found by `extract.extract_final`): words in the
reasoning before it are work, not hedges. The statement comes in three parts:
- `stated`, the answer as written: every word counts.
- `lead`, the sentence before the answer: the pure hedges ("maybe", "probably") count anywhere; the other words only in
  its last clause, after the last copula, connective or mark ("is", "we get", "then", ",", ":"), words inside closed
  formulas left out ("the number of integers not divisible by 3 or 5 is 47" restates the question). The name given to
  the answer (`x =`) and a computation ending in it (`x = 5 + 6 =`) belong to the answer, so "not $x = 11$" negates.
  Right before the answer, "could be" hedges and "cannot be" negates. A condition earlier in the sentence makes the
  answer conditional ("If x > 0, then 5"), unless it is a premise the answer is derived from ("If $N^2 = 121$, then
  $N = \\boxed{11}$"). "X, or <answer>" restates X when X is prose, an equation or the same number
  ("$AB = \\frac54$, or $\\boxed{1.25}$"); another value is a rival ("$6$, or $\\boxed{5}$").
- `tail`, the rest of the sentence: every word counts when it opens, after any units or numbers, with a word of
  `normalize.COMMITMENT_WORDS` ("5 unless ...", "5 cm or 6 cm", "5 at most", "5, I think"); a tail that opens with a
  label ("66 integers less than 100 that are not ...") describes the answer, and only the pure hedges count there.

Where the gold holds several values (a set, a list, a tuple), values joined by "or" / "either" inside the stated
answer are its members: "x = 2 or x = 3" for the roots {2, 3} is an answer, and so are adjacent boxes; a rival before
or after the answer is not. Words of the gold do not count in the stated answer (`\\text{not possible}`). Words are
looked up in sets; each part is capped at `MAX_PART_CHARS`, and every regex here is bounded or anchored.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from fractions import Fraction
from itertools import chain

from verifier_pool.extract import FinalStatement, boxed_spans, math_spans
from verifier_pool.normalize import COMMITMENT_WORDS, OR_QUALIFIERS, UNIT_WORDS, normalize
from verifier_pool.parse import plain_number

MAX_PART_CHARS = 400
_COMMAND = re.compile(r"\\[A-Za-z]{1,30}")
# Words (not inside identifiers), numbers, the marks `=` `:` `?`, and `~` ("~5": about 5).
_TOKEN = re.compile(r"(?<![A-Za-z_])[A-Za-z]+(?:['’][A-Za-z]{1,2})?(?![A-Za-z_])|(?<![\d.])\d{1,30}|[=:?]"
                    r"|(?<![\w\\])~")
# A relation whose left side is prose or nothing ("≈ 5", "The answer is \approx 5", "answer \neq 5"): a hedge or a
# negation; `x \approx 5` is an assignment.
_UNEQUAL = ("\\neq", "\\ne", "≠")
_RELATION = r"(\\approx|\\sim|\\simeq|\\neq|\\ne|≈|∼|≠)(?![A-Za-z])"
_BARE_RELATION = re.compile(rf"(?:^|(?<![A-Za-z\\])[A-Za-z]{{2,}})[\s${{(:>]{{0,20}}{_RELATION}")
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\s?\{")
# The name given to the answer right before it: `x =`, `f(3) =`, `DE =`, `x_1 =`, `\angle A =`, `x \in`.
_ANSWER_NAME = re.compile(r"(?<![\w)}\\])(?:[A-Za-z]{1,3}(?:_\{?\w{1,8}\}?)?(?:\([^()$]{0,20}\))?"
                          r"|\\(?:angle|overline|overrightarrow|vec|hat|bar|alpha|beta|gamma|delta|theta|phi|lambda"
                          r"|mu|sigma|omega)(?![A-Za-z])(?:\{[^{}$]{0,20}\})?(?: ?[A-Za-z]{1,3})?)"
                          r"\s{0,3}(?:=|\\in(?![A-Za-z]))[\s${(]{0,20}$")
_EQUATION = re.compile(r"[=<>]|\\(?:Rightarrow|le|ge|leq|geq|in|cup|cap)(?![A-Za-z])")
_CLAUSE_MARK = re.compile(r"[,;:]|\\(?:Rightarrow|implies)(?![A-Za-z])")
_DERIVATION = re.compile(r"=|\\(?:equiv|Rightarrow|implies)(?![A-Za-z])")
_CONDITION = re.compile(r"(?<![A-Za-z])(?<!only )(?:if(?! and only if)|unless|provided|assuming|suppose|supposing)"
                        r"(?![A-Za-z])", re.I)
_PREMISE_MATH = re.compile(r"[$=<>\d\\]")
_CLAUSE_WORDS = frozenset("is are was were be equals equal get gets got obtain obtained gives give yields yield "
                          "becomes makes have has had then so thus hence therefore".split())
_OR = re.compile(r"(?<![A-Za-z\\])or(?![A-Za-z])", re.I)
_TRAILING_NUMBER = re.compile(r"-?\d[\d.,/]{0,30}$")
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_PROSE_END = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}[.!]?$")
_MODALS = frozenset("could might may".split())
_DEGREES = frozenset("most least more less equally".split())  # "most" itself qualifies where it counts
_SURE = frozenset("sure certain confident".split())
_TAIL_SKIP = frozenset("is are was would be at # =".split())  # "5 is wrong", "5 at most", "5 = 5.0 unless"
_OPINIONS = frozenset("think believe guess suppose".split())  # "5, I think": a trailing hedge
_ASSIGNMENT = re.compile(r"\s{0,3}[A-Za-z](?:_\{?\w{1,3}\}?)?\s{0,3}=([^=]{1,60})")
_ISSUES = {"hedge": "hedged", "modal": "hedged", "opinion": "hedged", "qualifier": "qualified", "negation": "negated",
           "condition": "conditional", "disjunction": "names rival values"}


def _tokens(text: str) -> list[str]:
    """Lower-case words (`isn't` whole), `#` for a number, the marks `=`, `:`, `?`, `~`; LaTeX command names and the
    parts of an identifier (`runs_never_fail`) are not words."""
    tokens = [m.group().lower().replace("’", "'") for m in _TOKEN.finditer(_COMMAND.sub(" ", text))]
    return ["#" if token[0].isdigit() else token for token in tokens]


def _capped(text: str) -> str:
    """The first and last `MAX_PART_CHARS` of a long answer."""
    return text if len(text) <= 2 * MAX_PART_CHARS else f"{text[:MAX_PART_CHARS]} {text[-MAX_PART_CHARS:]}"


def _blank(text: str, spans: Iterable[tuple[int, int, str]], commands: bool = True) -> str:
    """`text` with the given spans (and LaTeX command names, unless `commands` is False) replaced by spaces (same
    length)."""
    chars = list(_COMMAND.sub(lambda m: " " * len(m.group()), text) if commands else text)
    for start, end, _ in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _formulas(text: str) -> list[tuple[int, int, str]]:
    """The math spans of `text` that hold a formula, not prose between two dollar amounts ("cost $1440, then the
    price is $")."""
    return [span for span in math_spans(text) if len(_PROSE_WORD.findall(span[2], 0, 200)) < 3]


def _last_clause(lead: str) -> tuple[str, int, bool]:
    """(the lead without the answer's name, where its last clause begins, whether the answer is derived there): the
    clause begins after the last copula, connective or mark outside closed formulas (a chain `x = 5 + 6 =` belongs to
    the answer); the answer is derived when it is given a name (`N = `) or ends a computation (`2 + 6 = `)."""
    name = _ANSWER_NAME.search(lead, max(0, len(lead) - 80))
    lead = lead[: name.start()] if name else lead
    masked = _blank(lead, _formulas(lead), commands=False)
    cut = max((m.end() for m in _CLAUSE_MARK.finditer(masked)), default=0)
    for m in _TOKEN.finditer(_blank(masked, ())):
        word = m.group().lower().replace("’", "'")
        if word in _CLAUSE_WORDS or word.endswith("'s"):
            cut = max(cut, m.end())
    return lead, cut, name is not None or _DERIVATION.search(masked, cut) is not None


def _same_number(a: str, b: str) -> bool:
    """Both plain numbers (after `normalize`) of the same value (`\\frac54` and `1.25`)."""
    x, y = plain_number(normalize(a)), plain_number(normalize(b))
    return x is not None and y is not None and Fraction(x) == Fraction(y)


def _restates(before: str, stated: str, derived: bool) -> bool:
    """Whether "X, or <answer>" restates X rather than naming a rival: X (the end of `before`) is prose, an equation or
    inequality (`$x < 2$ or $x > 3$, or $(-\\infty, 2) \\cup (3, \\infty)$`), or the same number as the answer;
    not when X gives the unknown another value (`$x = 6$ or $x = 5$`). `derived`: the answer ends a computation after
    the "or" ("$\\sqrt{DF^2 - EF^2}$, or $\\sqrt{100 - 49} = 7$"), which restates any X but another number."""
    text = before.rstrip().rstrip(",").rstrip()
    spans, boxes = math_spans(text), boxed_spans(text)
    if spans and spans[-1][1] == len(text):
        value = spans[-1][2]
    elif boxes and boxes[-1][1] == len(text):
        value = boxes[-1][2]
    elif number := _TRAILING_NUMBER.search(text[-40:]):
        value = number.group()
    else:
        return bool(_PROSE_END.search(text[-40:]))
    answer = boxed_spans(stated)
    answer_value = answer[-1][2] if answer else stated.strip("$ ")
    assignment = _ASSIGNMENT.fullmatch(value)
    if assignment:  # "$x = 6$ or $x = 5$": two values of one unknown
        return _same_number(assignment.group(1), answer_value.split("=")[-1])
    if derived and plain_number(normalize(value)) is None:
        return True
    return bool(_EQUATION.search(value)) or _same_number(value, answer_value)


def _condition_issue(lead: str, cut: int, derived: bool) -> str | None:
    """A condition before the last clause ("If x > 0, then 5", "Unless I erred, the answer is 5"), unless it is a
    premise: a formula the answer is derived from ("If $N^2 = 121$, then $N = 11$")."""
    for m in _CONDITION.finditer(lead, 0, cut):
        end = lead.find(",", m.end(), cut)
        if not (derived and _PREMISE_MATH.search(lead, m.end(), cut if end < 0 else end)):
            return f"conditional ({m.group().lower()!r})"
    return None


def _lead_issue(lead: str, cut: int, derived: bool, stated: str) -> str | None:
    """What the lead (see `_last_clause`) does to the answer: a rival before "or" (not a restatement, nor "or
    $\\sqrt{100 - 49} = 7$"), a bare `≈` / `≠`, "could be", "cannot be", a condition."""
    clause = lead[cut:]
    masked = _blank(clause, _formulas(clause), commands=False)
    derivation = max((m.start() for m in _DERIVATION.finditer(masked)), default=-1)
    for m in _OR.finditer(masked):
        if not _restates(lead[max(0, cut + m.start() - 200) : cut + m.start()], stated, derivation > m.end()):
            return "names rival values ('or')"
    found = _BARE_RELATION.search(f"{clause} {_BOX_COMMAND.sub(' ', stated)}")
    if found:
        return f"{'negated' if found.group(1) in _UNEQUAL else 'qualified'} ({found.group(1)!r})"
    words = _tokens(lead)
    ending = words[-2:] if words[-1:] == ["be"] else words[-1:]
    if ending and ending[0] in _MODALS:
        return f"hedged ({ending[0]!r})"
    if ending and (ending[0].endswith("n't") or COMMITMENT_WORDS.get(ending[0]) == "negation"):
        return f"negated ({ending[0]!r})"
    return _condition_issue(lead, cut, derived)


def _qualifying_tail(tail: list[str]) -> list[str]:
    """The tail when it qualifies the answer: it opens, after any unit words, numbers, "is" or "at", with a commitment
    word, a `?` or "I think"."""
    i = 0
    while i < len(tail) and (tail[i] in UNIT_WORDS or tail[i] in _TAIL_SKIP):
        i += 1
    first, second = (tail[i : i + 2] + ["", ""])[:2]
    if first and (first == "?" or _kind(tail, i) is not None or first == "i" and second in _OPINIONS):
        return tail
    return []


def _kind(tokens: list[str], i: int) -> str | None:
    """What the word `tokens[i]` does to the answer: a kind of `normalize.COMMITMENT_WORDS` ("or so", "~5", "5 to 6"
    and "from 4 to 6" qualify; "not sure" hedges; "could be" hedges, "could have" does not; "the most likely sum"
    describes), else None."""
    token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
    if token.endswith("n't"):
        return "negation"
    if token in _OPINIONS and i and tokens[i - 1] == "i":
        return "opinion"
    if token in ("minimum", "maximum") and i and tokens[i - 1] == "at":
        return "qualifier"  # "5 at minimum"; "a maximum of 400" names the answer
    if token == "~" or token == "to" and following == "#" and ("from" in tokens[max(0, i - 12) : i] or
                                                               i and tokens[i - 1] == "#"):
        return "qualifier"
    if token == "or" and following in OR_QUALIFIERS or token == "give" and tokens[i + 1 : i + 3] == ["or", "take"]:
        return "qualifier"
    if token in _SURE and any(t == "not" or t.endswith("n't") for t in tokens[max(0, i - 3) : i]):
        return "hedge"
    if token == "if" and ["if", "and", "only", "if"] in (tokens[i : i + 4], tokens[max(0, i - 3) : i + 1]):
        return None  # "if and only if" states an equivalence
    if token in ("likely", "unlikely") and i and tokens[i - 1] in _DEGREES or token in _MODALS and "be" not in (
            tokens[i + 1 : i + 3]):
        return None
    return COMMITMENT_WORDS.get(token)


def _word_issue(tokens: list[str], where: Iterable[int], exempt: frozenset[str], members: bool,
                kinds: frozenset[str] | None) -> str | None:
    """The first word of `tokens[where]` (read in the context of all `tokens`) that keeps the answer from being
    committed (of `kinds`, or any kind). `members`: "or" / "either" join the members of one answer here (the stated
    answer, for a gold of several values)."""
    for i in where:
        token = tokens[i]
        if token in exempt:
            continue
        if token == "?":
            return "asks a question ('?')"
        kind = _kind(tokens, i)
        if kind is None or kind == "contrast" or (kinds is not None and kind not in kinds):
            continue
        if kind == "disjunction" and members:
            continue
        return f"{_ISSUES[kind]} ({token!r})"
    return None


def _parts_issue(before: list[str], answer: list[str], after: list[str], exempt: frozenset[str], several: bool,
                 kinds: frozenset[str] | None) -> str | None:
    """The first word of `before + answer + after`, read in sequence ("6 to 5", "5 or so"), that keeps the answer from
    being committed; the gold's words and, for a gold of several values, "or" count only outside the answer."""
    tokens, start, end = before + answer + after, len(before), len(before) + len(answer)
    return (_word_issue(tokens, chain(range(start), range(end, len(tokens))), frozenset(), False, kinds)
            or _word_issue(tokens, range(start, end), exempt, several, kinds))


def _box_issue(clause: str, stated: str, several: bool) -> str | None:
    """A box in the lead's last clause that differs from the answer's (`\\boxed{3} or \\boxed{5}`), or several
    different boxes in the answer (`\\boxed{3}\\boxed{5}`) where the gold is one value."""
    answer = {"".join(content.split()) for _, _, content in boxed_spans(stated)}
    rivals = {"".join(content.split()) for _, _, content in boxed_spans(clause)} - answer
    if any(not any(_same_number(rival, a) for a in answer) for rival in rivals) or (len(answer) > 1 and not several):
        return "boxes two different answers"
    return None


def commitment_issue(statement: FinalStatement, gold: str = "", several: bool = False) -> str | None:
    """None when the final statement commits to exactly one answer; else why not ("hedged ('probably')",
    "negated ('not')", "names rival values ('or')", "boxes two different answers", ...). `several`: the gold holds
    several values, so values joined by "or" inside the stated answer, and its adjacent boxes, are its members. See the
    module docstring for the rules."""
    lead, stated = statement.lead[-MAX_PART_CHARS:], _capped(statement.stated)
    trimmed, cut, derived = _last_clause(lead)
    clause = trimmed[cut:]
    clause_words = [word for word in _tokens(_blank(clause, _formulas(clause))) if word != "or"]
    tail, answer = _tokens(statement.tail[:MAX_PART_CHARS]), _tokens(stated)
    exempt = frozenset(_tokens(str(gold)[:MAX_PART_CHARS]))
    return (_lead_issue(trimmed, cut, derived, stated)
            or _parts_issue(_tokens(lead), answer, tail, exempt, several, frozenset({"hedge"}))
            or _parts_issue(clause_words, answer, _qualifying_tail(tail), exempt, several, None)
            or _box_issue(clause, stated, several))
