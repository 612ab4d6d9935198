"""The one parser for untrusted maths: text becomes a small syntax tree, the tree becomes SymPy objects.

Nothing here evaluates text as code. A single linear tokenizer accepts numbers, letters, `+ - * / ^ ** !`,
brackets, commas, `|` and a fixed set of LaTeX commands; anything else (quotes, dots outside numbers,
underscores that are not subscripts, `=`, `;`, `@`, attributes, lambdas) is refused. Names are single-letter
symbols, a fixed table of constants and functions, or short letter runs read as products (`xy` = x·y);
calls are allowed only to the function table. Numeric work is bounded structurally: numeric exponents above
`MAX_EXPONENT`, factorials above `MAX_FACTORIAL` and number literals longer than `MAX_DIGITS` are refused
before SymPy sees them.

The same tree answers the strict policy's question "is this a number in final form?" (`final_form_issue`),
so the shape the model wrote is judged, not the value SymPy evaluates it to.
"""
from __future__ import annotations

import math
import re
from decimal import Context, Decimal, InvalidOperation
from fractions import Fraction

MAX_ANSWER_CHARS = 400
MAX_DIGITS = 400
MAX_EXPONENT = 2_000
MAX_FACTORIAL = 2_000
MAX_DEPTH = 60

# The one number pattern: an unsigned decimal literal with an optional exponent. Every module that looks for
# numbers builds on it (`NUMBER_IN_TEXT` adds thousands groups and a sign for prose).
NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{1,9})?"
PLAIN_NUMBER = re.compile(rf"[-+]?{NUMBER}")
NUMBER_IN_TEXT = re.compile(rf"(?<![\w.])-?(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|{NUMBER})(?![\w])")

DECIMAL_CONTEXT = Context(prec=60, Emax=10**9, Emin=-(10**9), traps=[])


class Unparsable(ValueError):
    """The answer string cannot be turned into a SymPy object, or a guard refused it."""


# ---------------------------------------------------------------- plain numbers, without SymPy


def plain_number(s: str) -> Decimal | Fraction | None:
    """The exact value of a plain decimal / scientific / `a/b` string, else None. Huge exponents are cheap
    (a Decimal keeps them symbolic); never raises."""
    s = s.replace(" ", "")
    if len(s) > 4 * MAX_DIGITS + 20:
        return None
    if PLAIN_NUMBER.fullmatch(s):
        try:
            return DECIMAL_CONTEXT.create_decimal(s)
        except (InvalidOperation, ValueError):
            return None
    num, slash, den = s.partition("/")
    if slash and re.fullmatch(r"[-+]?\d{1,400}", num) and re.fullmatch(r"\d{1,400}", den) and int(den) != 0:
        return Fraction(int(num), int(den))
    return None


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    rf"(?P<num>{NUMBER})|(?P<cmd>\\[A-Za-z]+|\\[{{}}|,;! ])|(?P<name>[A-Za-z]+(?:_(?:\{{[A-Za-z0-9]{{1,8}}\}}|[A-Za-z0-9]))?)"
    r"|(?P<op>\*\*|[-+*/^!(){}\[\],|])|(?P<ws>\s+)"
)
_SKIP_COMMANDS = {"\\left", "\\right", "\\,", "\\;", "\\!", "\\ ", "\\displaystyle", "\\big", "\\Big"}
_TIMES = {"\\cdot", "\\times", "\\ast"}
_FRACTIONS = {"\\frac", "\\dfrac", "\\tfrac", "\\cfrac"}
FUNCTIONS = (
    "sqrt", "cbrt", "exp", "log", "ln", "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan",
    "asin", "acos", "atan", "sinh", "cosh", "tanh", "abs",
)
CONSTANTS = {"pi": "pi", "e": "e", "E": "e", "i": "i", "I": "i", "oo": "oo", "inf": "oo", "infty": "oo",
             "infinity": "oo"}
_MAX_WORD_AS_PRODUCT = 3


