"""Writes bench/data/math_verify_suite.jsonl: answer-equivalence cases transcribed from other projects' tests.

Sources (cases restated as data, no code copied):
- MV: huggingface/Math-Verify tests/test_all.py (gold, prediction, expected), function named per row;
  long model outputs are abridged to the sentences that carry the answer ("abridged": true).
- QWEN: Qwen2.5-Math evaluation grader examples (math_equal on numbers, fractions, intervals, matrices).
- MINERVA: the MATH / Minerva answer formats ("Final Answer: The final answer is $X$. I hope it is correct.").
- Answer families (degree-mode trigonometry, free text after a value, assignment lists, roots joined by "and"/"or",
  mixed numbers, units, `cases` systems, matrices against lists): MATH answer keys (Hendrycks et al. 2021, the copy
  in aiwaves-cn/agents, cited per file), Math-Verify's mixed-number / NuminaMath / OpenThoughts tests, the MATH
  release's own equivalence tests, PRM800K's and Qwen2.5-Math's graders, lm-evaluation-harness's Minerva utils.
  A MATH row's gold is the boxed answer of that file; its pred restates the problem's expression (`\\sin 30^\\circ`)
  or the answer in another spelling, as a model writes it.
"""
import json, pathlib
MV = "huggingface/Math-Verify tests/test_all.py::"
rows = []
def bare(fn, gold, pred, label, family):
    rows.append({"source": MV + fn, "family": family, "gold": gold, "pred": pred, "label": bool(label)})
def text(fn, gold, completion, label, family, abridged=False, gold_is_text=False, source=None):
    r = {"source": source or MV + fn, "family": family, "gold": gold, "completion": completion, "label": bool(label)}
    if abridged: r["abridged"] = True
    if gold_is_text: r["gold_is_text"] = True
    rows.append(r)

# test_number_extraction (expr targets: numbers found in text)
for g, p, l in [("-5", "-5", 1), ("7425000", "7,425,000", 1), ("1000", "1 000", 1), ("1000", "1000.0", 1),
                ("1000.0", "1,000.0", 1), ("1000.99", "1000,99", 1), ("1,22", "1.22", 1), ("0.4", ".4", 1),
                ("1000.99", "1,000.99", 1), ("1000.99", "$1,000.99", 1), ("1000.99", "1,000.99$", 1), ("0,111", "0.111", 1)]:
    bare("test_number_extraction", g, p, l, "numbers")
for g, p, l in [("2.74", "Soucis : 2,74 $ a..", 1), ("1000.99", "the number is not 10 which is 1,000.99€", 1),
                ("1000.99", "so the number is 10 which is 1,000.99m²", 1), ("2", "AZYUK2A", 0)]:
    text("test_number_extraction", g, p, l, "numbers")
bare("test_simple_fraction_notation", "10/9", "\\frac{10}{9}", 1, "fractions")
bare("test_simple_fraction_notation", "-10/9", "-\\frac{10}{9}", 1, "fractions")
for g, p, l in [("$[0,1)$", "$[0,1)$", 1), ("$[0,9)$", "$[0,1)$", 0), ("$(0,9)$", "$[0,9)$", 0), ("$1$", "$-[0,1)$", 0)]:
    bare("test_sets_handling", g, p, l, "intervals")
# test_latex_notation (answers inside text, latex targets)
for g, p, l in [("$9$", "Answer \\[ 9 \\]", 1), ("$9$", "Answer $ 9 $", 1), ("$9$", "Answer $$ 9 $$", 1),
                ("$9$", "Answer \\( 9 \\)", 1), ("$10$", "Answer \\( (9+1) \\)", 1),
                ("$9$", "Answer \\[ \n 9 \n \\]", 1), ("$9$", "Answer $$ \n 9 \n $$", 1),
                ("$10/9$", "Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $", 1), ("$1/3$", "$\\frac13 $", 1),
                ("$1$", "$\\frac3{3} $", 1), ("$\\sqrt{3}$", "$\\sqrt3 $", 1), ("$1/3$", "$\\cfrac{1}{3} $", 1),
                ("$1/3$", "$\\dfrac{1}{3} $", 1), ("$1/3$", "$\\tfrac{1}{3} $", 1), ("$1/3$", "$ 1/3 $", 1),
                ("$1/3$", "$\\left( \\frac{1}{3} \\right)$", 1), ("$1/3$", "$\\boxed{\\frac{1}{3}}$", 1),
                ("$1/3$", "$\\frac{1}{3} \\text{meters}$", 1), ("$1/3$", "$\\frac{1}{3} \\textbf{meters}$", 1),
                ("$1/3$", "$k = \\frac{1}{3}$", 1)]:
    text("test_latex_notation", g, p, l, "latex_notation")
