"""vibe-edge's built-in texts for verification, written for this project.

- `parity_corpus()`: >= 1,000 short strings that stress tokenizers where they differ: digit runs
  and long numbers (Qwen2 splits digits one per token), decimals, LaTeX, code in several
  languages, whitespace runs, Chinese, emoji, and the special and reasoning tags.
- `eval_text()`: a math-and-code text of well over 4,000 tokens for comparing quantizations
  (KL divergence, top-1 agreement, perplexity).

Everything is generated deterministically from fixed seeds, so results are comparable across runs.
"""

from __future__ import annotations

import random

__all__ = ["DEFAULT_PARITY_SIZE", "SPECIAL_TAGS", "eval_text", "logit_prompts", "parity_corpus"]

DEFAULT_PARITY_SIZE = 1200
SPECIAL_TAGS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>")

_LATEX = [
    r"\frac{a}{b}", r"\sqrt{x^2+y^2}", r"\sum_{k=1}^{n} k^2", r"\int_0^1 x\,dx", r"\boxed{42}",
    r"\binom{10}{3}", r"\lim_{n\to\infty}\left(1+\frac{1}{n}\right)^n", r"x_{i+1} = x_i - \eta\nabla f",
    r"\mathbb{Z}/p\mathbb{Z}", r"\alpha\beta\gamma", r"\cdot", r"\le", r"\ge", r"\pmod{7}", r"e^{i\pi}+1=0",
    r"\{1,2,3\}", r"a^{2}+b^{2}=c^{2}", r"\left\lfloor \frac{n}{2} \right\rfloor", r"\det(A)",
]
_CODE = [
    "def f(n):\n    return n * (n + 1) // 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "fn main() {\n    let v: Vec<u64> = (1..=10).collect();\n}",
    "const xs = [3, 1, 2].sort((a, b) => a - b);",
    "SELECT id, COUNT(*) FROM t GROUP BY id HAVING COUNT(*) > 1;",
    "#include <bits/stdc++.h>\nusing namespace std;",
    "if __name__ == \"__main__\":\n    main()",
    "public static long gcd(long a, long b) { return b == 0 ? a : gcd(b, a % b); }",
    "x = [i**2 for i in range(10) if i % 2 == 0]",
    "func add(a int, b int) int {\n\treturn a + b\n}",
    "    \tmixed\t  indentation\n\n\n",
    "print(f\"{value:08.3f}\")",
    "dp[i][j] = min(dp[i-1][j], dp[i][j-1]) + grid[i][j];",
    "while l < r:\n        m = (l + r) >> 1",
    "echo \"$HOME\" | tr 'a-z' 'A-Z'",
]
_CHINESE = ["我想在apple工作", "求证：对任意正整数n，都有", "答案是", "这道题的关键在于", "设函数f(x)=x²+1",
            "数学竞赛", "代码如下：", "因此最终答案为"]
_EMOJI = ["🚀", "😶\u200d🌫️", "✅", "🦙🦙", "👍🏽", "🇨🇳", "🤔", "1️⃣", "🧮"]
_WORDS = ["the", "sum", "of", "primes", "below", "ten", "is", "Let's", "think", "step", "by", "step",
          "I've", "we'll", "don't", "It's", "THE", "Answer", "modulo", "triangle", "vector", "matrix"]
_WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "\r\n", "\u3000", "\u00a0", "    "]


def _number(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 25)))
    if kind == 1:
        return f"{rng.uniform(-1e4, 1e4):.{rng.randrange(1, 8)}f}"
    if kind == 2:
        return f"{rng.randrange(1, 10**6):,}"
    if kind == 3:
        return f"{rng.randrange(1, 999)}/{rng.randrange(2, 999)}"
    if kind == 4:
        return f"{rng.uniform(1, 9):.3f}e{rng.choice(['-', '+', ''])}{rng.randrange(1, 40)}"
    if kind == 5:
        return "0" * rng.randrange(1, 6) + str(rng.randrange(1, 1000))
    return "3." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(5, 40)))


def _piece(rng: random.Random, category: int) -> str:
    if category == 0:
        return _number(rng)
    if category == 1:
        return rng.choice(_LATEX)
    if category == 2:
        return rng.choice(_CODE)
    if category == 3:
        return rng.choice(_WHITESPACE) * rng.randrange(1, 4)
    if category == 4:
        return rng.choice(_CHINESE)
    if category == 5:
        return rng.choice(_EMOJI)
    if category == 6:
        return rng.choice(SPECIAL_TAGS)
    return rng.choice(_WORDS)


def parity_corpus(size: int = DEFAULT_PARITY_SIZE, seed: int = 1234) -> list[str]:
    """Deterministic strings for tokenizer parity, each category well represented."""
    rng = random.Random(seed)
    out: list[str] = []
    # Fixed cases first: the ones that broke converters in the past.
    out += ["", " ", "1", "12", "123", "1234567890", "3.14159", "1e-9", "٣٤٥", "１２３", "Ⅻ",
            "<think>\n", "</think>\n\n", "<|im_start|>assistant\n<think>", "a<|im_end|>b",
            "\\boxed{1/2}", "x^2", "  leading", "trailing  ", "\n\n\n", "\t\t", "I'll", "'RE",
            "31415926535897932384626433", "1000000000000000000000", "2^{64} = 18446744073709551616"]
    while len(out) < size:
        n = rng.randrange(1, 7)
        parts = [_piece(rng, rng.randrange(8)) for _ in range(n)]
        sep = rng.choice(["", " ", "\n", ""])
        out.append(sep.join(parts))
    return out[:size]