def tokenize(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens; raises Unparsable on any character outside the grammar."""
    if len(text) > MAX_ANSWER_CHARS:
        raise Unparsable(f"answer longer than {MAX_ANSWER_CHARS} characters")
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Unparsable(f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group()
        if kind == "ws" or value in _SKIP_COMMANDS:
            continue
        if kind == "num" and len(value) > MAX_DIGITS:
            raise Unparsable("number literal too long")
        tokens.append((kind, value))
    return tokens


# ---------------------------------------------------------------- the syntax tree
# Nodes are tuples: ("num", text) ("sym", name) ("const", name) ("neg", x) ("add", a, b) ("sub", a, b)
# ("mul", a, b) ("div", a, b) ("pow", a, b) ("fact", x) ("call", name, x) ("root", n, x) ("abs", x)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise Unparsable(f"expected {value or 'more input'}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        if not self.tokens:
            raise Unparsable("empty")
        node = self.sum()
        if self.peek() is not None:
            raise Unparsable(f"unexpected {self.peek()[1]!r}")
        return node

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Unparsable("nesting too deep")

    def sum(self) -> tuple:
        self._enter()
        node = self.term()
        while self.peek() and self.peek()[1] in "+-" and self.peek()[0] == "op":
            op = self.take()[1]
            node = ("add" if op == "+" else "sub", node, self.term())
        self.depth -= 1
        return node

    def _starts_atom(self, tok: tuple[str, str] | None) -> bool:
        if tok is None:
            return False
        kind, value = tok
        return kind in ("num", "name") or value in ("(", "{", "[") or (kind == "cmd" and value not in _TIMES
                                                                       and value != "\\div")

    def term(self) -> tuple:
        node = self.unary()
        while True:
            tok = self.peek()
            if tok and (tok[1] in ("*", "/") and tok[0] == "op" or tok[1] in _TIMES or tok[1] == "\\div"):
                self.take()
                op = "div" if tok[1] in ("/", "\\div") else "mul"
                node = (op, node, self.unary())
            elif self._starts_atom(tok):
                factor = self.power()
                mixed = _mixed_number(node, factor) if tok[1] in _FRACTIONS else None
                node = mixed or ("mul", node, factor)
            else:
                return node

    def unary(self) -> tuple:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in "+-":
            self.take()
            self._enter()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if tok[1] == "-" else inner
        return self.power()

    def power(self) -> tuple:
        base = self.postfix()
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("^", "**"):
            self.take()
            self._enter()
            exponent = self.unary()
            self.depth -= 1
            return ("pow", base, exponent)
        return base

    def postfix(self) -> tuple:
        node = self.atom()
        while self.peek() == ("op", "!"):
            self.take()
            node = ("fact", node)
        return node

    def group(self) -> tuple:
        """A `{...}` group, or a single token as in `\\sqrt2` / `x^2`."""
        tok = self.peek()
        if tok == ("op", "{"):
            self.take()
            node = self.sum()
            self.take("}")
            return node
        return self.postfix()

    def atom(self) -> tuple:
        tok = self.peek()
        if tok is None:
            raise Unparsable("expected a value")
        kind, value = tok
        if kind == "num":
            self.take()
            return ("num", value)
        if kind == "op" and value in ("(", "{", "["):
            self.take()
            self._enter()
            node = self.sum()
            self.depth -= 1
            self.take({"(": ")", "{": "}", "[": "]"}[value])
            return node
        if kind == "op" and value == "|":
            self.take()
            node = self.sum()
            self.take("|")
            return ("abs", node)
        if kind == "cmd":
            self.take()
            return self.command(value)
        if kind == "name":
            self.take()
            return self.name(value)
        raise Unparsable(f"unexpected {value!r}")

    def command(self, cmd: str) -> tuple:
        name = cmd[1:]
        if cmd in _FRACTIONS:
            return ("div", self.group(), self.group())
        if name == "sqrt":
            index = None
            if self.peek() == ("op", "["):
                self.take()
                index = self.sum()
                self.take("]")
            return ("root", index, self.group())
        if name in ("pi", "infty"):
            return ("const", CONSTANTS[name])
        if name in FUNCTIONS:
            return ("call", name, self.power_argument())
        raise Unparsable(f"LaTeX command {cmd} is not in the plain grammar")

    def power_argument(self) -> tuple:
        """The argument of `sin x`, `\\sin(x)`, `\\log{x}`."""
        if self.peek() == ("op", "("):
            return self.atom()
        return self.power()

    def name(self, word: str) -> tuple:
        if word in FUNCTIONS and self.peek() == ("op", "("):
            argument = self.atom()
            return ("root", None, argument) if word == "sqrt" else ("call", word, argument)
        if word in CONSTANTS:
            return ("const", CONSTANTS[word])
        if len(word) == 1 or "_" in word:
            return ("sym", word)
        if len(word) <= _MAX_WORD_AS_PRODUCT and word.isalpha():
            node = ("sym", word[0])
            for letter in word[1:]:
                node = ("mul", node, ("sym", letter))
            return node
        raise Unparsable(f"unknown name {word[:20]!r}")


def _mixed_number(whole: tuple, fraction: tuple) -> tuple | None:
    """`2\\frac{3}{4}` is 2 + 3/4 and `-2\\frac{3}{4}` is -(2 + 3/4): a whole number followed directly by a proper fraction
    of whole numbers (0 ≤ numerator < denominator) is a mixed number. None otherwise: `1\\frac{3}{2}` is no mixed
    number, and like `2\\frac{\\pi}{4}` it stays the product that juxtaposition means everywhere else."""
    negative = whole[0] == "neg"
    number = whole[1] if negative else whole
    if _integer(number) is None or fraction[0] != "div":
        return None
    numerator, denominator = _integer(fraction[1]), _integer(fraction[2])
    if numerator is None or denominator is None or numerator >= denominator:
        return None
    mixed = ("add", number, fraction)
    return ("neg", mixed) if negative else mixed


def parse_tree(text: str) -> tuple:
    """The syntax tree of one scalar expression (plain text or the LaTeX subset); raises Unparsable."""
    return _Parser(tokenize(text)).parse()


# ---------------------------------------------------------------- tree → SymPy


def to_sympy(node: tuple):
    """SymPy object for a tree, with structural bounds on numeric powers and factorials."""
    import sympy

    kind = node[0]
    if kind == "num":
        text = node[1]
        if "e" in text.lower():
            mantissa, _, exponent = text.lower().partition("e")
            if abs(int(exponent)) > MAX_EXPONENT:
                raise Unparsable("exponent too large")
            return sympy.Rational(mantissa) * sympy.Integer(10) ** int(exponent)
        return sympy.Rational(text) if "." in text else sympy.Integer(text)
    if kind == "sym":
        return sympy.Symbol(node[1].replace("{", "").replace("}", ""))
    if kind == "const":
        return {"pi": sympy.pi, "e": sympy.E, "i": sympy.I, "oo": sympy.oo}[node[1]]
    if kind == "neg":
        return -to_sympy(node[1])
    if kind == "abs":
        return sympy.Abs(to_sympy(node[1]))
    if kind in ("add", "sub", "mul", "div"):
        a, b = to_sympy(node[1]), to_sympy(node[2])
        return {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b}[kind]()
    if kind == "pow":
        base, exponent = to_sympy(node[1]), to_sympy(node[2])
        _check_power(base, exponent)
        return base**exponent
    if kind == "fact":
        value = to_sympy(node[1])
        if value.is_number and (not value.is_Integer or abs(int(value)) > MAX_FACTORIAL):
            if not value.is_Integer:
                raise Unparsable("factorial of a non-integer")
            raise Unparsable("factorial too large")
        return sympy.factorial(value)
    if kind == "root":
        radicand = to_sympy(node[2])
        index = 2 if node[1] is None else to_sympy(node[1])
        return sympy.root(radicand, index)
    if kind == "call":
        return _function(node[1])(to_sympy(node[2]))
    raise Unparsable(f"unknown node {kind}")


def _check_power(base, exponent) -> None:
    if not (getattr(base, "is_number", False) and getattr(exponent, "is_number", False)):
        return
    if exponent.is_real and abs(exponent) > MAX_EXPONENT and base not in (0, 1, -1):
        raise Unparsable("exponent too large")
    if base.is_Integer and abs(base) > 10**MAX_DIGITS:
        raise Unparsable("power of a huge number")


def _function(name: str):
    import sympy

    table = {
        "sqrt": sympy.sqrt, "cbrt": lambda x: sympy.root(x, 3), "exp": sympy.exp, "log": sympy.log, "ln": sympy.log,
        "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec, "csc": sympy.csc,
        "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan, "asin": sympy.asin, "acos": sympy.acos,
        "atan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "abs": sympy.Abs,
    }
    return table[name]


def parse_plain(text: str):
    """SymPy object for plain-text or simple-LaTeX maths; raises Unparsable."""
    return to_sympy(parse_tree(text))


# ---------------------------------------------------------------- final form (the strict policy)


def _integer(node: tuple) -> int | None:
    if node[0] == "num" and node[1].isdigit():
        return int(node[1])
    return None


def _free_of_powers(n: int, k: int) -> bool:
    """True when no p^k (p ≥ 2) divides n (n small enough to trial-divide: guarded by the caller)."""
    p = 2
    while p**k <= n:
        if n % p**k == 0:
            return False
        p += 1
    return True


def _irrational_atom(node: tuple) -> str | None:
    """A canonical irrational factor (√n squarefree, ∛n cube-free, π, e, i, π^k and e^k for whole k ≥ 2): its key,
    else None."""
    if node[0] == "const" and node[1] in ("pi", "e", "i"):
        return node[1]
    if node[0] == "pow" and node[1] in (("const", "pi"), ("const", "e")):
        power = _integer(node[2])
        return f"{node[1][1]}^{power}" if power is not None and power >= 2 else None
    if node[0] == "root":
        radicand = _integer(node[2])
        index = 2 if node[1] is None else _integer(node[1])
        if radicand is None or index is None or index < 2 or radicand < 2 or radicand > 10**12:
            return None
        return f"root{index}:{radicand}" if _free_of_powers(radicand, index) else None
    return None


def _term(node: tuple, fractions: bool = False) -> tuple[int | None, str | None] | None:
    """(integer coefficient, irrational key) of `c`, `√n`, `c√n`, `cπ` — with `fractions`, also of such a term over
    a whole denominator in lowest terms (`5/8`, `√105/8`: SymPy's own spelling of a sum such as `5/8 - √105/8`);
    None when the term is not final."""
    if fractions and node[0] == "div":
        denominator, inner = _integer(node[2]), _term(node[1])
        if denominator is None or denominator < 2 or inner is None or inner[0] is None:
            return None
        return inner if math.gcd(inner[0], denominator) == 1 else None
    coefficient = _integer(node)
    if coefficient is not None:
        return coefficient, None
    if node[0] == "num":
        return None, None  # a decimal literal
    atom = _irrational_atom(node)
    if atom is not None:
        return 1, atom
    if node[0] == "mul":
        c, atom = _integer(node[1]), _irrational_atom(node[2])
        if c is not None and c > 1 and atom is not None:
            return c, atom
    return None


def _terms(node: tuple, sign: int = 1) -> list[tuple[int, tuple]]:
    if node[0] == "add":
        return _terms(node[1], sign) + _terms(node[2], sign)
    if node[0] == "sub":
        return _terms(node[1], sign) + _terms(node[2], -sign)
    return [(sign, node)]


def _numerator_issue(node: tuple, fractions: bool = False) -> tuple[str | None, list[int]]:
    """Whether a sum of final terms (each over its own denominator with `fractions`) is in final form; (issue or
    None, the integer coefficients)."""
    terms = _terms(node)
    if len(terms) > 3:
        return "arithmetic left undone", []
    coefficients, atoms, rational_terms = [], set(), 0
    for index, (sign, term) in enumerate(terms):
        if fractions and term[0] == "div" and term[1][0] == "neg":  # -√13/2 reads as -(√13/2)
            term = ("neg", ("div", term[1][1], term[2]))
        if term[0] == "neg":
            if index:
                return "arithmetic left undone", []
            term = term[1]
        parsed = _term(term, fractions)
        if parsed is None:
            return "arithmetic left undone", []
        c, atom = parsed
        if atom is None:
            rational_terms += 1
        elif atom in atoms:
            return "like terms not collected", []
        else:
            atoms.add(atom)
        if c is not None:
            coefficients.append(c)
    if len(terms) > 1 and (rational_terms > 1 or any(c == 0 for c in coefficients)):
        return "arithmetic left undone", []
    return None, coefficients


def final_form_issue(node: tuple) -> str | None:
    """None when the tree is a number in final form (integer, decimal, fraction in lowest terms, scientific
    notation, canonical surd/π form such as `2\\sqrt{2}` or `\\frac{1+\\sqrt{5}}{2}`); else why not."""
    if node[0] == "neg":
        node = node[1]
        if node[0] == "neg":
            return "arithmetic left undone"
    if node[0] == "num" or node == ("const", "oo"):
        return None
    if node[0] == "mul" and node[1][0] == "num" and node[2][0] == "pow" and node[2][1] == ("num", "10"):
        exponent = node[2][2][1] if node[2][2][0] == "neg" else node[2][2]
        return None if _integer(exponent) is not None else "arithmetic left undone"
    if node[0] == "div":
        denominator = _integer(node[2])
        if denominator is None or denominator < 2:
            return "a fraction whose denominator is not a whole number above 1"
        numerator = node[1][1] if node[1][0] == "neg" else node[1]
        issue, coefficients = _numerator_issue(numerator)
        if issue:
            return issue
        if not coefficients or math.gcd(denominator, *coefficients) != 1:
            return "fraction not in lowest terms"
        return None
    if node[0] in ("root", "add", "sub", "mul", "const", "pow"):
        issue, _ = _numerator_issue(node, fractions=node[0] in ("add", "sub"))
        if issue and node[0] == "root":
            return "surd not simplified"
        return issue
    if node[0] == "call":
        return "function-call syntax"
    return "arithmetic left undone"


def tree_size(node) -> int:
    """Nodes in a tree (a measure of how much is left to simplify)."""
    if not isinstance(node, tuple):
        return 0
    return 1 + sum(tree_size(child) for child in node[1:] if isinstance(child, tuple))


def tree_has_symbols(node: tuple) -> bool:
    """Whether a tree contains a symbol (a factor that is not a constant)."""
    if node[0] == "sym":
        return True
    return any(isinstance(child, tuple) and tree_has_symbols(child) for child in node[1:])


def is_expanded(node: tuple) -> bool:
    """No product or power of a sum is left: the expanded form of a polynomial."""
    def has_sum(n: tuple) -> bool:
        while n[0] == "neg":
            n = n[1]
        return n[0] in ("add", "sub")

    kind = node[0]
    if kind in ("mul", "div") and (has_sum(node[1]) or has_sum(node[2])):
        return False
    if kind == "pow" and has_sum(node[1]):
        return False
    return all(is_expanded(child) for child in node[1:] if isinstance(child, tuple))


def product_factors(node: tuple) -> list[tuple[tuple, int]]:
    """The factors of a top-level product, with multiplicities from integer powers."""
    if node[0] == "neg":
        return product_factors(node[1])
    if node[0] == "mul":
        return product_factors(node[1]) + product_factors(node[2])
    if node[0] == "pow":
        k = _integer(node[2])
        if k is not None and k <= 64:
            return [(node[1], k)]
    return [(node, 1)]