for g, p, l in [("$28\\%$", "28 percent", 1), ("$28\\%$", "28 pct", 1), ("$28\\%$", "28 %", 1), ("$28\\%$", "$28$ %", 1),
                ("$28\\%$", "$28$ percent", 1), ("$28\\%$", "$\\boxed{28}$ pct", 1), ("$28\\%$", "$\\boxed{28 pct}", 1),
                ("$28\\%$", "$\\boxed{28 percent}", 1), ("$28\\%$", "$\\boxed{28 percentage}", 1), ("$28\\%$", "28", 1),
                ("$0.28$", "28", 0), ("$28/100$", "28", 0), ("$28$", "28/100", 0), ("$\\frac{28}{100}$", "28", 0),
                ("$28*\\frac{1}{100}$", "28", 0)]:
    text("test_percent_notation", g, p, l, "percent")
# test_latex_notation_math
M = "test_latex_notation_math"
text(M, "$2-2p$", "Since $x<2$, it follows that $|x-2|=2-x$. If $2-x=p$, then $x=2-p$. Thus $x-p=\\boxed{2-2p}$.", 1, "symbolic")
text(M, "\\boxed{\n\\begin{pmatrix} 0 & 3 \\\\ 0 & -1 \\end{pmatrix}\n}.", "\\boxed{\n\\begin{pmatrix} 0 & 3 \\\\ 0 & -1 \\end{pmatrix}\n}.\n\\end{align*}", 1, "matrix", gold_is_text=True)
text(M, "$28\\%$", "making for a total loss of $\\boxed{28\\%}$.", 1, "percent", abridged=True)
text(M, "$14{,}916$", "Therefore, $\\boxed{14{,}916}$ is our answer.", 1, "separators", abridged=True)
text(M, "$14{,}916$", "Thus, the smallest possible value for $N$ is $N = 14 {, }916$. Final Answer: The final answer is $14 {, }916$. I hope it is correct. Note: The solution provided is correct.", 1, "minerva", abridged=True)
text(M, "$12\\text{ and }13$", "Therefore, the graph of the sum is located between $\\boxed{12 $ and $13 }. $ Final Answer: The final answer is \"$12 $ and $13 $\". I hope it is correct.", 1, "lists", abridged=True)
text(M, "$(3, \\frac{\\pi}{2})$", "Therefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$", 1, "tuples", abridged=True)
text(M, "$\\frac{14}{3}$", "$f(-2)+f(-1)+f(0)=\\frac{-8}{-4}+\\frac{-5}{-3}+\\frac{-2}{-2}=2+\\frac{5}{3}+1=\\boxed{\\frac{14}{3}}$", 1, "fractions")
text(M, "$\\text{Evelyn}$", "Therefore, $\\boxed{\\text{Evelyn}}$ is our answer.", 1, "text", abridged=True)
text(M, "$90^\\circ$", "Hence, the angle between the lines is $\\boxed{90^\\circ}.$", 1, "degrees", abridged=True)
text(M, "$3\\sqrt{13}$", "\\begin{align*} \\sqrt{(2 - (-4))^2 + ((-6) - 3)^2} &= \\sqrt{36 + 81}\\\\ & = \\sqrt{117} = \\boxed{3\\sqrt{13}}. \\end{align*}", 1, "surds")
text(M, "$\\frac{3}{56}$", "so \\[p(8) = \\frac{q(8) + 8}{8^2 - 1} = \\boxed{\\frac{3}{56}}.\\]", 1, "fractions", abridged=True)
text(M, "$15\\mbox{ cm}^2$", "Therefore, the area of the triangle is $$\\frac{1}{2}\\times 3 \\times 10 = \\boxed{15\\mbox{ cm}^2}.$$", 1, "units", abridged=True)
text(M, "$-2,1$", "Checking, we find that the only integer roots are $\\boxed{-2,1}.$", 1, "lists", abridged=True)
text(M, "$9$", "Then, $129^{34}+96^{38} \\equiv \\boxed{9} \\pmod{11}.$", 1, "boxed", abridged=True)
text(M, "$204_5$", "for a quotient of $\\boxed{204_5}$. Note that in the above calculation we have used that $13_5$ divided by $2_5$ is $4_5$.", 1, "bases", abridged=True)
text(M, "$(6,31,-1)$", "Then solving the system of equations, we find $(p,q,r) = \\boxed{(6,31,-1)}.$", 1, "tuples", abridged=True)
text(M, "$1 \\pm \\sqrt{19}$", "By the quadratic formula, $x = \\boxed{1 \\pm \\sqrt{19}}.$", 1, "plus_minus", abridged=True)
text(M, "$3 \\pm 2 \\sqrt{2}$", "By the quadratic formula, the roots are $x = \\boxed{3 \\pm 2 \\sqrt{2}}.$", 1, "plus_minus", abridged=True)
text(M, "$\\{1\\pm\\sqrt{5},-2\\}$", "The roots of $P(x)$ are $-2$ and $1 \\pm \\sqrt{5}$, so the answer is $\\boxed{\\{1\\pm\\sqrt{5},-2\\}}.$", 1, "plus_minus")
text(M, "$f(2) < f(1) < f(4)$", "Hence, $\\boxed{f(2) < f(1) < f(4)}.$", 1, "relations", abridged=True)
text(M, "$2 \\sin b \\cos a$", "By sum-to-product,\n\\[\\sin (a + b) - \\sin (a - b) = \\boxed{2 \\sin b \\cos a}.\\]", 1, "symbolic")
text(M, "$\\frac{\\pi r}{h+r}$", "Thus we have $s = x+y+z = (z+x)+y = h+r$. The answer is $\\boxed{\\frac{\\pi r}{h+r}}$.", 1, "symbolic", abridged=True)
text(M, "$125$ miles", "The distance is $\\boxed{125\\textnormal{ miles}}.$", 1, "units")
text(M, "$[-1, -\\frac{1}{2}) \\cup (-\\frac{1}{2}, 0) \\cup (0, 1) \\cup (1, \\infty)$", "The solution set is $\\boxed{[-1, -\\tfrac12) \\cup (-\\tfrac12, 0) \\cup (0, 1) \\cup (1, \\infty)}.$", 1, "intervals")
text(M, "$\\sqrt{2}+\\sqrt{5}$", "The answer is $\\boxed{\\sqrt 2+\\sqrt 5}$", 1, "surds")
text(M, "$\\frac{9}{4}\\pi$", "Therefore $\\boxed{\\frac94\\pi}$.", 1, "fractions")
text(M, "x \\in \\boxed{\\{-1\\} \\cup [0,7)}.$", "x \\in \\boxed{\\{-1\\} \\cup [0,7)}.$", 1, "intervals", gold_is_text=True)
# test_relations_math
R = "test_relations_math"
for g, p, l in [("$x >= 5$", "Therefore $x \\geq 5$ is the solution.", 1), ("$x < 3$", "We find that $x \\lt 3$.", 1),
                ("$x \\leq 2$", "Thus $x <= 2$ is our answer.", 1), ("$x > 5$", "Therefore $x \\gt 5$ is the solution.", 1),
                ("$x != 3$", "We find that $x \\neq 3$.", 1), ("$x > 5$", "Therefore $x < 5$ is the solution.", 0),
                ("$x \\geq 5$", "The solution is $x \\leq 5$", 0), ("$x \\neq 5$", "The solution is $x != 5$", 1),
                ("$x \\leq 5$", "$5 \\geq x$", 1), ("$x \\geq 5$", "$5 \\leq x$", 1), ("$x = 11$", "$x = 5+5+1 = 7 =11$", 1),
                ("$7 = 11a+c$", "$11a+c$", 0), ("$x = 1/3$", "$x = 5+5+1 = 1/3 \\approx 11$", 1), ("$11$", "$x=11$", 1),
                ("$11$", "$x\\approx11$", 1), ("$1/3$", "$x=1/3\\approx1.3$", 1), ("$x < 1$", "$-x > -1$", 1),
                ("$x < 1$", "$x > -1$", 0), ("$x <= 1$", "$-x >= -1$", 1), ("$a +3z = 0$", "$0$", 0),
                ("$1 = \\zzz = x = 0$", "$0$", 1), ("$2x + z = 1$", "$1$", 0), ("$a^2 + b = 0$", "$0$", 0),
                ("$k=1$", "$1$", 1), ("$1$", "$k=1$", 1), ("$z = 1 + 1 = 2$", "$z = 3+3 = 2$", 1),
                ("$2x+4y-3=0$", "$y=-\\frac{1}{2}x+\\frac{3}{4}$", 1), ("$x^2/4 + y^2/3 = 1$", "$x^2/16 + y^2/12 = 1/4$", 1)]:
    text(R, g, p, l, "relations")
