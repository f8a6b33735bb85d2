"""Multi-turn conversations through nginx: routing on the conversation key against least_conn alone.

Three `vibe-edge serve` instances and a real nginx (vibe_edge.deploy.local, the configuration
`vibe-edge deploy nginx` writes). Each round runs the same kind of conversations twice, once
sending X-Session-Id on every turn (hashed: every turn on one instance) and once without it
(least_conn only: each turn goes wherever the fewest requests are open); the order flips every
round, and every conversation opens with text of its own, so no round is warm from another.

For every follow-up turn it records whether it was served warm (its cached prompt tokens cover
the whole previous turn's prompt: the history came from the cache, not only the template's
opening) and its time to first token as the client sees it through nginx.

    python bench/deploy_bench.py                         # demo model, 3 instances, 2 rounds
    python bench/deploy_bench.py --conversations 12 --rounds 3 --json out.json

All instances share this machine's cores, so throughput is not the point here (see
docs/DEPLOY.md, capacity model); the warm-turn rate and the TTFT of a follow-up turn are.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vibe_edge.deploy.local import LocalCluster  # noqa: E402
from vibe_edge.deploy.routing import INSTANCE_HEADER, SESSION_HEADER  # noqa: E402

TOPICS = ["lighthouses", "bread", "bicycles", "glaciers", "violins", "tea", "bridges", "owls",
          "volcanoes", "chess", "rivers", "clocks", "bees", "maps", "ships", "salt"]


@dataclass
class Turn:
    mode: str
    conversation: int
    turn: int
    instance: str
    prompt_tokens: int
    cached_tokens: int
    ttft_s: float
    warm: bool | None  # None for the first turn


def _opening(round_no: int, i: int, words: int) -> str:
    """A long first message of its own (about `words` words), like a pasted problem."""
    topic = TOPICS[i % len(TOPICS)]
    tag = uuid.uuid4().hex[:8]
    sentence = (f"Note {tag}: in round {round_no}, conversation {i} is about {topic}, and the notes "
                f"about {topic} go on with details that matter later. ")
    body = sentence * max(1, words // len(sentence.split()))
    return body + f"Using these notes, tell me one thing about {topic}."


def _turn(client: httpx.Client, messages: list[dict], headers: dict, max_tokens: int
          ) -> tuple[str, str, int, int, float]:
    body = {"model": "bench", "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    text = []
    usage = {}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        instance = response.headers[INSTANCE_HEADER]
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    first = first or time.perf_counter()
                    text.append(piece)
            usage = chunk.get("usage") or usage
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return instance, "".join(text), usage["prompt_tokens"], cached, (first or time.perf_counter()) - t0


def run_mode(client: httpx.Client, mode: str, round_no: int, *, conversations: int, turns: int,
             concurrency: int, words: int, max_tokens: int, think_s: float) -> list[Turn]:
    def conversation(i: int) -> list[Turn]:
        # The user reads and types between turns: the pauses are the same in both modes.
        pauses = random.Random(f"{round_no}-{i}")
        headers = {SESSION_HEADER: f"bench-{uuid.uuid4().hex}"} if mode == "key" else {}
        messages = [{"role": "user", "content": _opening(round_no, i, words)}]
        out: list[Turn] = []
        for t in range(turns):
            if t:
                time.sleep(pauses.uniform(0, think_s))
            instance, text, prompt, cached, ttft = _turn(client, messages, headers, max_tokens)
            warm = None if t == 0 else cached >= out[-1].prompt_tokens
            out.append(Turn(mode, i, t + 1, instance, prompt, cached, ttft, warm))
            messages += [{"role": "assistant", "content": text},
                         {"role": "user", "content": f"And one more thing? ({t + 2})"}]
        return out

    with ThreadPoolExecutor(concurrency) as pool:
        return [turn for conv in pool.map(conversation, range(conversations)) for turn in conv]


def summarize(turns: list[Turn], mode: str) -> dict:
    mine = [t for t in turns if t.mode == mode]
    follow = [t for t in mine if t.turn > 1]
    second = [t.ttft_s for t in mine if t.turn == 2]
    first = [t.ttft_s for t in mine if t.turn == 1]
    spread: dict[str, int] = {}
    for t in mine:
        if t.turn == 1:
            spread[t.instance] = spread.get(t.instance, 0) + 1
    return {
        "mode": mode,
        "follow_up_turns": len(follow),
        "warm_turn_rate": round(sum(bool(t.warm) for t in follow) / len(follow), 3),
        "p50_first_turn_ttft_ms": round(1000 * statistics.median(first), 1),
        "p50_second_turn_ttft_ms": round(1000 * statistics.median(second), 1),
        "p95_second_turn_ttft_ms": round(1000 * sorted(second)[min(len(second) - 1, round(0.95 * (len(second) - 1)))], 1),
        "mean_cached_share_follow_ups": round(statistics.mean(t.cached_tokens / t.prompt_tokens for t in follow), 3),
        "conversations_per_instance": sorted(spread.values(), reverse=True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1, help="per instance")
    parser.add_argument("--conversations", type=int, default=9, help="per mode and round")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=3, help="conversations at once")
    parser.add_argument("--think", type=float, default=1.0,
                        help="longest pause between a reply and the next turn, seconds")
    parser.add_argument("--words", type=int, default=120, help="length of each opening message")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vibe-edge-deploy-bench-") as tmp:
        serve = ["--model", args.model, "--alias", "bench", "--slots", str(args.slots), "--ctx",
                 str(args.ctx), "--threads", str(args.threads), "--grace", "0"]
        t0 = time.perf_counter()
        with LocalCluster(Path(tmp), instances=args.instances, serve_args=serve) as cluster:
            print(f"{args.instances} instances + nginx ready in {time.perf_counter() - t0:.1f} s "
                  f"at {cluster.url}", flush=True)
            turns: list[Turn] = []
            with httpx.Client(base_url=cluster.url, timeout=600) as client:
                for r in range(args.rounds):
                    order = ("key", "least_conn") if r % 2 == 0 else ("least_conn", "key")
                    for mode in order:
                        t1 = time.perf_counter()
                        turns += run_mode(client, mode, r, conversations=args.conversations,
                                          turns=args.turns, concurrency=args.concurrency,
                                          words=args.words, max_tokens=args.max_tokens,
                                          think_s=args.think)
                        print(f"round {r + 1} {mode}: {time.perf_counter() - t1:.1f} s", flush=True)
    results = [summarize(turns, mode) for mode in ("key", "least_conn")]
    key, lc = results
    ratio = round(key["p50_second_turn_ttft_ms"] / lc["p50_second_turn_ttft_ms"], 3)
    print()
    print(f"{'routing':<12}{'warm turns':>12}{'p50 TTFT turn 1':>18}{'p50 TTFT turn 2':>18}"
          f"{'p95 turn 2':>12}{'cached share':>14}  conversations per instance")
    for r in results:
        print(f"{r['mode']:<12}{r['warm_turn_rate']:>12.0%}{r['p50_first_turn_ttft_ms']:>16.0f}ms"
              f"{r['p50_second_turn_ttft_ms']:>16.0f}ms{r['p95_second_turn_ttft_ms']:>10.0f}ms"
              f"{r['mean_cached_share_follow_ups']:>14.0%}  {r['conversations_per_instance']}")
    print(f"second-turn p50 TTFT, key / least_conn: {ratio}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": results, "ttft_ratio_key_vs_least_conn": ratio,
                                         "turns": [asdict(t) for t in turns]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