_INTRO = """Worked solutions and small programs, written for vibe-edge's quantization check.

Problem 1. Find the remainder when 2^100 is divided by 7.
Solution. Powers of 2 modulo 7 repeat with period 3: 2, 4, 1, 2, 4, 1, ... Since 100 = 3 * 33 + 1,
we get 2^100 = (2^3)^33 * 2 = 1^33 * 2 = 2 (mod 7). The answer is \\boxed{2}.

Problem 2. How many positive divisors does 360 have?
Solution. 360 = 2^3 * 3^2 * 5, so the number of divisors is (3+1)(2+1)(1+1) = 24. \\boxed{24}

Problem 3. Let f(x) = x^2 - 6x + 13. Find the minimum value of f.
Solution. Completing the square, f(x) = (x - 3)^2 + 4, which is smallest at x = 3. \\boxed{4}

def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True

def sieve(limit: int) -> list[int]:
    flags = [True] * (limit + 1)
    flags[0] = flags[1] = False
    for p in range(2, int(limit ** 0.5) + 1):
        if flags[p]:
            for q in range(p * p, limit + 1, p):
                flags[q] = False
    return [i for i, ok in enumerate(flags) if ok]
"""


def _arith_block(rng: random.Random) -> str:
    a, b = rng.randrange(12, 999), rng.randrange(12, 99)
    kind = rng.randrange(5)
    if kind == 0:
        return (f"Compute {a} * {b}. We split {b} = {b // 10 * 10} + {b % 10}: {a} * {b // 10 * 10} = "
                f"{a * (b // 10 * 10)} and {a} * {b % 10} = {a * (b % 10)}, so the product is "
                f"{a * b}. \\boxed{{{a * b}}}\n")
    if kind == 1:
        n = rng.randrange(5, 60)
        return (f"The sum 1 + 2 + ... + {n} equals n(n+1)/2 with n = {n}, that is "
                f"{n} * {n + 1} / 2 = {n * (n + 1) // 2}. \\boxed{{{n * (n + 1) // 2}}}\n")
    if kind == 2:
        x, y = rng.randrange(2, 40), rng.randrange(2, 40)
        from math import gcd
        return (f"gcd({x * 6}, {y * 6}): by the Euclidean algorithm the answer is {gcd(x * 6, y * 6)}, "
                f"and lcm = {x * 6} * {y * 6} / {gcd(x * 6, y * 6)} = "
                f"{x * 6 * y * 6 // gcd(x * 6, y * 6)}.\n")
    if kind == 3:
        p, q = rng.randrange(1, 9), rng.randrange(2, 9)
        return (f"Solve {q}x + {p} = {q * a + p}. Subtract {p}: {q}x = {q * a}; divide by {q}: "
                f"x = {a}. \\boxed{{{a}}}\n")
    m = rng.randrange(3, 12)
    return (f"In a right triangle with legs {3 * m} and {4 * m}, the hypotenuse is "
            f"\\sqrt{{{(3 * m) ** 2} + {(4 * m) ** 2}}} = \\sqrt{{{(5 * m) ** 2}}} = {5 * m}.\n")


def _code_block(rng: random.Random) -> str:
    name = rng.choice(["solve", "count_paths", "max_sub", "fib", "binary_search"])
    k = rng.randrange(2, 9)
    templates = [
        f"def {name}(nums: list[int]) -> int:\n    best = cur = nums[0]\n    for x in nums[1:]:\n"
        f"        cur = max(x, cur + x)\n        best = max(best, cur)\n    return best\n",
        f"int {name}(int n) {{\n    vector<long long> dp(n + 1, 0);\n    dp[0] = 1;\n"
        f"    for (int i = 1; i <= n; ++i)\n        for (int s = 1; s <= {k} && s <= i; ++s)\n"
        f"            dp[i] += dp[i - s];\n    return dp[n] % 1000000007;\n}}\n",
        f"fn {name}(a: &[i64], target: i64) -> Option<usize> {{\n    let (mut lo, mut hi) = (0, a.len());\n"
        f"    while lo < hi {{\n        let mid = (lo + hi) / 2;\n        if a[mid] < target {{ lo = mid + 1; }}"
        f" else {{ hi = mid; }}\n    }}\n    if lo < a.len() && a[lo] == target {{ Some(lo) }} else {{ None }}\n}}\n",
        f"# {name}: memoised recursion, {k} steps at most\nfrom functools import lru_cache\n\n"
        f"@lru_cache(maxsize=None)\ndef {name}(n):\n    return n if n < 2 else {name}(n - 1) + {name}(n - 2)\n",
    ]
    return rng.choice(templates)


def eval_text(seed: int = 7, blocks: int = 72) -> str:
    """The math+code evaluation text (about 4,570 Qwen2 tokens with the default size)."""
    rng = random.Random(seed)
    parts = [_INTRO]
    for i in range(blocks):
        parts.append(_code_block(rng) if i % 4 == 3 else _arith_block(rng))
    return "\n".join(parts)


def logit_prompts() -> list[str]:
    """A few prompts for comparing llama.cpp's logits with transformers' (chat, math, code, CJK)."""
    return [
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}."
        "<|im_end|>\n<|im_start|>user\nWhat is 1234 * 5678?<|im_end|>\n<|im_start|>assistant\n<think>\n",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):",
        "Let $x^2 + 3x - 10 = 0$. Factoring gives $(x+5)(x-2)=0$, so $x = ",
        "求证：对任意正整数n，1+2+...+n = n(n+1)/2。</think>\n\n答案是",
    ]