X = "test_matrix_extraction"
text(X, "$189$", "So area is (15 +27)/2 *9=189.\n\n**Final Answer**\n\\boxed{189}\n</think>\n\nThus, the area of the trapezoid is \\(\\boxed{189}\\) square centimeters.", 1, "boxed", abridged=True)
text(X, "$\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}$", "The identity matrix is $ \\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix} $.", 1, "matrix")
text(X, "$\\begin{bmatrix}0 & 0 \\\\0 & 0\\end{bmatrix}$", "Here is a zero matrix: $ \\begin{pmatrix}0 & 0 \\\\0 & 0\\end{pmatrix} $", 1, "matrix")
text(X, "$\\begin{pmatrix}1 & 2 \\\\3 & 4\\end{pmatrix}$", "Special matrix: $ \\left[\\begin{array}{cc}1 & 2 \\\\3 & 4\\end{array}\\right] $", 1, "matrix")
text(X, "$\\begin{pmatrix}\\frac{1}{2} & \\frac{3}{4} \\\\ \\frac{5}{6} & \\frac{7}{8}\\end{pmatrix}$", "Matrix with fractions: $ \\begin{pmatrix}\\frac{1}{2} & \\frac{3}{4} \\\\ \\frac{5}{6} & \\frac{7}{8}\\end{pmatrix} $", 1, "matrix")
text(X, "$\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}$", "The matrix is $\\begin{pmatrix}1 & 2 \\\\ 3 & 5\\end{pmatrix}$", 0, "matrix")
C = "test_complex_math_expressions"
for g, p, l in [("$\\frac{1}{12}$", "$0.0833333333333333$", 1), ("$(1,\\frac{9}{2})$", "$(1,4.5)$", 1),
                ("$\\frac{x+2}{7}$", "$\\frac{x}{7}+\\frac{2}{7}$", 1), ("$\\tan^2(y)+1$", "$\\sec^2(y)$", 1),
                ("$34x+45y-20z+100=0$", "$-34x-45y+20z-100=0$", 1),
                ("$\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{15+2\\sqrt{33}}$", "$\\frac{\\sqrt{\\sqrt{11}+\\sqrt{194}}}{2\\sqrt{33}+15}$", 1),
                ("$(a+5)(b+2)$", "$(+5)(b+2)$", 0), ("$2$", "$\\frac{1+\\sqrt{5}}{2}$", 0),
                ("$4$", "$\\frac{34}{16}+\\frac{\\sqrt{1358}}{16}$", 0), ("$1\\sqrt{19}$", "$1$", 0), ("$x+2n+1$", "$x+1$", 0)]:
    bare(C, g, p, l, "expressions")
E = "test_math_extraction_edge_cases"
text(E, "$2/3$", "P(A) = (1/2) / (3/4) P(A) = (1/2) * (4/3) P(A) = 2/3 Therefore, the probability that Alice wins the game is 2/3. <|im_start|>user", 1, "last_number", abridged=True)
text(E, "$12$", "For each divisor $n$, there corresponds a unique common difference $d = \\frac{90}{n}$. Therefore, there are 12 distinct arithmetic sequences that meet the three given conditions. I hope it is correct. <|im_start|>user", 1, "last_number", abridged=True)
text(E, "$(7,6)$", "$y = 8.8 - 2.8 = 6$ So, the ordered pair $(x, y)$ that solves the system is $(7, 6)$. <|im_start|>user", 1, "math_span", abridged=True)
text(E, "$[0,1)$", "Combining these conditions, we find that the domain of $q(x)$ is the interval $(0, 1)$. Final Answer: The final answer is $(0, 1)$. I hope it is correct. <|im_start|>user", 0, "minerva", abridged=True)
text(E, "$[-3,2]$", "which is $\\boxed{[-3, 2]}$. Final Answer: The final answer is $[-3, 2]$. I hope it is correct. I apologize for the mistake. Therefore, the domain of the function is the interval outside the roots, which is $\\boxed{(-\\infty, -3] \\cup [2, \\infty)}$. Final Answer: The final answer is $(-\\infty, -3] \\cup [2, \\infty)$. I hope it is correct. <|im_start|>user", 0, "minerva", abridged=True)
text(E, "$16386.20$", "Rounded to the nearest cent, Paula's investment is worth $\\boxed{\\$16,\\!386.20}$ at the end of the 5-year period. The answer is $16,\\!386.20$.", 1, "separators", abridged=True)
text(E, "$120$", "Therefore, the volume of rectangular prism $ABCDEFGH$ is $5 \\times 6 \\times 4 = 120$. Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct.", 1, "minerva", abridged=True)
text(E, "12000023", "$85 + (-67) + 12,\\!000,\\!003 + (-3) = 12,\\!000,\\!023$. Final Answer: The final answer is 12,000,023. I hope it is correct. <|im_start|>user", 1, "minerva", abridged=True)
text(E, "$14916$", "Therefore, the smallest possible value for $N$ is $14{,}922$. Final Answer: The smallest possible value of $N$ is $\\boxed{14{,}916}$. I hope it is correct. <|im_start|>user", 1, "separators", abridged=True)
text(E, "$\\left(\\frac{1}{5},\\frac{1}{6}\\right)$", "Thus, $(p,q) = \\boxed{\\left( \\frac{1}{5}, \\frac{1}{6} \\right)}.$ Final Answer: The final answer is $\\left( \\frac{1}{5}, \\frac{1}{6} \\right)$. I hope it is correct. <|im_start|>user", 1, "tuples", abridged=True)
text(E, "$16386.17$", "Rounded to the nearest cent, Paula's investment is worth $\\boxed{\\$16386.17}$ after 5 years. I hope it is correct. <|im_start|>user", 1, "boxed", abridged=True)
text(E, "$20$", "=\\frac{1 }{5 }=\\boxed{20 \\%}. $$ Final Answer: The final answer is $20 \\%$. I hope it is correct. Note: The solution provided assumes that the total number of people is the sum of adults and children.", 1, "percent", abridged=True)
text(E, "$[-2, 7]$", "$x \\in [-2,7]$", 1, "intervals")
text(E, "$3$", "So, Jane started growing Sphere 3 hours ago. Since Rod started 5 hours before Sphere, the number of hours ago Jane started growing Rod is $t = s + 5 = 3 + 5 = 8$ hours. Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct. <|im_start|>user", 1, "minerva", abridged=True)
text(E, "$19$", "So, the total number of points in the domain is $1 + 2 \\times 9 = 1 + 18 = 19$ points. Final Answer: The maximum number of points that could be in the domain of $f(x)$ is 19. <|im_start|>user", 1, "minerva", abridged=True)
text(E, "$(\\tfrac{27}{8},\\tfrac{15}{8})$", "Therefore, the point where the line intersects $\\overline{CD}$ is $\\boxed{(0, 0)}$. Final Answer: The final answer is $(0, 0)$. I hope it is correct. <|im_start|>user", 0, "minerva", abridged=True)
text(E, "$34$", "Final Answer: The largest $n$ is 34.", 1, "minerva")
text(E, "$\\left( \\frac{4}{3}, -\\frac{1}{3} \\right)$", "Isolating $\\overrightarrow{P},$ we find \\[\\overrightarrow{P} = \\frac{4}{3} \\overrightarrow{A} - \\frac{1}{3} \\overrightarrow{B}.\\]Thus, $(t,u) = \\boxed{\\left( \\frac{4}{3}, -\\frac{1}{3} \\right)}.$", 1, "tuples")
text(E, "$(3,1)$", "${1,3}$", 0, "sets")
text(E, "$(1,3)$", "${1,3}$", 1, "sets")
text(E, "$100%$", "Therefore, the minimum error in the measurement of the position increases by 100%.", 1, "percent", abridged=True)
text(E, "$16386.16$", "So, Paula's investment is worth approximately $\\boxed{16386.16}$ dollars at the end of the 5 years. Final Answer: The final answer is 16386.16.", 1, "minerva", abridged=True)
text(E, "$5866608$", "So, the sum of the integers on Camy's list is $\\boxed{5866608}$. Final Answer: The final answer is 5866608. I hope it is correct.", 1, "minerva", abridged=True)
text(E, "$14400$", "So, the total number of distinguishable ways is $1 \\times 5! \\times 5! = 120 \\times 120 = \\boxed{14400}$. Final Answer: The final answer is 14400. I hope it is correct.", 1, "minerva", abridged=True)
text(E, "$14916$", "Thus, the smallest possible value of $N$ is $14{,}940$. Final Answer: The final answer is $14{,}916$. I hope it is correct.", 1, "minerva", abridged=True)
text(E, "$20\\%$", "$$\\frac{|C|}{|A| + |C|} \\times 100\\% = \\frac{1}{5} \\times 100\\% = \\boxed{20\\%}$$ Final Answer: The final answer is $20\\%$. I hope it is correct.", 1, "percent", abridged=True)
text(E, "$7.78$", "$\\frac{70}{9} \\approx 7.78$ So, Anna pays approximately $7.78 for her fudge. Final Answer: The final answer is 7.78.", 1, "minerva", abridged=True)
text(E, "$100$", "Thus, the new error in the measurement of the position is at least $100\\%$ of the original error. Final Answer: The final answer is $100$. I hope it is correct.", 1, "minerva", abridged=True)
text(E, "$x-2y+z-1=0$", "The equation of the plane containing $L$ and the point $(1,1,1)$ is then $$-1(x-1)+2(y-1)+1(z-1)=0\\Rightarrow\\boxed{x-2y+z-1=0}.$$ Final Answer: The final answer is $x-2y+z-1=0$. I hope it is correct.", 1, "relations", abridged=True)
text(E, "$10455$", "$0.04 \\cdot 10,000 \\cdot \\frac{1}{2} = \\boxed{200}$ So, after six months, Dr. Zaius has $10,200. $0.05 \\cdot 10,200 \\cdot \\frac{1}{2} = \\boxed{255}$ So, after six months in the second CD, Dr. Zaius has $10,455. Final Answer: The final answer is $10,455$. I hope it is correct.", 1, "late_statement", abridged=True)
text(E, "$[-4,0]$", "Thus, the values of \\( k \\) for which the quadratic has real roots are: \\[ \\boxed{[-4, 0]} \\]", 1, "intervals")
text(E, "$(-6, 10)$", "The solution to the inequality is \\( x \\in (-6, 10) \\). Final Answer: The final answer is \\((-6, 10)\\). I hope it is correct.", 1, "minerva")
text(E, "$1112112_3$", "Thus, the product \\( ab \\) expressed in the base-three number system is \\(\\boxed{1112122_3}\\).", 0, "bases", abridged=True)
text(E, "\\(\\boxed{\\text{C}}\\).", "$\\boxed{\\text{(C)}}.$", 1, "choices", gold_is_text=True)
text(E, " So the answer is: \\[ \\boxed{11111111100} \\]", "is $\\boxed{11,\\! 111,\\! 111,\\! 100}$", 1, "separators", gold_is_text=True)
text(E, " So the answer is: \\[ \\boxed{32349} \\]", "is $\\boxed{32,\\! 349}$", 1, "separators", gold_is_text=True)
text(E, " So the answer is: \\[ \\boxed{32349} \\]", "is $\\boxed{32, 349}$", 0, "separators", gold_is_text=True)
text(E, "Thus, the domain of the function \\( f(x) \\) is: \\[ \\boxed{(2, 12) \\cup (12, 102)} \\]", "Thus, the answer is $x \\in \\boxed{(2,12) \\cup (12,102)}$", 1, "intervals", gold_is_text=True)
text(E, "$\\text{E}$", "$E$", 1, "choices")
text(E, "$\\boxed{1}\\boxed{2}$", "$\\boxed{1,2}$", 1, "lists", gold_is_text=True)
text(E, "so the solutions are $n = \\boxed{1,-2}.$", "We want to solve $f(n) = n$ ... this factors as $(n - 1)(n + 2) = 0$, so the integers are \\( n = 1 \\) and \\( n = -2 \\). **Final Answer** The integers are \\(\\boxed{1}\\) and \\(\\boxed{-2}\\).", 1, "lists", abridged=True, gold_is_text=True)
# Qwen2.5-Math grader examples (math_equal), restated
Q = "QwenLM/Qwen2.5-Math evaluation/grader.py (math_equal examples)"
for g, p, l, fam in [("\\frac{1}{2}", "0.5", 1, "fractions"), ("0.5", "1/2", 1, "fractions"), ("(1,2]", "(1, 2]", 1, "intervals"),
                     ("[2,5)", "(2,5)", 0, "intervals"), ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}", 1, "matrix"),
                     ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", 1, "surds"), ("x^2+2x+1", "(x+1)^2", 1, "symbolic"),
                     ("3", "3.0", 1, "numbers"), ("2\\pi", "6.283185", 1, "numbers"), ("10", "10.5", 0, "numbers")]:
    rows.append({"source": Q, "family": fam, "gold": g, "pred": p, "label": bool(l)})
MI = "MATH / Minerva answer format (Lewkowycz et al. 2022, Appendix D prompt)"
for g, c, l in [("\\frac{3}{4}", "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", 1),
                ("5", "The sum is 12. Final Answer: The final answer is $5$. I hope it is correct.", 1),
                ("x^2-1", "Final Answer: The final answer is $(x-1)(x+1)$. I hope it is correct.", 1),
                ("7", "Final Answer: The final answer is $8$. I hope it is correct.", 0)]:
    rows.append({"source": MI, "family": "minerva", "gold": g, "completion": c, "label": bool(l)})
# Answer families: each row cites where its case comes from
MATHDS = "aiwaves-cn/agents src/agents/datasets/data/math/{}::answer (MATH, Hendrycks et al. 2021)"
def fam(source, family, gold, pred, label):
    rows.append({"source": source, "family": family, "gold": gold, "pred": pred, "label": bool(label)})
for f, g, p, l in [("test/geometry/310.json", "\\frac{1}{2}", "\\sin 30^\\circ", 1), ("test/geometry/152.json", "\\frac{1}{2}", "\\cos(60^\\circ)", 1),
                   ("test/geometry/274.json", "\\frac{\\sqrt{2}}{2}", "\\sin 45°", 1), ("test/geometry/640.json", "\\frac{\\sqrt{3}}{3}", "\\tan 60^\\circ", 0),
                   ("test/precalculus/1144.json", "\\cos 58^\\circ", "\\sin 32^\\circ", 1), ("test/precalculus/1144.json", "\\cos 58^\\circ", "\\cos 32^\\circ", 0),
                   ("test/precalculus/418.json", "\\cos 13^\\circ", "\\sin 77^\\circ", 1), ("train/precalculus/36.json", "\\tan 15^\\circ", "2 - \\sqrt{3}", 1),
                   ("test/precalculus/602.json", "2\\cos 15^{\\circ}", "\\frac{\\sqrt{6}+\\sqrt{2}}{2}", 1), ("test/precalculus/580.json", "120^\\circ", "120", 1)]:
    fam(MATHDS.format(f), "trig_degrees", g, p, l)
HM = "hendrycks/math modeling/math_equivalence_test.py::"
fam(HM + "test_units", "text_after_value", "10", "10\\text{ units}", 1)
fam(HM + "test_units2", "text_after_value", "100", "10\\text{ units}", 0)
fam("huggingface/Math-Verify tests/test_open_thoughts.py::test_open_thoughts", "text_after_value", "0.06 \\text{ yuan}", "0.06", 1)
fam("QwenLM/Qwen2.5-Math evaluation/parser.py::strip_string (a trailing \\text{...} is a unit)", "text_after_value", "3.25\\text{ dollars}", "3.25", 1)
for f, g, p, l in [("test/counting_and_probability/628.json", "8\\text{ meals}", "8", 1), ("test/prealgebra/1526.json", "9 \\text{ multiples}", "9", 1),
                   ("test/number_theory/1098.json", "18 \\text{ integers}", "18", 1), ("test/number_theory/1098.json", "18 \\text{ integers}", "19", 0),
                   ("test/geometry/60.json", "144 \\mbox{ m}^3", "144", 1)]:
    fam(MATHDS.format(f), "text_after_value", g, p, l)
NC = "huggingface/Math-Verify tests/test_numina_cases.py::test_numina_cases"
fam(NC, "assignments", "x = -5,\\ p = \\frac{14}{3}", "-5, \\frac{14}{3}", 1)
fam(NC, "assignments", "(p,q)=(3,2)", "q = 2, p = 3", 1)
for f, g, p, l in [("train/algebra/2660.json", "(-2,1)", "x = -2, y = 1", 1), ("train/algebra/2660.json", "(-2,1)", "x = 1, y = -2", 0),
                   ("train/algebra/2369.json", "(2,3)", "x=2,y=3", 1), ("train/algebra/2369.json", "(2,3)", "x = 3, y = 2", 0)]:
    fam(MATHDS.format(f), "assignments", g, p, l)
fam(NC, "roots_and_or", "p = -1 \\text{ and } p = \\dfrac{15}{8}", "p=-1,p=\\frac{15}{8}", 1)
fam(NC, "roots_and_or", "6 \\text{ and } 8", "6,8", 1)
fam("EleutherAI/lm-evaluation-harness lm_eval/tasks/minerva_math/utils.py::normalize_final_answer (\\text{and} is a comma)", "roots_and_or", "6, 8", "6 \\text{and} 8", 1)
for f, g, p, l in [("train/intermediate_algebra/57.json", "-2 \\text{ or } -12", "c = -12 \\text{ or } c = -2", 1),
                   ("train/intermediate_algebra/57.json", "-2 \\text{ or } -12", "c = -2 or c = 12", 0),
                   ("train/algebra/1055.json", "2, 3, \\text{ and } 4", "x = 4 or x = 3 or x = 2", 1)]:
    fam(MATHDS.format(f), "roots_and_or", g, p, l)
MX = "huggingface/Math-Verify tests/test_mixed_number_extraction.py::"
for fn, g, p, l in [("test_mixed_number_is_equivalent_to_improper_fraction", "40/9", "4 4/9", 1),
                    ("test_mixed_number_does_not_match_only_its_whole_number_prefix", "4", "4 4/9", 0),
                    ("test_parse_negative_mixed_number_as_negative_complete_value", "-40/9", "-4 4/9", 1),
                    ("test_parse_mixed_number_with_optional_positive_sign", "71/6", "11 5/6", 1),
                    ("test_parse_mixed_number_with_spaced_thousands_whole_part", "9004/9", "1 000 4/9", 1),
                    ("test_parse_mixed_number_with_zero_numerator_as_whole_value", "4", "4 0/9", 1),
                    ("test_invalid_mixed_number_has_no_finite_component_equivalence", "73/6", "11 7/6", 0),
                    ("test_invalid_mixed_number_has_no_finite_component_equivalence", "12", "11 6/6", 0),
                    ("test_existing_expression_syntax_is_unchanged", "40/9", "4 + 4/9", 1),
                    ("test_existing_expression_syntax_is_unchanged", "1000", "1 000", 1)]:
    fam(MX + fn, "mixed_numbers", g, p, l)
fam("openai/prm800k prm800k/grading/grader.py::_inject_implicit_mixed_number", "mixed_numbers", "31/4", "7 3/4", 1)
for f, g, p, l in [("test/geometry/899.json", "3 \\frac{3}{8}", "27/8", 1), ("test/geometry/899.json", "3 \\frac{3}{8}", "3 3/8", 1),
                   ("train/prealgebra/1406.json", "-15\\frac{3}{5}", "-78/5", 1), ("test/algebra/2470.json", "137 \\frac{1}{2}", "137 1/4", 0)]:
    fam(MATHDS.format(f), "mixed_numbers", g, p, l)
for f, g, p, l in [("test/prealgebra/1578.json", "45\\text{ mph}", "45", 1), ("test/geometry/581.json", "5\\text{ inches}", "5 inches", 1),
                   ("test/geometry/581.json", "5\\text{ inches}", "5", 1), ("test/geometry/581.json", "5\\text{ inches}", "6 inches", 0)]:
    fam(MATHDS.format(f), "units", g, p, l)
for f, g, p, l in [("train/algebra/2660.json", "(-2,1)", "\\begin{cases} x = -2 \\\\ y = 1 \\end{cases}", 1),
                   ("train/algebra/2660.json", "(-2,1)", "\\begin{cases} x = 1 \\\\ y = -2 \\end{cases}", 0),
                   ("test/algebra/2238.json", "(7,6)", "\\begin{cases} x &= 7 \\\\ y &= 6 \\end{cases}", 1)]:
    fam(MATHDS.format(f), "systems_cases", g, p, l)
fam("QwenLM/Qwen2.5-Math evaluation/grader.py::str_to_pmatrix", "matrix_list", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "[[1, 2], [3, 4]]", 1)
fam("huggingface/Math-Verify tests/test_all.py::test_matrix_extraction", "matrix_list", "\\begin{bmatrix}0 & 0 \\\\0 & 0\\end{bmatrix}", "[[0, 0], [0, 0]]", 1)
for f, g, p, l in [("test/precalculus/211.json", "\\begin{pmatrix} 6/5 \\\\ -17/5 \\end{pmatrix}", "(6/5, -17/5)", 1),
                   ("test/precalculus/211.json", "\\begin{pmatrix} 6/5 \\\\ -17/5 \\end{pmatrix}", "(1.2, -3.4)", 1),
                   ("test/precalculus/211.json", "\\begin{pmatrix} 6/5 \\\\ -17/5 \\end{pmatrix}", "(-17/5, 6/5)", 0),
                   ("test/precalculus/55.json", "\\begin{pmatrix} -2 \\\\ -2 \\\\ 1 \\end{pmatrix}", "[-2, -2, 1]", 1),
                   ("test/precalculus/67.json", "\\begin{pmatrix} 7 & 1 \\\\ -1 & -3 \\end{pmatrix}", "[[7, 1], [-1, -3]]", 1),
                   ("test/precalculus/67.json", "\\begin{pmatrix} 7 & 1 \\\\ -1 & -3 \\end{pmatrix}", "[[7, -1], [1, -3]]", 0)]:
    fam(MATHDS.format(f), "matrix_list", g, p, l)
out = pathlib.Path("bench/data/math_verify_suite.jsonl")
out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
print(len(rows), "rows;", sum("pred" in r for r in rows), "bare,", sum("completion" in r for r in rows), "with extraction")
